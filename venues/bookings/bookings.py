"""The resident's side of a booking: hold a slot, confirm the hold, cancel, list their bookings.

A hold claims its cells in the transaction that creates it (409 ``slot_taken`` when any is
claimed). Creating and confirming both run the per-resident rules (:mod:`.residents`) in their
unit of work; a cancellation frees the cells, closes the waitlist offer and writes the audit
entry in one unit, and the freed time is offered to the waitlist after it commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial
from typing import Any

from tortoise.exceptions import IntegrityError

from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict, ValidationFailed
from backend.models import User
from backend.uow import unit_of_work
from venues.bookings.blackouts import blackout_overlaps
from venues.bookings.errors import rule
from venues.bookings.flights import SLOT_FLIGHTS, slot_taken
from venues.bookings.holds import expire_booking, expire_stale_holds
from venues.bookings.lifecycle import claim, new_token, own_booking, transition
from venues.bookings.models import BookableUnit, Booking, BookingStatus, WaitlistEntry, WaitStatus
from venues.bookings.residents import check_resident
from venues.bookings.schemas import BookingCreate
from venues.bookings.settings import Policy
from venues.bookings.timegrid import check_time, utc
from venues.bookings.units import effective_policy, unit_or_raise
from venues.bookings.waitlist import offer_freed_time


async def create_booking(*, ctx: AppContext, actor: Principal, data: BookingCreate) -> Booking:
    """Hold a slot for the resident (201), 409 ``slot_taken`` if any of its cells is claimed.

    Concurrent attempts with the same request in this worker take turns (:mod:`.flights`): once
    one has taken the slot, those waiting behind it are refused without running the path again.
    """
    run = partial(_create, ctx=ctx, actor=actor, data=data)
    return await SLOT_FLIGHTS.attempt(flight_key(data), run)


def flight_key(data: BookingCreate) -> tuple[object, ...]:
    """Attempts with equal keys are the same request (whoever sends it): same outcome checks."""
    return (data.unit_id, data.venue_id, utc(data.start), data.minutes, data.party_size)


async def _create(*, ctx: AppContext, actor: Principal, data: BookingCreate) -> Booking:
    unit = await unit_or_raise(data.unit_id)
    if data.venue_id is not None and data.venue_id != unit.venue.public_id:
        raise rule("unit_not_in_venue", "该单元不属于所选场所", "venue_id")
    now = ctx.clock.now()
    start = utc(data.start)
    minutes = data.minutes or unit.slot_minutes
    end = check_time(unit, start, minutes, now)
    if data.party_size > unit.capacity:
        raise rule("party_too_large", f"人数不能超过 {unit.capacity} 人", "party_size")
    if await blackout_overlaps(unit, start, end):
        raise rule("blackout", "该时段暂停开放（维护或活动）", "start")
    policy, _ = await effective_policy(ctx=ctx, venue=unit.venue)
    user = await User.get(public_id=actor.user_id)
    for attempt in range(2):
        try:
            booking = await _insert_booking(
                unit=unit, user=user, start=start, end=end, now=now, policy=policy, data=data
            )
            break
        except IntegrityError:
            # A hold that ran out but was not yet expired by the job does not block anyone.
            if attempt or not await expire_stale_holds(ctx=ctx, unit=unit, start=start, end=end):
                raise slot_taken() from None
    booking.unit, booking.venue, booking.user = unit, unit.venue, user
    return booking


async def _insert_booking(
    *,
    unit: BookableUnit,
    user: User,
    start: datetime,
    end: datetime,
    now: datetime,
    policy: Policy,
    data: BookingCreate,
) -> Booking:
    async with unit_of_work():
        await check_resident(
            user_id=user.id, venue=unit.venue, start=start, end=end, now=now, policy=policy
        )
        booking = await Booking.create(
            unit=unit,
            venue_id=unit.venue_id,
            user=user,
            start=start,
            end=end,
            party_size=data.party_size,
            status=BookingStatus.HELD,
            hold_expires_at=now + timedelta(minutes=policy.hold_minutes),
            created_at=now,
        )
        await claim(unit, booking)
    return booking


async def confirm_booking(*, ctx: AppContext, actor: Principal, booking_id: str) -> Booking:
    """Confirm a held booking: confirmed, or pending approval where the unit needs it."""
    booking = await own_booking(actor=actor, booking_id=booking_id)
    now = ctx.clock.now()
    if booking.status != BookingStatus.HELD:
        raise Conflict("该预约不是待确认状态", code="not_held")
    if booking.hold_expires_at is not None and booking.hold_expires_at <= now:
        await expire_booking(ctx=ctx, booking=booking)
        raise Conflict("保留时间已过，请重新预约", code="hold_expired")
    if booking.unit.requires_approval:
        to, kind = BookingStatus.PENDING_APPROVAL, "pending_approval"
        changes: dict[str, Any] = {"hold_expires_at": None}
    else:
        to, kind = BookingStatus.CONFIRMED, "confirmed"
        changes = {"hold_expires_at": None, "confirmed_at": now, "qr_token": new_token()}
    policy, _ = await effective_policy(ctx=ctx, venue=booking.venue)
    async with unit_of_work():
        # A waitlist offer is made to whoever was first in line: they must still qualify now.
        await check_resident(
            user_id=booking.user_id,
            venue=booking.venue,
            start=booking.start,
            end=booking.end,
            now=now,
            policy=policy,
            booking_id=booking.id,
        )
        if not await transition(
            booking, (BookingStatus.HELD,), to, tell=(ctx, kind, ""), **changes
        ):
            raise Conflict("该预约状态已变化", code="not_held")
        if booking.from_waitlist:
            await WaitlistEntry.filter(booking_id=booking.id).update(status=WaitStatus.ACCEPTED)
    return booking


async def cancel_booking(*, ctx: AppContext, actor: Principal, booking_id: str) -> Booking:
    """The resident cancels before the cut-off (a hold may be dropped at any time)."""
    booking = await own_booking(actor=actor, booking_id=booking_id)
    now = ctx.clock.now()
    cancellable = (BookingStatus.HELD, BookingStatus.PENDING_APPROVAL, BookingStatus.CONFIRMED)
    if booking.status not in cancellable:
        raise Conflict("该预约已无法取消", code="not_cancellable")
    if booking.status != BookingStatus.HELD:
        policy, _ = await effective_policy(ctx=ctx, venue=booking.venue)
        if now > booking.start - timedelta(minutes=policy.cancel_cutoff_minutes):
            raise rule("cancel_too_late", f"开始前 {policy.cancel_cutoff_minutes} 分钟内不能取消")
    async with unit_of_work():
        if not await transition(booking, cancellable, BookingStatus.CANCELLED, ended_at=now):
            raise Conflict("该预约状态已变化", code="not_cancellable")
        await WaitlistEntry.filter(booking_id=booking.id, status=WaitStatus.OFFERED).update(
            status=WaitStatus.CANCELLED
        )
        await record(ctx=ctx, actor=actor, action="booking.cancel", obj=("booking", booking_id))
        await offer_freed_time(ctx=ctx, booking=booking)
    return booking


async def list_my_bookings(
    *, actor: Principal, status: str | None, limit: int, offset: int
) -> tuple[list[Booking], bool]:
    """The resident's bookings, latest start first."""
    query = Booking.filter(user__public_id=actor.user_id)
    if status:
        try:
            query = query.filter(status=BookingStatus(status))
        except ValueError:
            raise ValidationFailed(fields={"status": "未知的预约状态"}) from None
    rows = (
        await query.select_related("unit", "venue")
        .order_by("-start", "-id")
        .offset(offset)
        .limit(limit + 1)
    )
    return rows[:limit], len(rows) > limit
