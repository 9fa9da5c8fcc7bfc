"""A booking's building blocks: finding it, claiming its cells, moving it between states.

Double bookings are impossible in the database: an active booking claims every grid cell it
covers (its buffer included) in ``bookings_claim`` under UNIQUE (unit, cell_start), in the same
transaction as the booking; ending a booking deletes its claims in the transaction that ends it.
"""

from __future__ import annotations

import secrets
from typing import Any

from backend.access import Principal
from backend.context import AppContext
from backend.errors import NotFound
from backend.uow import unit_of_work
from venues.bookings.messages import booking_message
from venues.bookings.models import BookableUnit, Booking, BookingStatus, SlotClaim
from venues.bookings.timegrid import cells
from venues.service import may_manage

# Statuses that end a booking and free its cells.
RELEASED = (
    BookingStatus.CANCELLED,
    BookingStatus.CANCELLED_BY_VENUE,
    BookingStatus.EXPIRED,
    BookingStatus.NO_SHOW,
    BookingStatus.REJECTED,
)


def new_token() -> str:
    """A random single-use check-in token."""
    return secrets.token_urlsafe(24)


async def claim(unit: BookableUnit, booking: Booking) -> None:
    """Claim the booking's cells (IntegrityError if any is taken); inside its unit of work."""
    await SlotClaim.bulk_create(
        [
            SlotClaim(unit_id=unit.id, cell_start=cell, booking_id=booking.id)
            for cell in cells(unit, booking.start, booking.end)
        ]
    )


async def booking_or_raise(public_id: str) -> Booking:
    """A booking with its unit, venue (and operator) and resident, or 404."""
    booking = (
        await Booking.filter(public_id=public_id)
        .select_related("unit", "venue", "venue__operator", "user")
        .first()
    )
    if booking is None:
        raise NotFound("预约不存在", code="booking_not_found")
    return booking


async def own_booking(*, actor: Principal, booking_id: str) -> Booking:
    """The caller's own booking; someone else's is the same 404 as a missing one."""
    booking = await booking_or_raise(booking_id)
    if booking.user.public_id != actor.user_id:
        raise NotFound("预约不存在", code="booking_not_found")
    return booking


async def visible_booking(*, actor: Principal, booking_id: str) -> Booking:
    """A booking for its resident, the venue's operator or the bureau."""
    booking = await booking_or_raise(booking_id)
    if booking.user.public_id == actor.user_id or may_manage(actor, booking.venue):
        return booking
    raise NotFound("预约不存在", code="booking_not_found")


async def transition(
    booking: Booking,
    frm: tuple[BookingStatus, ...],
    to: BookingStatus,
    *,
    tell: tuple[AppContext, str, str] | None = None,
    **changes: Any,
) -> bool:
    """Move a booking between states with one conditional update; release cells if it ends.

    Joins the caller's unit of work. ``tell`` = (ctx, message kind, note) writes the resident's
    message in the same transaction, so a state change and its message (in-app and outbox) are
    never separated by a crash.
    """
    async with unit_of_work():
        updated = await Booking.filter(id=booking.id, status__in=frm).update(status=to, **changes)
        if updated:
            if to in RELEASED:
                await SlotClaim.filter(booking_id=booking.id).delete()
            booking.status = to
            for name, value in changes.items():
                setattr(booking, name, value)
            if tell is not None:
                ctx, kind, note = tell
                await booking_message(ctx=ctx, booking=booking, kind=kind, note=note)
    return bool(updated)
