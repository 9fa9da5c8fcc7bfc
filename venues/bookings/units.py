"""Bookable units and their rules, and the booking policy (city-wide defaults, venue overrides)."""

from __future__ import annotations

from typing import Any

from tortoise.exceptions import IntegrityError

from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict, Forbidden, NotFound, ValidationFailed
from backend.uow import unit_of_work
from venues.bookings.errors import rule
from venues.bookings.models import ACTIVE, BookableUnit, Booking, VenuePolicy
from venues.bookings.schemas import PolicyPatch, UnitCreate, UnitPatch
from venues.bookings.settings import Policy, booking_settings
from venues.models import Venue, VenueKind, VenueStatus
from venues.service import get_venue_or_raise, may_manage

BOOKABLE_KINDS = (VenueKind.SPORTS_VENUE, VenueKind.ACTIVITY_ROOM)


def check_manage(actor: Principal, venue: Venue) -> None:
    """403 unless the actor is the bureau admin or this venue's own operator."""
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
    check_manage(actor, venue)
    if venue.kind not in BOOKABLE_KINDS:
        raise rule("venue_not_bookable", "只有体育场馆和活动室可以设置预约", "venue_id")
    values = data.model_dump()
    _check_rules(values)
    if await BookableUnit.filter(venue=venue, name=data.name).exists():
        raise Conflict("该场所已有同名单元", code="unit_name_taken")
    try:
        async with unit_of_work():
            unit = await BookableUnit.create(venue=venue, **values)
            await record(ctx=ctx, actor=actor, action="unit.create", obj=("unit", unit.public_id))
    except IntegrityError:
        raise Conflict("该场所已有同名单元", code="unit_name_taken") from None
    unit.venue = venue
    return unit


async def update_unit(
    *, ctx: AppContext, actor: Principal, unit_id: str, data: UnitPatch
) -> BookableUnit:
    """Change a unit's rules (existing bookings keep their times)."""
    unit = await unit_or_raise(unit_id)
    check_manage(actor, unit.venue)
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
        async with unit_of_work():
            await unit.save()
            await record(ctx=ctx, actor=actor, action="unit.update", obj=("unit", unit.public_id))
    except IntegrityError:
        raise Conflict("该场所已有同名单元", code="unit_name_taken") from None
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
    async with unit_of_work():
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
