"""Campaign statistics for the console's charts: per status, category, district and day.

Everything is counted in the database (the truth), not from the live counters. Days are calendar
days in Asia/Shanghai (UTC+8 all year, no daylight saving), computed in SQL per dialect.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from tortoise import connections
from tortoise.functions import Count

from backend.access import Principal
from backend.context import AppContext
from crowdsource.campaigns import get_campaign_or_raise
from crowdsource.models import Audience, PainPoint, Status, Vote
from crowdsource.schemas import (
    CampaignStatistics,
    CategoryStat,
    DayStat,
    DistrictStat,
    StatusCounts,
    VoteCounts,
)
from crowdsource.visibility import listed_q

# Calendar day in Asia/Shanghai of a stored UTC timestamp, per SQL dialect.
_DAY_SQL = {
    "sqlite": "date({column}, '+8 hours')",
    "postgres": "to_char({column} AT TIME ZONE 'Asia/Shanghai', 'YYYY-MM-DD')",
}
_PARAM = {"sqlite": "?", "postgres": "$1"}


async def _grouped(qs: Any, field: str) -> dict[Any, int]:
    rows = await qs.annotate(n=Count("id")).group_by(field).values(field, "n")
    return {row[field]: int(row["n"]) for row in rows}


async def _sql(sql: str, campaign_pk: int) -> list[dict[str, Any]]:
    conn = connections.get("default")
    dialect = conn.capabilities.dialect
    query = sql.format(day=_DAY_SQL[dialect].format(column="created_at"), param=_PARAM[dialect])
    return list(await conn.execute_query_dict(query, [campaign_pk]))


async def campaign_statistics(
    *, ctx: AppContext, principal: Principal | None, campaign_id: str
) -> CampaignStatistics:
    """Counts per status, category, district and day, from the database."""
    campaign = await get_campaign_or_raise(campaign_id, principal=principal, now=ctx.clock.now())
    items = PainPoint.filter(campaign_id=campaign.id)
    listed = items.filter(listed_q(campaign))
    listed_votes = Vote.filter(listed_q(campaign, prefix="pain_point__"), campaign_id=campaign.id)
    statuses = await _grouped(items, "status")
    by_category = await _grouped(listed, "category")
    votes_by_category = await _grouped(listed_votes, "pain_point__category")
    by_district = await _grouped(listed, "district")
    votes_by_district = await _grouped(listed_votes, "pain_point__district")
    audiences = await _grouped(Vote.filter(campaign_id=campaign.id), "audience")
    voters = await _sql(
        "SELECT COUNT(DISTINCT user_id) AS n FROM crowdsource_vote WHERE campaign_id = {param}",
        campaign.id,
    )
    days: dict[str, list[int]] = {}
    for table, slot in (("crowdsource_pain_point", 0), ("crowdsource_vote", 1)):
        rows = await _sql(
            f"SELECT {{day}} AS day, COUNT(*) AS n FROM {table} "  # noqa: S608 - fixed names
            "WHERE campaign_id = {param} GROUP BY 1",
            campaign.id,
        )
        for row in rows:
            days.setdefault(str(row["day"]), [0, 0])[slot] = int(row["n"])
    labels = campaign.category_labels()
    return CampaignStatistics(
        campaign_id=campaign.public_id,
        pain_points=StatusCounts(**{str(Status(k).value): v for k, v in statuses.items()}),
        hidden=await items.filter(hidden=True).count(),
        votes=sum(audiences.values()),
        voters=int(voters[0]["n"]) if voters else 0,
        votes_by_audience=VoteCounts(**{str(Audience(k).value): v for k, v in audiences.items()}),
        by_category=sorted(
            (
                CategoryStat(
                    category=code,
                    label=label,
                    pain_points=by_category.get(code, 0),
                    votes=votes_by_category.get(code, 0),
                )
                for code, label in labels.items()
            ),
            key=lambda s: (-s.votes, -s.pain_points, s.category),
        ),
        by_district=sorted(
            (
                DistrictStat(district=d, pain_points=n, votes=votes_by_district.get(d, 0))
                for d, n in by_district.items()
            ),
            key=lambda s: (-s.votes, -s.pain_points, s.district or ""),
        ),
        by_day=[
            DayStat(date=date.fromisoformat(day), pain_points=pp, votes=v)
            for day, (pp, v) in sorted(days.items())
        ],
    )
