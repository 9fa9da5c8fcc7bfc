"""The waitlist: residents wait for a taken slot and are offered it, in order, when it frees up.

An offer is a ``held`` booking of the waiting resident's own, made in one unit of work with the
per-resident rules: a resident who no longer qualifies is passed over and the next in line is
offered the slot. Time freed by a flow is offered once that flow's unit of work has committed;
the ``bookings.waitlist`` job repeats promotion in case that failed.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError

from backend.access import Principal
from backend.context import AppContext
from backend.errors import Conflict, NotFound, Unprocessable
from backend.models import User
from backend.uow import after_commit, unit_of_work
from venues.bookings.errors import rule
from venues.bookings.lifecycle import claim
from venues.bookings.messages import booking_message
from venues.bookings.models import Booking, BookingStatus, SlotClaim, WaitlistEntry, WaitStatus
from venues.bookings.residents import check_resident
from venues.bookings.schemas import WaitlistCreate
from venues.bookings.timegrid import cells, check_time, utc
from venues.bookings.units import effective_policy, unit_or_raise

log = logging.getLogger("smartcircle.bookings")
OPEN = (WaitStatus.WAITING, WaitStatus.OFFERED)


async def join_waitlist(
    *, ctx: AppContext, actor: Principal, data: WaitlistCreate
) -> tuple[WaitlistEntry, int]:
    """Wait for a taken slot; the first in line is offered it when it frees up."""
    unit = await unit_or_raise(data.unit_id)
    now = ctx.clock.now()
    start = utc(data.start)
    end = check_time(unit, start, data.minutes or unit.slot_minutes, now)
    user = await User.get(public_id=actor.user_id)
    wanted = cells(unit, start, end)
    holders = await SlotClaim.filter(unit=unit, cell_start__in=wanted).values_list(
        "booking__user_id", flat=True
    )
    if not holders:
        raise rule("slot_free", "该时段仍可预约，请直接预约", "start")
    if user.id in holders:
        raise Conflict("你已预约该时段", code="already_booked")
    entry = await WaitlistEntry.filter(unit=unit, user=user, start=start).first()
    if entry is not None and entry.status in OPEN:
        raise Conflict("你已在候补名单中", code="already_waiting")
    policy, _ = await effective_policy(ctx=ctx, venue=unit.venue)
    try:
        async with unit_of_work():
            # Waiting is a path to a booking: the resident must qualify for it as for a booking.
            await check_resident(
                user_id=user.id, venue=unit.venue, start=start, end=end, now=now, policy=policy
            )
            if entry is None:
                entry = await WaitlistEntry.create(
                    unit=unit, user=user, start=start, end=end, created_at=now
                )
            else:
                entry.status, entry.end, entry.created_at, entry.booking_id = (  # type: ignore[assignment]
                    WaitStatus.WAITING,
                    end,
                    now,
                    None,
                )
                await entry.save()
    except IntegrityError:
        raise Conflict("你已在候补名单中", code="already_waiting") from None
    return entry, await waitlist_position(entry)


async def waitlist_position(entry: WaitlistEntry) -> int:
    """1-based place in line among those waiting for the same start."""
    ahead = await WaitlistEntry.filter(
        unit_id=entry.unit_id,
        start=entry.start,
        status=WaitStatus.WAITING,
        created_at__lt=entry.created_at,
    ).count()
    return ahead + 1


async def leave_waitlist(*, actor: Principal, entry_id: str) -> None:
    """Leave the waitlist (an offer already made stays a hold until it expires)."""
    entry = await WaitlistEntry.filter(public_id=entry_id, user__public_id=actor.user_id).first()
    if entry is None:
        raise NotFound("候补记录不存在", code="waitlist_entry_not_found")
    await WaitlistEntry.filter(id=entry.id, status=WaitStatus.WAITING).update(
        status=WaitStatus.CANCELLED
    )


async def my_waitlist(*, actor: Principal) -> list[WaitlistEntry]:
    """The resident's waitlist entries that are still open."""
    return (
        await WaitlistEntry.filter(user__public_id=actor.user_id, status__in=OPEN)
        .select_related("unit", "booking")
        .order_by("start")
    )


async def offer_freed_time(*, ctx: AppContext, booking: Booking) -> None:
    """Once the current unit of work commits, offer the booking's unit to the waitlist."""
    unit_id = booking.unit_id

    async def promote_after_release() -> None:
        try:
            await promote_waitlist(ctx=ctx, unit_id=unit_id)
        except Exception:
            log.exception("waitlist promotion failed; the job will retry")

    await after_commit(promote_after_release)


async def promote_waitlist(*, ctx: AppContext, unit_id: int | None = None) -> int:
    """Offer every free waited-for slot to the first resident in line; returns offers made."""
    now = ctx.clock.now()
    query = WaitlistEntry.filter(status=WaitStatus.WAITING, start__gt=now)
    if unit_id is not None:
        query = query.filter(unit_id=unit_id)
    entries = await query.order_by("created_at", "id").select_related("unit", "unit__venue", "user")
    offers = 0
    tried: set[tuple[int, datetime]] = set()
    for entry in entries:
        key = (entry.unit_id, entry.start)
        if key in tried:
            continue
        if await _offer(ctx=ctx, entry=entry, now=now):
            offers += 1
            tried.add(key)
        elif await _taken(entry):
            tried.add(key)  # still taken: nobody behind this entry can have it either
    return offers


async def _taken(entry: WaitlistEntry) -> bool:
    wanted = cells(entry.unit, entry.start, entry.end)
    return await SlotClaim.filter(unit_id=entry.unit_id, cell_start__in=wanted).exists()


async def _offer(*, ctx: AppContext, entry: WaitlistEntry, now: datetime) -> bool:
    """Offer the entry's slot to its resident in one unit of work; whether it was offered."""
    unit = entry.unit
    try:
        check_time(
            unit, entry.start, int((entry.end - entry.start).total_seconds() // 60), now, offer=True
        )
    except Unprocessable:
        await WaitlistEntry.filter(id=entry.id).update(status=WaitStatus.EXPIRED)
        return False
    if await _taken(entry):
        return False  # judge the resident only when the slot is there to offer
    policy, _ = await effective_policy(ctx=ctx, venue=unit.venue)
    expires = min(now + timedelta(minutes=policy.waitlist_offer_minutes), entry.start)
    try:
        async with unit_of_work():
            await check_resident(
                user_id=entry.user_id,
                venue=unit.venue,
                start=entry.start,
                end=entry.end,
                now=now,
                policy=policy,
            )
            if not await WaitlistEntry.filter(id=entry.id, status=WaitStatus.WAITING).update(
                status=WaitStatus.OFFERED
            ):
                return False
            booking = await Booking.create(
                unit=unit,
                venue_id=unit.venue_id,
                user_id=entry.user_id,
                start=entry.start,
                end=entry.end,
                status=BookingStatus.HELD,
                hold_expires_at=expires,
                from_waitlist=True,
                created_at=now,
            )
            await claim(unit, booking)
            await WaitlistEntry.filter(id=entry.id).update(booking_id=booking.id)
            minutes = int((expires - now).total_seconds() // 60)
            await booking_message(
                ctx=ctx, booking=booking, kind="waitlist_offer", note=f"请在 {minutes} 分钟内确认"
            )
    except Unprocessable as exc:
        # The resident no longer qualifies (suspended, quota, another unit at that time):
        # their turn has come and gone, and the next in line is offered the slot.
        await WaitlistEntry.filter(id=entry.id, status=WaitStatus.WAITING).update(
            status=WaitStatus.EXPIRED
        )
        log.info("waitlist entry passed over", extra={"code": exc.code})
        return False
    except IntegrityError:
        return False
    return True
