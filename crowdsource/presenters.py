"""Presenters: campaigns, pain points, votes, Open311 clients and requests, and integrity flags
as the API shows them.

Pure functions from models (and what the caller has already looked up: counts, links, clocks) to
response schemas; no queries, no rules. Views and services import them from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from backend import geo
from backend.clock import isoformat, to_local
from crowdsource import counters
from crowdsource.models import (
    Audience,
    Campaign,
    Open311Client,
    PainPoint,
    Status,
    VoteFlag,
)
from crowdsource.phases import main_phase, phases_at
from crowdsource.schemas import (
    CampaignOut,
    Category,
    FlagOut,
    Location,
    Open311ClientOut,
    PainPointOut,
    ReportOut,
    VoteCounts,
    VoteOut,
)
from crowdsource.visibility import HIDDEN, PENDING_REVIEW, is_public, why_not_public

# -- campaigns --------------------------------------------------------------------------


def campaign_out(campaign: Campaign, now: datetime) -> CampaignOut:
    opened = phases_at(campaign, now)
    return CampaignOut(
        id=campaign.public_id,
        title=campaign.title,
        description=campaign.description,
        categories=[Category(**c) for c in campaign.categories],
        audiences=[Audience(a) for a in campaign.audiences],
        phase=main_phase(opened),
        phases_open=opened,
        collecting_starts_at=to_local(campaign.collecting_starts_at),
        collecting_ends_at=to_local(campaign.collecting_ends_at),
        voting_starts_at=to_local(campaign.voting_starts_at),
        voting_ends_at=to_local(campaign.voting_ends_at),
        closes_at=to_local(campaign.closes_at),
        submission_cap=campaign.submission_cap,
        report_threshold=campaign.report_threshold,
        vote_budget=campaign.vote_budget,
        votes_per_minute_person=campaign.votes_per_minute_person,
        votes_per_minute_ip=campaign.votes_per_minute_ip,
        moderation=campaign.moderation,
        created_at=to_local(campaign.created_at),
    )


# -- pain points, reports and votes -----------------------------------------------------

_LINKS = "_links"


def attach_links(item: PainPoint, links: dict[str, Any]) -> None:
    """Keep the public ids of the item's duplicate target and merges on it, for the response."""
    setattr(item, _LINKS, links)


def links_of(item: PainPoint) -> dict[str, Any]:
    """What :func:`attach_links` kept on the item (nothing if it was not called)."""
    links: dict[str, Any] = getattr(item, _LINKS, {})
    return links


def _vote_counts(counts: dict[str, int]) -> VoteCounts:
    return VoteCounts(**{a.value: counts.get(a.value, 0) for a in counters.AUDIENCES})


def pain_point_out(
    item: PainPoint,
    campaign: Campaign,
    counts: dict[str, int] | None,
    coord: geo.CoordSystem = geo.CoordSystem.WGS84,
) -> PainPointOut:
    counts = counts or {}
    labels = campaign.category_labels()
    location = None
    if item.lat is not None and item.lng is not None:
        point = geo.from_wgs84(geo.Point(item.lat, item.lng), coord)
        location = Location(lat=round(point.lat, 7), lng=round(point.lng, 7))
    links = links_of(item)
    return PainPointOut(
        id=item.public_id,
        campaign_id=campaign.public_id,
        title=item.title,
        description=item.description,
        category=item.category,
        category_label=labels.get(item.category, item.category),
        location=location,
        district=item.district,
        address=item.address,
        photo_urls=list(item.photo_urls),
        audience=item.audience,
        company_name=item.company_name,
        department_name=item.department_name,
        status=item.status,
        hidden=item.hidden,
        public=is_public(item, campaign),
        moderation_reason=item.moderation_reason or None,
        duplicate_of=links.get("duplicate_of"),
        merged_into=links.get("merged_into"),
        merged=links.get("merged", []),
        votes=counts.get("total", 0),
        votes_by_audience=_vote_counts(counts),
        created_at=to_local(item.created_at),
        updated_at=to_local(item.updated_at),
    )


def report_out(item: PainPoint, *, hidden: bool) -> ReportOut:
    return ReportOut(pain_point_id=item.public_id, hidden=hidden)


def vote_out(pain_point_id: str, audience: Audience, counts: dict[str, int]) -> VoteOut:
    return VoteOut(
        pain_point_id=pain_point_id,
        audience=audience,
        votes=counts["total"],
        votes_by_audience=_vote_counts(counts),
    )


# -- integrity --------------------------------------------------------------------------


def flag_out(flag: VoteFlag, *, reason: str, votes_held: int, account_ids: list[str]) -> FlagOut:
    return FlagOut(
        id=flag.public_id,
        heuristic=flag.heuristic,
        reason=reason,
        subject=flag.subject,
        pain_point_id=flag.subject if flag.pain_point_id else None,
        window_start=flag.window_start,
        window_end=flag.window_end,
        votes=flag.votes,
        accounts=flag.accounts,
        votes_held=votes_held,
        account_ids=account_ids,
        status=flag.status,  # type: ignore[arg-type]
        note=flag.note or None,
        votes_discarded=flag.votes_discarded,
        resolved_by=flag.resolved_by,
        resolved_at=flag.resolved_at,
        created_at=flag.created_at,
    )


# -- Open311 ----------------------------------------------------------------------------

OPEN, CLOSED = "open", "closed"


def client_out(
    client: Open311Client, key: str | None = None, vendor_id: str | None = None
) -> Open311ClientOut:
    return Open311ClientOut(
        id=client.public_id,
        name=client.name,
        audience=client.audience,
        organisation=client.organisation,
        vendor_id=vendor_id,
        prefix=client.key_prefix,
        requests_per_minute=client.requests_per_minute,
        created_at=client.created_at,
        last_used_at=client.last_used_at,
        revoked_at=client.revoked_at,
        key=key,
    )


@dataclass(frozen=True)
class RequestLinks:
    """Public ids of where Open311 requests went: their duplicate target and merge target."""

    duplicate_of: dict[int, str]
    merged_into: dict[int, str]


def request_status(item: PainPoint, campaign: Campaign, links: RequestLinks) -> tuple[str, str]:
    """The GeoReport status (open or closed) and its notes."""
    if item.id in links.merged_into:
        return CLOSED, f"已合并到痛点 {links.merged_into[item.id]}，请关注该条"
    if item.status is Status.DUPLICATE:
        return CLOSED, f"与痛点 {links.duplicate_of.get(item.id, '')} 重复，请关注该条"
    if item.status is Status.INVALID:
        reason = item.moderation_reason.strip()
        return CLOSED, f"不予受理：{reason}" if reason else "不予受理"
    withheld = why_not_public(item, campaign)
    if withheld == HIDDEN:
        return OPEN, "被举报，复核中"
    if withheld == PENDING_REVIEW:
        return OPEN, "待审核，审核通过后公开"
    if item.status is Status.VALID:
        return OPEN, "已审核通过，正在征集投票"
    return OPEN, "已公开，待审核"


def request_out(item: PainPoint, campaign: Campaign, links: RequestLinks) -> dict[str, Any]:
    """A pain point as a GeoReport v2 service request.

    An item the public may not see (awaiting review, hidden, judged invalid) keeps its status
    and notes, but its content (text, place, photo) stays out of the feed.
    """
    labels = campaign.category_labels()
    status, notes = request_status(item, campaign, links)
    shown = is_public(item, campaign)
    return {
        "service_request_id": item.public_id,
        "status": status,
        "status_notes": notes,
        "service_name": labels.get(item.category, item.category),
        "service_code": item.category,
        "description": item.description if shown else "",
        "agency_responsible": "",
        "service_notice": "",
        "requested_datetime": isoformat(item.created_at),
        "updated_datetime": isoformat(item.updated_at),
        "expected_datetime": None,
        "address": (item.address or "") if shown else "",
        "address_id": None,
        "zipcode": None,
        "lat": item.lat if shown else None,
        "long": item.lng if shown else None,
        "media_url": item.photo_urls[0] if item.photo_urls and shown else "",
    }
