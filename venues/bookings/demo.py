"""Demo bookings: courts and rooms for the demo sports venues and activity rooms, some booked."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta

from tortoise.exceptions import IntegrityError

from backend.clock import SHANGHAI
from backend.models import Role, User
from backend.uow import unit_of_work
from venues.bookings.models import BookableUnit, Booking, BookingStatus, SlotClaim
from venues.bookings.timegrid import cells, on_grid, within_hours
from venues.models import Venue, VenueKind, VenueStatus

SPORTS_VENUES = 8
ACTIVITY_ROOMS = 6
# Demo residents (sign in with POST /api/v1/auth/wechat {"code": "dev:<name>"}).
RESIDENTS = ("xiaoming", "xiaohong", "laozhang")
COURT_RULES = {
    "slot_minutes": 60,
    "interval_minutes": 30,
    "min_minutes": 60,
    "max_minutes": 120,
    "buffer_minutes": 0,
    "opens_days_ahead": 7,
    "min_notice_minutes": 30,
    "capacity": 4,
    "price_text": "每小时 30 元",
}
ROOM_RULES = {
    "slot_minutes": 120,
    "interval_minutes": 30,
    "min_minutes": 60,
    "max_minutes": 240,
    "buffer_minutes": 30,
    "opens_days_ahead": 14,
    "min_notice_minutes": 120,
    "capacity": 30,
    "requires_approval": True,
    "price_text": "免费（需审核）",
}


async def _units() -> list[BookableUnit]:
    sports = (
        await Venue.filter(
            kind=VenueKind.SPORTS_VENUE, status=VenueStatus.OPEN, opening_hours__isnull=False
        )
        .order_by("id")
        .limit(SPORTS_VENUES)
    )
    rooms = (
        await Venue.filter(
            kind=VenueKind.ACTIVITY_ROOM, status=VenueStatus.OPEN, opening_hours__isnull=False
        )
        .order_by("id")
        .limit(ACTIVITY_ROOMS)
    )
    operator = await User.filter(username="operator", role=Role.VENUE_OPERATOR).first()
    if operator is not None and sports and sports[0].operator_id is None:
        await Venue.filter(id=sports[0].id).update(operator_id=operator.id)
    plan = [(v, f"{n}号场", COURT_RULES) for v in sports for n in (1, 2, 3)]
    plan += [(v, name, ROOM_RULES) for v in rooms for name in ("活动室A", "多功能厅")]
    units = []
    for venue, name, rules in plan:
        unit, _ = await BookableUnit.get_or_create(venue=venue, name=name, defaults=rules)
        unit.venue = venue
        units.append(unit)
    return units


async def _residents() -> list[User]:
    found = []
    for name in RESIDENTS:
        user, _ = await User.get_or_create(
            wechat_openid=f"dev:{name}", defaults={"role": Role.RESIDENT, "display_name": name}
        )
        found.append(user)
    return found


async def load_bookings_demo(*, now: datetime | None = None) -> list[str]:
    """Create demo units and a few bookings once; returns summary lines."""
    now = now or datetime.now(UTC)
    units = await _units()
    residents = await _residents()
    if await Booking.filter(user_id__in=[u.id for u in residents]).exists():
        return [f"demo bookings: {len(units)} units, bookings already there"]
    today = now.astimezone(SHANGHAI).date()
    made = 0
    for i, unit in enumerate(units[:12]):
        user = residents[i % len(residents)]
        day = today + timedelta(days=1 + i % 3)
        hour = 9 + (i * 2) % 10
        start = datetime(day.year, day.month, day.day, hour, tzinfo=SHANGHAI)
        end = start + timedelta(minutes=unit.slot_minutes)
        if not on_grid(unit, start) or not within_hours(unit.venue, start, end):
            continue
        if await Booking.filter(
            user=user, venue_id=unit.venue_id, start__lt=end, end__gt=start
        ).exists():
            continue
        status = (
            BookingStatus.PENDING_APPROVAL if unit.requires_approval else BookingStatus.CONFIRMED
        )
        try:
            async with unit_of_work():
                booking = await Booking.create(
                    unit=unit,
                    venue_id=unit.venue_id,
                    user=user,
                    start=start.astimezone(UTC),
                    end=end.astimezone(UTC),
                    status=status,
                    created_at=now,
                    confirmed_at=now if status == BookingStatus.CONFIRMED else None,
                    qr_token=secrets.token_urlsafe(24)
                    if status == BookingStatus.CONFIRMED
                    else None,
                )
                await SlotClaim.bulk_create(
                    [
                        SlotClaim(unit_id=unit.id, cell_start=c, booking_id=booking.id)
                        for c in cells(unit, booking.start, booking.end)
                    ]
                )
        except IntegrityError:
            continue
        made += 1
    return [f"demo bookings: {len(units)} units, {made} bookings for {', '.join(RESIDENTS)}"]
