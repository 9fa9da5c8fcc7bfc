"""The live dashboard: submissions and votes per day, by category, by district and per audience,
the top of the ranking, and an offline map of located pain points and venues."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from admin_console.pages import CURATORS, Page, page
from admin_console.render import HEADERS, KIND_LABELS
from admin_console.views.common import campaign_choice
from backend.geo import CoordSystem
from crowdsource import pain_points, statistics
from crowdsource.models import Campaign, PainPoint
from crowdsource.visibility import listed_q
from venues.models import Venue, VenueStatus

bp = Blueprint("console_dashboard", url_prefix="/console/dashboard")

MAP_VENUES = 1500
AUDIENCE_LABELS = {"resident": "居民", "enterprise": "企业", "department": "政府部门"}


async def dashboard_data(page: Page, campaign_id: str) -> dict[str, Any]:
    """Everything the charts draw, counted in the database (statistics) or live (ranking)."""
    stats = await statistics.campaign_statistics(
        ctx=page.ctx, principal=page.user, campaign_id=campaign_id
    )
    top = await pain_points.list_pain_points(
        ctx=page.ctx,
        principal=page.user,
        campaign_id=campaign_id,
        sort="votes",
        category=None,
        coord=CoordSystem.WGS84,
        limit=10,
        cursor=None,
    )
    campaign = await Campaign.get(public_id=campaign_id)
    located = await PainPoint.filter(
        listed_q(campaign), campaign_id=campaign.id, lat__isnull=False
    ).values_list("lat", "lng", "title")
    venues = (
        await Venue.filter(status=VenueStatus.OPEN)
        .order_by("id")
        .limit(MAP_VENUES)
        .values_list("lat", "lng", "kind", "district")
    )
    centres: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    for lat, lng, _kind, district in venues:
        if district:
            acc = centres[str(district)]
            acc[0] += float(lat)
            acc[1] += float(lng)
            acc[2] += 1
    return {
        "days": [d.date.isoformat() for d in stats.by_day],
        "day_points": [d.pain_points for d in stats.by_day],
        "day_votes": [d.votes for d in stats.by_day],
        "categories": [c.label for c in stats.by_category],
        "category_points": [c.pain_points for c in stats.by_category],
        "category_votes": [c.votes for c in stats.by_category],
        "districts": [d.district or "未填写" for d in stats.by_district],
        "district_points": [d.pain_points for d in stats.by_district],
        "district_votes": [d.votes for d in stats.by_district],
        "audiences": [
            {"name": AUDIENCE_LABELS[k], "value": v}
            for k, v in stats.votes_by_audience.model_dump().items()
        ],
        "totals": {
            "votes": stats.votes,
            "voters": stats.voters,
            "hidden": stats.hidden,
            **stats.pain_points.model_dump(),
        },
        "top": [{"title": i.title, "votes": i.votes, "id": i.id} for i in top.items],
        "map": {
            "pain_points": [[float(lng), float(lat), str(title)] for lat, lng, title in located],
            "venues": [
                [float(lng), float(lat), KIND_LABELS.get(str(k), str(k))]
                for lat, lng, k, _d in venues
            ],
            "districts": [
                [acc[1] / acc[2], acc[0] / acc[2], name] for name, acc in sorted(centres.items())
            ],
        },
    }


@bp.get("/")
@page(read=CURATORS)
async def index(request: Request, page: Page) -> HTTPResponse:
    choices, campaign = await campaign_choice(page)
    data = await dashboard_data(page, campaign.id) if campaign else None
    return page.render("dashboard.html", campaigns=choices, campaign=campaign, data=data)


@bp.get("/data.json")
@page(read=CURATORS)
async def data(request: Request, page: Page) -> HTTPResponse:
    _choices, campaign = await campaign_choice(page)
    body = await dashboard_data(page, campaign.id) if campaign else {}
    return json(
        body,
        headers={
            "Cache-Control": "no-store",
            "X-Content-Type-Options": HEADERS["X-Content-Type-Options"],
        },
    )
