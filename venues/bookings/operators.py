"""Operators' actions on bookings: cancel with a reason, approve, reject, and a day's list."""

from __future__ import annotations

from datetime import date

from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict
from backend.uow import unit_of_work
from venues.bookings.lifecycle import booking_or_raise, new_token, transition
from venues.bookings.models import ACTIVE, Booking, BookingStatus
from venues.bookings.timegrid import day_bounds
from venues.bookings.units import check_manage
from venues.bookings.waitlist import offer_freed_time
from venues.models import Venue
from venues.service import get_venue_or_raise


async def venue_cancel(
    *, ctx: AppContext, actor: Principal, booking_id: str, reason: str
) -> Booking:
    """The venue cancels a booking with a reason; the resident is told."""
    booking = await booking_or_raise(booking_id)
    check_manage(actor, booking.venue)
    async with unit_of_work():
        if not await transition(
            booking,
            ACTIVE,
            BookingStatus.CANCELLED_BY_VENUE,
            tell=(ctx, "cancelled", f"原因：{reason}"),
            reason=reason,
            ended_at=ctx.clock.now(),
        ):
            raise Conflict("该预约已无法取消", code="not_cancellable")
        await record(
            ctx=ctx,
            actor=actor,
            action="booking.venue_cancel",
            obj=("booking", booking_id),
            reason=reason,
        )
        await offer_freed_time(ctx=ctx, booking=booking)
    return booking


async def approve(*, ctx: AppContext, actor: Principal, booking_id: str) -> Booking:
    """Approve a booking that waits for approval."""
    booking = await booking_or_raise(booking_id)
    check_manage(actor, booking.venue)
    now = ctx.clock.now()
    async with unit_of_work():
        if not await transition(
            booking,
            (BookingStatus.PENDING_APPROVAL,),
            BookingStatus.CONFIRMED,
            tell=(ctx, "confirmed", ""),
            confirmed_at=now,
            qr_token=new_token(),
        ):
            raise Conflict("该预约不在待审核状态", code="not_pending_approval")
        await record(ctx=ctx, actor=actor, action="booking.approve", obj=("booking", booking_id))
    return booking


async def reject(*, ctx: AppContext, actor: Principal, booking_id: str, reason: str) -> Booking:
    """Reject a booking that waits for approval; its time becomes free again."""
    booking = await booking_or_raise(booking_id)
    check_manage(actor, booking.venue)
    async with unit_of_work():
        if not await transition(
            booking,
            (BookingStatus.PENDING_APPROVAL,),
            BookingStatus.REJECTED,
            tell=(ctx, "rejected", f"原因：{reason}"),
            reason=reason,
            ended_at=ctx.clock.now(),
        ):
            raise Conflict("该预约不在待审核状态", code="not_pending_approval")
        await record(
            ctx=ctx,
            actor=actor,
            action="booking.reject",
            obj=("booking", booking_id),
            reason=reason,
        )
        await offer_freed_time(ctx=ctx, booking=booking)
    return booking


async def day_bookings(
    *, actor: Principal, venue_id: str, day: date
) -> tuple[Venue, list[Booking]]:
    """A venue's bookings on a local date, for its operator or the bureau."""
    venue = await get_venue_or_raise(venue_id)
    check_manage(actor, venue)
    lo, hi = day_bounds(day)
    rows = (
        await Booking.filter(venue=venue, start__gte=lo, start__lt=hi)
        .select_related("unit", "venue", "user")
        .order_by("start", "unit__name")
    )
    return venue, rows
