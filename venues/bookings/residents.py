"""Per-resident rules: suspension, active bookings, weekly hours, one unit at a time.

:func:`check_resident` is the one place these rules live. Every path that ends in a booking runs
it inside that path's unit of work: a direct booking, joining a waitlist, the waitlist offer and
confirming a hold. It first bumps the version of the resident's state row, so on PostgreSQL the row
lock serialises one resident's concurrent requests until commit (SQLite serialises writers anyway);
the counts it then reads cannot change under it.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.expressions import F

from backend.clock import to_local
from backend.uow import current_unit
from venues.bookings.errors import rule
from venues.bookings.models import ACTIVE, Booking, BookingStatus, ResidentState
from venues.bookings.settings import Policy
from venues.bookings.timegrid import week_bounds
from venues.models import Venue


async def lock_resident(user_id: int) -> None:
    """Bump the resident's state row (creating it on first use), holding it until commit."""
    bumped = ResidentState.filter(user_id=user_id)
    # The first statement writes, so SQLite takes the write lock before anything is read.
    if not await bumped.update(version=F("version") + 1):
        await ResidentState.bulk_create([ResidentState(user_id=user_id)], ignore_conflicts=True)
        await bumped.update(version=F("version") + 1)


async def check_resident(
    *,
    user_id: int,
    venue: Venue,
    start: datetime,
    end: datetime,
    now: datetime,
    policy: Policy,
    booking_id: int | None = None,
) -> None:
    """Lock the resident, then raise the rule a booking of start..end at the venue would break."""
    if current_unit() is None:
        raise RuntimeError("check_resident must run inside the booking's unit of work")
    await lock_resident(user_id)
    state = await ResidentState.get(user_id=user_id)
    if state.suspended_until is not None and state.suspended_until > now:
        until = to_local(state.suspended_until).strftime("%Y-%m-%d")
        raise rule("booking_suspended", f"因多次爽约，预约功能暂停至 {until}")
    others = Booking.filter(user_id=user_id)
    if booking_id is not None:  # the hold being confirmed does not count against itself
        others = others.exclude(id=booking_id)
    if await others.filter(status__in=ACTIVE, end__gt=now).count() >= policy.max_active_bookings:
        raise rule("quota_active_bookings", f"同时最多保留 {policy.max_active_bookings} 个有效预约")
    if (
        policy.one_unit_at_a_time
        and await others.filter(
            venue_id=venue.id, status__in=ACTIVE, start__lt=end, end__gt=start
        ).exists()
    ):
        raise rule("one_unit_at_a_time", "同一时段在同一场所只能预约一个单元", "start")
    week_start, week_end = week_bounds(start)
    rows = await others.filter(
        status__in=(*ACTIVE, BookingStatus.COMPLETED),
        start__gte=week_start,
        start__lt=week_end,
        venue__kind=venue.kind,
    ).values("start", "end")
    used = sum((r["end"] - r["start"]).total_seconds() for r in rows)
    if used + (end - start).total_seconds() > policy.max_hours_per_week * 3600:
        raise rule(
            "quota_weekly_hours",
            f"每周同类场所最多预约 {policy.max_hours_per_week} 小时",
            "minutes",
        )
