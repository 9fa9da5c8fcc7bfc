"""Booking rules: units, policy, slots, the booking lifecycle, quotas, blackouts and the waitlist.

Double bookings are impossible in the database: an active booking claims every grid cell it
covers (its buffer included) in ``bookings_claim`` under UNIQUE (unit, cell_start), in the same
transaction as the booking. Per-resident rules run after locking the resident's state row.
"""

from __future__ import annotations

import contextlib
import logging
import secrets
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from backend import hours
from backend.access import Principal
from backend.audit import record
from backend.clock import SHANGHAI, to_local
from backend.context import AppContext
from backend.errors import Conflict, Forbidden, NotFound, Unprocessable, ValidationFailed
from backend.models import User
from venues.bookings.messages import booking_message
from venues.bookings.models import (
    ACTIVE,
    Blackout,
    BookableUnit,
    Booking,
    BookingStatus,
    ResidentState,
    SlotClaim,
    VenuePolicy,
    WaitlistEntry,
    WaitStatus,
)
from venues.bookings.schemas import (
    BlackoutCreate,
    BookingCreate,
    PolicyPatch,
    UnitCreate,
    UnitPatch,
    WaitlistCreate,
)
from venues.bookings.settings import Policy, booking_settings
from venues.models import Venue, VenueKind, VenueStatus
from venues.service import get_venue_or_raise, may_manage

log = logging.getLogger("smartcircle.bookings")
BOOKABLE_KINDS = (VenueKind.SPORTS_VENUE, VenueKind.ACTIVITY_ROOM)
RELEASED = (
    BookingStatus.CANCELLED,
    BookingStatus.CANCELLED_BY_VENUE,
    BookingStatus.EXPIRED,
    BookingStatus.NO_SHOW,
    BookingStatus.REJECTED,
)


def _rule(code: str, message: str, field: str | None = None) -> Unprocessable:
    return Unprocessable(message, code=code, fields={field: message} if field else None)


# ---------------------------------------------------------------- venues, units, policy


def _check_manage(actor: Principal, venue: Venue) -> None:
    if not may_manage(actor, venue):
        raise Forbidden("只能管理自己运营的场所", code="not_venue_operator")


async def unit_or_raise(public_id: str) -> BookableUnit:
    """A unit with its venue (and the venue's operator), or 404."""
    unit = (
        await BookableUnit.filter(public_id=public_id)
        .select_related("venue", "venue__operator")
        .first()
    )
    if unit is None or unit.venue.status == VenueStatus.REMOVED:
        raise NotFound("预约单元不存在", code="unit_not_found")
    return unit


def _check_rules(values: dict[str, Any]) -> None:
    step = values["interval_minutes"]
    problems = {}
    for name in ("slot_minutes", "min_minutes", "max_minutes", "buffer_minutes"):
        if values[name] % step:
            problems[name] = f"必须是起始间隔 {step} 分钟的整数倍"
    if values["min_minutes"] > values["max_minutes"]:
        problems["min_minutes"] = "最短时长不能大于最长时长"
    if not values["min_minutes"] <= values["slot_minutes"] <= values["max_minutes"]:
        problems["slot_minutes"] = "默认时长必须在最短与最长时长之间"
    if problems:
        raise ValidationFailed(fields=problems)


async def create_unit(
    *, ctx: AppContext, actor: Principal, venue_id: str, data: UnitCreate
) -> BookableUnit:
    """Add a bookable unit to a sports venue or activity room (operator or bureau)."""
    venue = await get_venue_or_raise(venue_id)
    _check_manage(actor, venue)
    if venue.kind not in BOOKABLE_KINDS:
        raise _rule("venue_not_bookable", "只有体育场馆和活动室可以设置预约", "venue_id")
    values = data.model_dump()
    _check_rules(values)
    if await BookableUnit.filter(venue=venue, name=data.name).exists():
        raise Conflict("该场所已有同名单元", code="unit_name_taken")
    try:
        unit = await BookableUnit.create(venue=venue, **values)
    except IntegrityError:
        raise Conflict("该场所已有同名单元", code="unit_name_taken") from None
    await record(ctx=ctx, actor=actor, action="unit.create", obj=("unit", unit.public_id))
    unit.venue = venue
    return unit


async def update_unit(
    *, ctx: AppContext, actor: Principal, unit_id: str, data: UnitPatch
) -> BookableUnit:
    """Change a unit's rules (existing bookings keep their times)."""
    unit = await unit_or_raise(unit_id)
    _check_manage(actor, unit.venue)
    given = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}
    merged = {
        name: given.get(name, getattr(unit, name))
        for name in ("slot_minutes", "interval_minutes", "min_minutes", "max_minutes")
    }
    merged["buffer_minutes"] = given.get("buffer_minutes", unit.buffer_minutes)
    _check_rules(merged)
    if (
        merged["interval_minutes"] != unit.interval_minutes
        and await Booking.filter(
            unit_id=unit.id, status__in=ACTIVE, end__gt=ctx.clock.now()
        ).exists()
    ):
        # Claims are cells of the old grid: a new grid could let bookings overlap.
        raise Conflict("该单元还有未结束的预约，不能修改起始间隔", code="unit_has_bookings")
    for name, value in given.items():
        setattr(unit, name, value)
    try:
        await unit.save()
    except IntegrityError:
        raise Conflict("该场所已有同名单元", code="unit_name_taken") from None
    await record(ctx=ctx, actor=actor, action="unit.update", obj=("unit", unit.public_id))
    return unit


async def list_units(*, venue_id: str) -> tuple[Venue, list[BookableUnit]]:
    """A venue's units, active first, by name."""
    venue = await get_venue_or_raise(venue_id)
    units = await BookableUnit.filter(venue=venue).order_by("-active", "name")
    return venue, units


async def effective_policy(*, ctx: AppContext, venue: Venue) -> tuple[Policy, list[str]]:
    """The city-wide policy with this venue's overrides applied, and which were overridden."""
    base = booking_settings(ctx).policy
    row = await VenuePolicy.filter(venue_id=venue.id).first()
    overrides = row.overrides if row else {}
    return base.with_overrides(overrides), sorted(overrides)


async def set_policy(
    *, ctx: AppContext, actor: Principal, venue_id: str, data: PolicyPatch
) -> tuple[Venue, Policy, list[str]]:
    """Override city-wide rules for one venue (null returns a rule to the default)."""
    venue = await get_venue_or_raise(venue_id)
    row, _ = await VenuePolicy.get_or_create(venue=venue)
    overrides = dict(row.overrides)
    for name, value in data.model_dump(exclude_unset=True).items():
        if value is None:
            overrides.pop(name, None)
        else:
            overrides[name] = value
    row.overrides = overrides
    await row.save()
    await record(ctx=ctx, actor=actor, action="booking_policy.update", obj=("venue", venue_id))
    policy, overridden = await effective_policy(ctx=ctx, venue=venue)
    return venue, policy, overridden


# ---------------------------------------------------------------- time helpers


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Local midnight to the next local midnight."""
    start = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
    return start, start + timedelta(days=1)


def cells(unit: BookableUnit, start: datetime, end: datetime) -> list[datetime]:
    """The grid cells a booking from start to end claims, its buffer included."""
    step = timedelta(minutes=unit.interval_minutes)
    stop = end + timedelta(minutes=unit.buffer_minutes)
    found = []
    moment = start
    while moment < stop:
        found.append(moment)
        moment += step
    return found


def on_grid(unit: BookableUnit, start: datetime) -> bool:
    """Whether a start lies on the unit's grid (minutes since local midnight)."""
    local = start.astimezone(SHANGHAI)
    if local.second or local.microsecond:
        return False
    return (local.hour * 60 + local.minute) % unit.interval_minutes == 0


def within_hours(venue: Venue, start: datetime, end: datetime) -> bool:
    """Whether start..end lies inside one open period of the venue."""
    if not venue.opening_hours:
        return False
    local = start.astimezone(SHANGHAI)
    lo, _ = day_bounds(local.date())
    periods = hours.open_intervals(venue.opening_hours, lo, max(end, lo + timedelta(days=1)))
    return any(a <= start and end <= b for a, b in periods)


def _too_far(policy_unit: BookableUnit, start: datetime, now: datetime) -> bool:
    last_day = to_local(now).date() + timedelta(days=policy_unit.opens_days_ahead)
    return start.astimezone(SHANGHAI).date() > last_day


async def _blackout_overlaps(unit: BookableUnit, start: datetime, end: datetime) -> bool:
    return (
        await Blackout.filter(venue_id=unit.venue_id, starts_at__lt=end, ends_at__gt=start)
        .filter(unit_id__isnull=True)
        .exists()
        or await Blackout.filter(unit_id=unit.id, starts_at__lt=end, ends_at__gt=start).exists()
    )


def _check_time(
    unit: BookableUnit, start: datetime, minutes: int, now: datetime, *, offer: bool = False
) -> datetime:
    """Raise the rule a requested time breaks; the end of the booking otherwise."""
    venue = unit.venue
    if not unit.active or venue.status != VenueStatus.OPEN:
        raise _rule("unit_unavailable", "该单元暂停预约", "unit_id")
    if minutes % unit.interval_minutes or not unit.min_minutes <= minutes <= unit.max_minutes:
        raise _rule(
            "duration_not_allowed",
            f"时长须为 {unit.min_minutes}–{unit.max_minutes} 分钟，"
            f"且为 {unit.interval_minutes} 分钟的整数倍",
            "minutes",
        )
    if not on_grid(unit, start):
        raise _rule("start_off_grid", f"开始时间须为整 {unit.interval_minutes} 分钟的时刻", "start")
    end = start + timedelta(minutes=minutes)
    if start < now:
        raise _rule("start_in_past", "开始时间已过", "start")
    if not offer:
        if start < now + timedelta(minutes=unit.min_notice_minutes):
            raise _rule(
                "notice_too_short", f"需至少提前 {unit.min_notice_minutes} 分钟预约", "start"
            )
        if _too_far(unit, start, now):
            raise _rule("too_far_ahead", f"最多可提前 {unit.opens_days_ahead} 天预约", "start")
    if not within_hours(venue, start, end):
        raise _rule("outside_opening_hours", "所选时间不在开放时间内", "start")
    return end


# ---------------------------------------------------------------- slots


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
    if _too_far(unit, start, now):
        return "not_open_yet"
    return "free"


# ---------------------------------------------------------------- booking


async def _resident_state(user: User) -> None:
    if not await ResidentState.filter(user_id=user.id).exists():
        with contextlib.suppress(IntegrityError):  # created concurrently
            await ResidentState.create(user=user)


def _week_bounds(moment: datetime) -> tuple[datetime, datetime]:
    local = moment.astimezone(SHANGHAI).date()
    monday = local - timedelta(days=local.weekday())
    start, _ = day_bounds(monday)
    return start, start + timedelta(days=7)


async def _check_resident(
    *, user: User, unit: BookableUnit, start: datetime, end: datetime, now: datetime, policy: Policy
) -> None:
    """Suspension and quotas; runs inside the transaction, after the resident row is locked."""
    state = await ResidentState.get(user_id=user.id)
    if state.suspended_until is not None and state.suspended_until > now:
        until = to_local(state.suspended_until).strftime("%Y-%m-%d")
        raise _rule("booking_suspended", f"因多次爽约，预约功能暂停至 {until}")
    active = Booking.filter(user_id=user.id, status__in=ACTIVE, end__gt=now)
    if await active.count() >= policy.max_active_bookings:
        raise _rule(
            "quota_active_bookings", f"同时最多保留 {policy.max_active_bookings} 个有效预约"
        )
    if (
        policy.one_unit_at_a_time
        and await Booking.filter(
            user_id=user.id, venue_id=unit.venue_id, status__in=ACTIVE, start__lt=end, end__gt=start
        ).exists()
    ):
        raise _rule("one_unit_at_a_time", "同一时段在同一场所只能预约一个单元", "start")
    week_start, week_end = _week_bounds(start)
    counted = (*ACTIVE, BookingStatus.COMPLETED)
    rows = await Booking.filter(
        user_id=user.id,
        status__in=counted,
        start__gte=week_start,
        start__lt=week_end,
        venue__kind=unit.venue.kind,
    ).values("start", "end")
    used = sum((r["end"] - r["start"]).total_seconds() for r in rows)
    if used + (end - start).total_seconds() > policy.max_hours_per_week * 3600:
        raise _rule(
            "quota_weekly_hours",
            f"每周同类场所最多预约 {policy.max_hours_per_week} 小时",
            "minutes",
        )


async def create_booking(*, ctx: AppContext, actor: Principal, data: BookingCreate) -> Booking:
    """Hold a slot for the resident (201), 409 ``slot_taken`` if any of its cells is claimed."""
    unit = await unit_or_raise(data.unit_id)
    if data.venue_id is not None and data.venue_id != unit.venue.public_id:
        raise _rule("unit_not_in_venue", "该单元不属于所选场所", "venue_id")
    now = ctx.clock.now()
    start = _utc(data.start)
    minutes = data.minutes or unit.slot_minutes
    end = _check_time(unit, start, minutes, now)
    if data.party_size > unit.capacity:
        raise _rule("party_too_large", f"人数不能超过 {unit.capacity} 人", "party_size")
    if await _blackout_overlaps(unit, start, end):
        raise _rule("blackout", "该时段暂停开放（维护或活动）", "start")
    policy, _ = await effective_policy(ctx=ctx, venue=unit.venue)
    user = await User.get(public_id=actor.user_id)
    await _resident_state(user)
    for attempt in range(2):
        try:
            booking = await _insert_booking(
                unit=unit, user=user, start=start, end=end, now=now, policy=policy, data=data
            )
            break
        except IntegrityError:
            # A hold that ran out but was not yet expired by the job does not block anyone.
            if attempt or not await _expire_stale_holds(ctx=ctx, unit=unit, start=start, end=end):
                raise Conflict("该时段已被预约", code="slot_taken") from None
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
    async with in_transaction():
        # Lock the resident's row: concurrent requests of one resident run their checks
        # one after another (PostgreSQL row lock; SQLite serialises writers anyway).
        await ResidentState.filter(user_id=user.id).update(version=F("version") + 1)
        await _check_resident(user=user, unit=unit, start=start, end=end, now=now, policy=policy)
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
        await _claim(unit, booking)
    return booking


async def _expire_stale_holds(
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


async def _claim(unit: BookableUnit, booking: Booking) -> None:
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


async def _transition(
    booking: Booking,
    frm: tuple[BookingStatus, ...],
    to: BookingStatus,
    *,
    tell: tuple[AppContext, str, str] | None = None,
    **changes: Any,
) -> bool:
    """Move a booking between states with one conditional update; release cells if it ends.

    ``tell`` = (ctx, message kind, note) writes the resident's message in the same transaction,
    so a state change and its message (in-app and outbox) are never separated by a crash.
    """
    async with in_transaction():
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
        changes = {"hold_expires_at": None, "confirmed_at": now, "qr_token": _token()}
    if not await _transition(booking, (BookingStatus.HELD,), to, tell=(ctx, kind, ""), **changes):
        raise Conflict("该预约状态已变化", code="not_held")
    if booking.from_waitlist:
        await WaitlistEntry.filter(booking_id=booking.id).update(status=WaitStatus.ACCEPTED)
    return booking


def _token() -> str:
    return secrets.token_urlsafe(24)


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
            raise _rule("cancel_too_late", f"开始前 {policy.cancel_cutoff_minutes} 分钟内不能取消")
    if not await _transition(booking, cancellable, BookingStatus.CANCELLED, ended_at=now):
        raise Conflict("该预约状态已变化", code="not_cancellable")
    await WaitlistEntry.filter(booking_id=booking.id, status=WaitStatus.OFFERED).update(
        status=WaitStatus.CANCELLED
    )
    await record(ctx=ctx, actor=actor, action="booking.cancel", obj=("booking", booking_id))
    await _after_release(ctx=ctx, booking=booking)
    return booking


async def venue_cancel(
    *, ctx: AppContext, actor: Principal, booking_id: str, reason: str
) -> Booking:
    """The venue cancels a booking with a reason; the resident is told."""
    booking = await booking_or_raise(booking_id)
    _check_manage(actor, booking.venue)
    if not await _transition(
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
    await _after_release(ctx=ctx, booking=booking)
    return booking


async def approve(*, ctx: AppContext, actor: Principal, booking_id: str) -> Booking:
    """Approve a booking that waits for approval."""
    booking = await booking_or_raise(booking_id)
    _check_manage(actor, booking.venue)
    now = ctx.clock.now()
    if not await _transition(
        booking,
        (BookingStatus.PENDING_APPROVAL,),
        BookingStatus.CONFIRMED,
        tell=(ctx, "confirmed", ""),
        confirmed_at=now,
        qr_token=_token(),
    ):
        raise Conflict("该预约不在待审核状态", code="not_pending_approval")
    await record(ctx=ctx, actor=actor, action="booking.approve", obj=("booking", booking_id))
    return booking


async def reject(*, ctx: AppContext, actor: Principal, booking_id: str, reason: str) -> Booking:
    """Reject a booking that waits for approval; its time becomes free again."""
    booking = await booking_or_raise(booking_id)
    _check_manage(actor, booking.venue)
    if not await _transition(
        booking,
        (BookingStatus.PENDING_APPROVAL,),
        BookingStatus.REJECTED,
        tell=(ctx, "rejected", f"原因：{reason}"),
        reason=reason,
        ended_at=ctx.clock.now(),
    ):
        raise Conflict("该预约不在待审核状态", code="not_pending_approval")
    await record(
        ctx=ctx, actor=actor, action="booking.reject", obj=("booking", booking_id), reason=reason
    )
    await _after_release(ctx=ctx, booking=booking)
    return booking


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
        raise _rule("checkin_outside_window", "不在签到时间范围内", "token")
    if not await _transition(
        booking, (BookingStatus.CONFIRMED,), BookingStatus.CHECKED_IN, checked_in_at=now
    ):
        raise Conflict("该预约已签到", code="already_checked_in")
    await record(
        ctx=ctx, actor=actor, action="booking.check_in", obj=("booking", booking.public_id)
    )
    return booking


async def expire_booking(*, ctx: AppContext, booking: Booking) -> bool:
    """End a hold (or an unanswered approval) that ran out; offer its time to the waitlist."""
    if not await _transition(
        booking,
        (BookingStatus.HELD, BookingStatus.PENDING_APPROVAL),
        BookingStatus.EXPIRED,
        ended_at=ctx.clock.now(),
    ):
        return False
    await WaitlistEntry.filter(booking_id=booking.id, status=WaitStatus.OFFERED).update(
        status=WaitStatus.EXPIRED
    )
    await _after_release(ctx=ctx, booking=booking)
    return True


async def mark_no_show(*, ctx: AppContext, booking: Booking) -> bool:
    """Mark a confirmed booking not checked in by the end of its window; penalise repeats."""
    now = ctx.clock.now()
    if not await _transition(
        booking, (BookingStatus.CONFIRMED,), BookingStatus.NO_SHOW, ended_at=now
    ):
        return False
    venue = await Venue.get(id=booking.venue_id)
    policy, _ = await effective_policy(ctx=ctx, venue=venue)
    since = now - timedelta(days=policy.no_show_window_days)
    count = await Booking.filter(
        user_id=booking.user_id, status=BookingStatus.NO_SHOW, start__gte=since
    ).count()
    if count >= policy.no_show_limit and policy.suspension_days > 0:
        until = now + timedelta(days=policy.suspension_days)
        await _resident_state(await User.get(id=booking.user_id))
        await ResidentState.filter(user_id=booking.user_id).update(suspended_until=until)
        log.info("resident suspended for no-shows", extra={"count": count})
    await _after_release(ctx=ctx, booking=booking)
    return True


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


async def day_bookings(
    *, actor: Principal, venue_id: str, day: date
) -> tuple[Venue, list[Booking]]:
    """A venue's bookings on a local date, for its operator or the bureau."""
    venue = await get_venue_or_raise(venue_id)
    _check_manage(actor, venue)
    lo, hi = day_bounds(day)
    rows = (
        await Booking.filter(venue=venue, start__gte=lo, start__lt=hi)
        .select_related("unit", "venue", "user")
        .order_by("start", "unit__name")
    )
    return venue, rows


# ---------------------------------------------------------------- blackouts


async def add_blackout(
    *, ctx: AppContext, actor: Principal, venue_id: str, data: BlackoutCreate
) -> tuple[Blackout, list[str]]:
    """Close a unit (or the venue) for a period; returns the bookings it overlaps."""
    venue = await get_venue_or_raise(venue_id)
    _check_manage(actor, venue)
    unit = None
    if data.unit_id:
        unit = await BookableUnit.filter(public_id=data.unit_id, venue=venue).first()
        if unit is None:
            raise _rule("unit_not_in_venue", "该单元不属于此场所", "unit_id")
    blackout = await Blackout.create(
        venue=venue,
        unit=unit,
        starts_at=data.starts_at,
        ends_at=data.ends_at,
        reason=data.reason,
        created_at=ctx.clock.now(),
    )
    query = Booking.filter(
        venue=venue, status__in=ACTIVE, start__lt=data.ends_at, end__gt=data.starts_at
    )
    if unit is not None:
        query = query.filter(unit=unit)
    conflicts = await query.values_list("public_id", flat=True)
    await record(
        ctx=ctx,
        actor=actor,
        action="blackout.create",
        obj=("blackout", blackout.public_id),
        reason=data.reason,
    )
    return blackout, [str(c) for c in conflicts]


async def remove_blackout(*, ctx: AppContext, actor: Principal, blackout_id: str) -> None:
    """Remove a blackout."""
    blackout = await Blackout.filter(public_id=blackout_id).select_related("venue").first()
    if blackout is None:
        raise NotFound("停用时段不存在", code="blackout_not_found")
    venue = await get_venue_or_raise(blackout.venue.public_id)
    _check_manage(actor, venue)
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


# ---------------------------------------------------------------- waitlist


async def join_waitlist(
    *, ctx: AppContext, actor: Principal, data: WaitlistCreate
) -> tuple[WaitlistEntry, int]:
    """Wait for a taken slot; the first in line is offered it when it frees up."""
    unit = await unit_or_raise(data.unit_id)
    now = ctx.clock.now()
    start = _utc(data.start)
    end = _check_time(unit, start, data.minutes or unit.slot_minutes, now)
    user = await User.get(public_id=actor.user_id)
    wanted = cells(unit, start, end)
    holders = await SlotClaim.filter(unit=unit, cell_start__in=wanted).values_list(
        "booking__user_id", flat=True
    )
    if not holders:
        raise _rule("slot_free", "该时段仍可预约，请直接预约", "start")
    if user.id in holders:
        raise Conflict("你已预约该时段", code="already_booked")
    entry = await WaitlistEntry.filter(unit=unit, user=user, start=start).first()
    if entry is not None and entry.status in (WaitStatus.WAITING, WaitStatus.OFFERED):
        raise Conflict("你已在候补名单中", code="already_waiting")
    if entry is None:
        try:
            entry = await WaitlistEntry.create(
                unit=unit, user=user, start=start, end=end, created_at=now
            )
        except IntegrityError:
            raise Conflict("你已在候补名单中", code="already_waiting") from None
    else:
        entry.status, entry.end, entry.created_at, entry.booking_id = (  # type: ignore[assignment]
            WaitStatus.WAITING,
            end,
            now,
            None,
        )
        await entry.save()
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


async def _after_release(*, ctx: AppContext, booking: Booking) -> None:
    """Offer freed time to the waitlist; a failure here is retried by the waitlist job."""
    try:
        await promote_waitlist(ctx=ctx, unit_id=booking.unit_id)
    except Exception:
        log.exception("waitlist promotion failed; the job will retry")


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
        elif await SlotClaim.filter(
            unit_id=entry.unit_id, cell_start__in=cells(entry.unit, entry.start, entry.end)
        ).exists():
            tried.add(key)  # still taken: nobody behind this entry can have it either
    return offers


async def _offer(*, ctx: AppContext, entry: WaitlistEntry, now: datetime) -> bool:
    unit = entry.unit
    policy, _ = await effective_policy(ctx=ctx, venue=unit.venue)
    try:
        _check_time(
            unit, entry.start, int((entry.end - entry.start).total_seconds() // 60), now, offer=True
        )
    except Unprocessable:
        await WaitlistEntry.filter(id=entry.id).update(status=WaitStatus.EXPIRED)
        return False
    expires = min(now + timedelta(minutes=policy.waitlist_offer_minutes), entry.start)
    try:
        async with in_transaction():
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
            await _claim(unit, booking)
            await WaitlistEntry.filter(id=entry.id).update(booking_id=booking.id)
            minutes = int((expires - now).total_seconds() // 60)
            await booking_message(
                ctx=ctx, booking=booking, kind="waitlist_offer", note=f"请在 {minutes} 分钟内确认"
            )
    except IntegrityError:
        return False
    return True


async def my_waitlist(*, actor: Principal) -> list[WaitlistEntry]:
    """The resident's waitlist entries that are still open."""
    return (
        await WaitlistEntry.filter(
            user__public_id=actor.user_id, status__in=(WaitStatus.WAITING, WaitStatus.OFFERED)
        )
        .select_related("unit", "booking")
        .order_by("start")
    )
