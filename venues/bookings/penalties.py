"""No-shows and their penalty: N no-shows within D days suspend booking for S days."""

from __future__ import annotations

import logging
from datetime import timedelta

from backend.context import AppContext
from backend.errors import Conflict
from backend.uow import after_commit, unit_of_work
from venues.bookings.lifecycle import transition
from venues.bookings.models import Booking, BookingStatus, ResidentState
from venues.bookings.residents import lock_resident
from venues.bookings.units import effective_policy
from venues.bookings.waitlist import offer_freed_time
from venues.models import Venue

log = logging.getLogger("smartcircle.bookings")


async def mark_no_show(*, ctx: AppContext, booking: Booking) -> bool:
    """Mark a confirmed booking not checked in by the end of its window; penalise repeats.

    The one rule for the job and for staff alike: 409 ``checkin_window_open`` while the
    check-in window is still open; False when the booking is no longer confirmed.
    """
    now = ctx.clock.now()
    loaded = booking.venue  # fetched with the booking (the job and the console do), or not
    venue = loaded if isinstance(loaded, Venue) else await Venue.get(id=booking.venue_id)
    policy, _ = await effective_policy(ctx=ctx, venue=venue)
    if booking.start + timedelta(minutes=policy.checkin_after_minutes) > now:
        raise Conflict("签到时间结束后才能标记未到场", code="checkin_window_open")
    since = now - timedelta(days=policy.no_show_window_days)
    async with unit_of_work():
        if not await transition(
            booking, (BookingStatus.CONFIRMED,), BookingStatus.NO_SHOW, ended_at=now
        ):
            return False
        count = await Booking.filter(
            user_id=booking.user_id, status=BookingStatus.NO_SHOW, start__gte=since
        ).count()
        if count >= policy.no_show_limit and policy.suspension_days > 0:
            await lock_resident(booking.user_id)
            await ResidentState.filter(user_id=booking.user_id).update(
                suspended_until=now + timedelta(days=policy.suspension_days)
            )

            async def log_suspension() -> None:
                log.info("resident suspended for no-shows", extra={"count": count})

            await after_commit(log_suspension)
        await offer_freed_time(ctx=ctx, booking=booking)
    return True
