"""Booking jobs: expire holds, mark no-shows, complete visits, remind, promote, deliver."""

from __future__ import annotations

import contextlib
from datetime import timedelta

from backend.context import AppContext
from backend.errors import Conflict
from backend.uow import unit_of_work
from venues.bookings import holds, penalties, waitlist
from venues.bookings.delivery import deliver_outbox
from venues.bookings.messages import booking_message
from venues.bookings.models import Booking, BookingStatus
from venues.bookings.units import effective_policy

BATCH = 200


async def expire_holds(ctx: AppContext) -> None:
    """Holds past their expiry, and approvals still pending at the start, end as expired."""
    now = ctx.clock.now()
    rows = await Booking.filter(status=BookingStatus.HELD, hold_expires_at__lte=now).limit(BATCH)
    rows += await Booking.filter(status=BookingStatus.PENDING_APPROVAL, start__lte=now).limit(BATCH)
    for booking in rows:
        await holds.expire_booking(ctx=ctx, booking=booking)


async def mark_no_shows(ctx: AppContext) -> None:
    """Confirmed bookings not checked in by the end of the window become no-shows."""
    now = ctx.clock.now()
    candidates = (
        await Booking.filter(status=BookingStatus.CONFIRMED, start__lte=now)
        .select_related("venue")
        .limit(BATCH)
    )
    for booking in candidates:
        with contextlib.suppress(Conflict):  # its check-in window is still open
            await penalties.mark_no_show(ctx=ctx, booking=booking)


async def complete_visits(ctx: AppContext) -> None:
    """Checked-in bookings whose time is over are completed."""
    now = ctx.clock.now()
    ids = await Booking.filter(status=BookingStatus.CHECKED_IN, end__lte=now).values_list(
        "id", flat=True
    )
    if ids:  # read first: an idle run writes nothing
        await Booking.filter(id__in=list(ids), status=BookingStatus.CHECKED_IN).update(
            status=BookingStatus.COMPLETED, ended_at=now
        )


async def queue_reminders(ctx: AppContext) -> None:
    """Queue one reminder per confirmed booking starting within the reminder lead time."""
    now = ctx.clock.now()
    candidates = (
        await Booking.filter(
            status=BookingStatus.CONFIRMED,
            reminder_queued=False,
            start__gt=now,
            start__lte=now + timedelta(days=7),
        )
        .select_related("venue")
        .order_by("start")
        .limit(BATCH)
    )
    for booking in candidates:
        policy, _ = await effective_policy(ctx=ctx, venue=booking.venue)
        if booking.start - timedelta(minutes=policy.reminder_minutes) > now:
            continue
        async with unit_of_work():  # the flag and the message commit together
            queued = await Booking.filter(id=booking.id, reminder_queued=False).update(
                reminder_queued=True
            )
            if queued:
                await booking_message(ctx=ctx, booking=booking, kind="reminder")


async def promote_waitlist(ctx: AppContext) -> None:
    """Offer freed slots to waiting residents (catches anything the request path missed)."""
    await waitlist.promote_waitlist(ctx=ctx)


async def deliver(ctx: AppContext) -> None:
    """Send due WeChat subscription messages."""
    await deliver_outbox(ctx)
