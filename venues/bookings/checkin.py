"""Check-in: the operator scans a resident's QR token within the check-in window."""

from __future__ import annotations

from datetime import timedelta

from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict, NotFound
from backend.uow import unit_of_work
from venues.bookings.errors import rule
from venues.bookings.lifecycle import transition
from venues.bookings.models import Booking, BookingStatus
from venues.bookings.units import effective_policy
from venues.service import may_manage


async def check_in(*, ctx: AppContext, actor: Principal, token: str) -> Booking:
    """The operator scans a resident's QR token within the check-in window."""
    booking = (
        await Booking.filter(qr_token=token)
        .select_related("unit", "venue", "venue__operator", "user")
        .first()
    )
    if booking is None or not may_manage(actor, booking.venue):
        raise NotFound("二维码无效", code="checkin_token_invalid")
    if booking.status == BookingStatus.CHECKED_IN:
        raise Conflict("该预约已签到", code="already_checked_in")
    if booking.status != BookingStatus.CONFIRMED:
        raise Conflict("该预约当前不能签到", code="not_confirmed")
    policy, _ = await effective_policy(ctx=ctx, venue=booking.venue)
    now = ctx.clock.now()
    opens = booking.start - timedelta(minutes=policy.checkin_before_minutes)
    closes = booking.start + timedelta(minutes=policy.checkin_after_minutes)
    if not opens <= now <= closes:
        raise rule("checkin_outside_window", "不在签到时间范围内", "token")
    async with unit_of_work():
        if not await transition(
            booking, (BookingStatus.CONFIRMED,), BookingStatus.CHECKED_IN, checked_in_at=now
        ):
            raise Conflict("该预约已签到", code="already_checked_in")
        await record(
            ctx=ctx, actor=actor, action="booking.check_in", obj=("booking", booking.public_id)
        )
    return booking
