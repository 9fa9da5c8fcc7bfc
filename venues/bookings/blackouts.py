"""Blackouts: periods when a unit, or every unit of a venue, cannot be booked."""

from __future__ import annotations

from datetime import datetime

from tortoise.expressions import Q

from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import NotFound
from backend.uow import unit_of_work
from venues.bookings.errors import rule
from venues.bookings.models import ACTIVE, Blackout, BookableUnit, Booking
from venues.bookings.schemas import BlackoutCreate
from venues.bookings.units import check_manage
from venues.models import Venue
from venues.service import get_venue_or_raise


async def blackout_overlaps(unit: BookableUnit, start: datetime, end: datetime) -> bool:
    """Whether a blackout of the unit or of its whole venue overlaps start..end."""
    whole_venue = Q(venue_id=unit.venue_id, unit_id__isnull=True)
    return await (
        Blackout.filter(starts_at__lt=end, ends_at__gt=start)
        .filter(whole_venue | Q(unit_id=unit.id))
        .exists()
    )


async def add_blackout(
    *, ctx: AppContext, actor: Principal, venue_id: str, data: BlackoutCreate
) -> tuple[Blackout, list[str]]:
    """Close a unit (or the venue) for a period; returns the bookings it overlaps."""
    venue = await get_venue_or_raise(venue_id)
    check_manage(actor, venue)
    unit = None
    if data.unit_id:
        unit = await BookableUnit.filter(public_id=data.unit_id, venue=venue).first()
        if unit is None:
            raise rule("unit_not_in_venue", "该单元不属于此场所", "unit_id")
    async with unit_of_work():
        blackout = await Blackout.create(
            venue=venue,
            unit=unit,
            starts_at=data.starts_at,
            ends_at=data.ends_at,
            reason=data.reason,
            created_at=ctx.clock.now(),
        )
        await record(
            ctx=ctx,
            actor=actor,
            action="blackout.create",
            obj=("blackout", blackout.public_id),
            reason=data.reason,
        )
    query = Booking.filter(
        venue=venue, status__in=ACTIVE, start__lt=data.ends_at, end__gt=data.starts_at
    )
    if unit is not None:
        query = query.filter(unit=unit)
    conflicts = await query.values_list("public_id", flat=True)
    return blackout, [str(c) for c in conflicts]


async def remove_blackout(*, ctx: AppContext, actor: Principal, blackout_id: str) -> None:
    """Remove a blackout."""
    blackout = await Blackout.filter(public_id=blackout_id).select_related("venue").first()
    if blackout is None:
        raise NotFound("停用时段不存在", code="blackout_not_found")
    venue = await get_venue_or_raise(blackout.venue.public_id)
    check_manage(actor, venue)
    async with unit_of_work():
        await blackout.delete()
        await record(ctx=ctx, actor=actor, action="blackout.delete", obj=("blackout", blackout_id))


async def list_blackouts(*, venue_id: str, now: datetime) -> tuple[Venue, list[Blackout]]:
    """A venue's blackouts that have not ended."""
    venue = await get_venue_or_raise(venue_id)
    rows = (
        await Blackout.filter(venue=venue, ends_at__gt=now)
        .select_related("unit")
        .order_by("starts_at")
    )
    return venue, rows
