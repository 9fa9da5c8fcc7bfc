"""Exactness checks after the load (the database is open): votes counted three ways, and one
booking for one slot."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx

from backend.context import build_context
from bench.config import BenchConfig
from bench.data import Plan
from crowdsource import counters
from crowdsource.models import Campaign, Vote
from venues.bookings.models import Booking


async def votes(config: BenchConfig, plan: Plan, base_url: str, accepted: int) -> dict[str, Any]:
    """Database count, live counter and accepted (201) answers must be equal, exactly."""
    async with httpx.AsyncClient(base_url=base_url, timeout=30) as http:
        response = await http.get(
            f"/api/v1/campaigns/{plan.campaign_id}/pain-points",
            params={"sort": "votes", "limit": 100},
        )
        response.raise_for_status()
        api_total = sum(int(item["votes"]) for item in response.json()["items"])
    result: dict[str, Any] = {"accepted_responses": accepted, "live_counter_api": api_total}
    campaign = await Campaign.get(public_id=plan.campaign_id)
    result["database_count"] = await Vote.filter(campaign_id=campaign.id).count()
    if config.profile == "services":  # the sorted sets themselves, read from Redis
        ctx = build_context(config.settings())
        try:
            live = await counters.read_all(ctx=ctx, campaign=campaign)
        finally:
            await ctx.close()
        result["live_counter_redis"] = sum(entry["total"] for entry in live.values())
    counts = [v for k, v in result.items() if k != "accepted_responses"] + [accepted]
    result["equal"] = len(set(counts)) == 1
    return result


async def booking(plan: Plan, raw: dict[str, Any]) -> dict[str, Any]:
    """256 residents race for one slot: exactly one 201, all the others 409 slot_taken (every
    one answered), and one row in the database."""
    # The raced slot (not the warm-up's), in UTC as stored: on SQLite Tortoise compares the text,
    # and 15:00+08:00 is not the stored 07:00+00:00.
    start = datetime.fromisoformat(plan.booking_start).astimezone(UTC)
    rows = await Booking.filter(unit__public_id=plan.unit_id, start=start).count()
    statuses = raw["statuses"]
    answered = sum(statuses.values())
    unanswered = raw["socket_errors"] + raw["timeouts"]
    created, refused = statuses.get("201", 0), raw["refusals"]
    return {
        "racers": answered + unanswered,
        "created": created,
        "refused": refused,
        "unanswered": unanswered,
        "bookings_in_database": rows,
        "exactly_one": created == 1
        and rows == 1
        and unanswered == 0
        and refused == {"409 slot_taken": answered - 1},
    }


def exact(results: dict[str, Any]) -> bool:
    """Whether every exactness check of the run held (a check that did not run holds)."""
    return bool(
        results.get("votes", {}).get("equal", True)
        and results.get("booking_race", {}).get("exactly_one", True)
    )
