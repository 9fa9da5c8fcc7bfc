"""Holds that run out: a hold not confirmed in time (or an approval still pending at the start)
ends as expired and its time is offered to the waitlist."""

from __future__ import annotations

from datetime import datetime, timedelta

from backend.context import AppContext
from backend.uow import unit_of_work
from venues.bookings.lifecycle import transition
from venues.bookings.models import BookableUnit, Booking, BookingStatus, WaitlistEntry, WaitStatus
from venues.bookings.waitlist import offer_freed_time


async def expire_booking(*, ctx: AppContext, booking: Booking) -> bool:
    """End a hold (or an unanswered approval) that ran out; offer its time to the waitlist."""
    async with unit_of_work():
        if not await transition(
            booking,
            (BookingStatus.HELD, BookingStatus.PENDING_APPROVAL),
            BookingStatus.EXPIRED,
            ended_at=ctx.clock.now(),
        ):
            return False
        await WaitlistEntry.filter(booking_id=booking.id, status=WaitStatus.OFFERED).update(
            status=WaitStatus.EXPIRED
        )
        await offer_freed_time(ctx=ctx, booking=booking)
    return True


async def expire_stale_holds(
    *, ctx: AppContext, unit: BookableUnit, start: datetime, end: datetime
) -> bool:
    """Expire run-out holds whose cells overlap start..end; whether any was expired."""
    buffer = timedelta(minutes=unit.buffer_minutes)
    stale = await Booking.filter(
        unit_id=unit.id,
        status=BookingStatus.HELD,
        hold_expires_at__lte=ctx.clock.now(),
        start__lt=end + buffer,
        end__gt=start - buffer,
    )
    expired = False
    for booking in stale:
        expired = await expire_booking(ctx=ctx, booking=booking) or expired
    return expired
