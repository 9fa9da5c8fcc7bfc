"""Slots: each active unit's starts on a local date, inside the opening hours, with a state."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

from backend import hours
from backend.clock import SHANGHAI
from backend.context import AppContext
from venues.bookings.models import Blackout, BookableUnit, BookingStatus, SlotClaim
from venues.bookings.timegrid import cells, day_bounds, on_grid, too_far
from venues.bookings.units import BOOKABLE_KINDS
from venues.models import Venue, VenueStatus
from venues.service import get_venue_or_raise


async def slots_for(*, ctx: AppContext, venue_id: str, day: date) -> tuple[Venue, list[Any]]:
    """Every unit's slots on a local date, each with its state."""
    venue = await get_venue_or_raise(venue_id)
    units = await BookableUnit.filter(venue=venue, active=True).order_by("name")
    now = ctx.clock.now()
    lo, hi = day_bounds(day)
    periods = (
        hours.open_intervals(venue.opening_hours, lo, hi)
        if venue.opening_hours and venue.kind in BOOKABLE_KINDS
        else []
    )
    result: list[tuple[BookableUnit, list[dict[str, Any]]]] = []
    if not units:
        return venue, result
    unit_ids = [u.id for u in units]
    claims = await SlotClaim.filter(
        unit_id__in=unit_ids, cell_start__gte=lo, cell_start__lt=hi + timedelta(hours=6)
    ).values("unit_id", "cell_start", "booking__status")
    taken: dict[tuple[int, datetime], str] = {
        (c["unit_id"], c["cell_start"].astimezone(SHANGHAI)): c["booking__status"] for c in claims
    }
    blackouts = await Blackout.filter(venue=venue, starts_at__lt=hi, ends_at__gt=lo)
    for unit in units:
        unit.venue = venue
        slots = []
        step = timedelta(minutes=unit.interval_minutes)
        length = timedelta(minutes=unit.slot_minutes)
        for begin, finish in periods:
            start = begin
            while not on_grid(unit, start):
                start += timedelta(minutes=1)
            while start + length <= finish:
                end = start + length
                slots.append(
                    {
                        "start": start,
                        "end": end,
                        "state": _slot_state(unit, venue, start, end, now, taken, blackouts),
                    }
                )
                start += step
        result.append((unit, slots))
    return venue, result


def _slot_state(
    unit: BookableUnit,
    venue: Venue,
    start: datetime,
    end: datetime,
    now: datetime,
    taken: dict[tuple[int, datetime], str],
    blackouts: list[Blackout],
) -> str:
    if venue.status != VenueStatus.OPEN:
        return "closed"
    if start < now:
        return "past"
    states = {
        taken[(unit.id, cell)] for cell in cells(unit, start, end) if (unit.id, cell) in taken
    }
    if states & {BookingStatus.HELD.value}:
        return "held"
    if states:
        return "booked"
    if any(
        b.starts_at < end and b.ends_at > start and b.unit_id in (None, unit.id) for b in blackouts
    ):
        return "blackout"
    if start < now + timedelta(minutes=unit.min_notice_minutes):
        return "too_soon"
    if too_far(unit, start, now):
        return "not_open_yet"
    return "free"
