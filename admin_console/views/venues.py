"""Venues for their operators and the bureau: list with search and filters; edit with an
opening-hours editor that previews "open now / next change" (holidays and 调休 included) before
saving; temporary closure; parking availability over the day; bookings per unit with check-in and
no-show marking; blackouts."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Any

import chinese_calendar
from sanic import Blueprint, Request
from sanic.response import HTTPResponse
from tortoise.expressions import Q

from admin_console.forms import build, local_moment
from admin_console.pages import ADMIN, VENUE_STAFF, Page, page
from backend import hours
from backend.clock import SHANGHAI, to_local
from backend.errors import Conflict, NotFound, ValidationFailed
from backend.geo import CoordSystem
from backend.models import Role, User
from venues import service as venues
from venues.bookings import blackouts, checkin, lifecycle, operators, penalties, units
from venues.bookings.schemas import BlackoutCreate
from venues.models import Venue, VenueKind, VenueStatus
from venues.presenters import venue_out
from venues.schemas import VenueClose, VenueCreate, VenuePatch

bp = Blueprint("console_venues", url_prefix="/console")

PAGE_SIZE = 50
EDITABLE = ("name", "address", "district", "street", "phone", "description")
BOOKABLE = (VenueKind.SPORTS_VENUE, VenueKind.ACTIVITY_ROOM)


async def _managed(page: Page, venue_id: str) -> Venue:
    """The venue, if this user may manage it (the operator's own, or any for the bureau)."""
    venue = await venues.get_venue_or_raise(venue_id)
    if not venues.may_manage(page.user, venue):
        raise NotFound("场所不存在", code="venue_not_found")
    return venue


@bp.get("/venues")
@page(read=VENUE_STAFF)
async def index(request: Request, page: Page) -> HTTPResponse:
    args = request.args
    q, kind, district, status = (args.get(k, "") for k in ("q", "kind", "district", "status"))
    offset = (
        max(0, int(args.get("offset", "0") or 0))
        if (args.get("offset", "0") or "0").isdigit()
        else 0
    )
    query = Venue.exclude(status=VenueStatus.REMOVED)
    if page.user.role == Role.VENUE_OPERATOR:
        query = query.filter(operator__public_id=page.user.user_id)
    if q:
        query = query.filter(Q(name__icontains=q) | Q(address__icontains=q))
    if kind in {k.value for k in VenueKind}:
        query = query.filter(kind=kind)
    if district:
        query = query.filter(district=district)
    if status in {s.value for s in VenueStatus}:
        query = query.filter(status=status)
    total = await query.count()
    rows = await query.order_by("id").offset(offset).limit(PAGE_SIZE)
    districts = sorted(
        str(d) for d in await Venue.all().distinct().values_list("district", flat=True) if d
    )
    return page.render(
        "venues/index.html",
        venues=rows,
        total=total,
        offset=offset,
        page_size=PAGE_SIZE,
        filters={"q": q, "kind": kind, "district": district, "status": status},
        districts=districts,
        kinds=list(VenueKind),
    )


def _day_label(day: date) -> str:
    """The official calendar's word for a day: holiday name, 调休 workday, or nothing."""
    try:
        holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:  # a year the official calendar does not cover yet
        return ""
    if holiday and name:
        return f"{chinese_calendar.Holiday(name).chinese}（法定节假日）"
    if not holiday and day.weekday() >= 5:
        return f"调休上班（{chinese_calendar.Holiday(name).chinese}）" if name else "调休上班"
    return ""


def preview(expression: str, now: datetime) -> dict[str, Any]:
    """Open now, the next change and the next 7 days' open periods of an expression."""
    expression = expression.strip()
    if not expression:
        return {"empty": True}
    try:
        hours.validate(expression)
    except hours.InvalidOpeningHours as exc:
        return {"error": str(exc)}
    state = hours.state_at(expression, now)
    local = to_local(now)
    days = []
    for n in range(7):
        day = local.date() + timedelta(days=n)
        start = datetime.combine(day, time(0), SHANGHAI)
        periods = hours.open_intervals(expression, start, start + timedelta(days=1))
        days.append(
            {
                "date": day,
                "weekday": "一二三四五六日"[day.weekday()],
                "label": _day_label(day),
                "periods": [
                    f"{a:%H:%M}–{b:%H:%M}" if b.date() == day else f"{a:%H:%M}–24:00"
                    for a, b in periods
                ],
            }
        )
    return {
        "open_now": state.open_now,
        "unknown": state.unknown,
        "next_change": state.next_change,
        "days": days,
    }


@bp.post("/venues/hours-preview")
@page(read=VENUE_STAFF, write=VENUE_STAFF)
async def hours_preview(request: Request, page: Page) -> HTTPResponse:
    return page.render(
        "venues/_hours.html",
        preview=preview(page.form.get("opening_hours", ""), page.ctx.clock.now()),
    )


async def _venue_page(
    page: Page,
    venue: Venue,
    *,
    values: dict[str, Any] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTTPResponse:
    out = venue_out(venue, ctx=page.ctx, coord=CoordSystem.WGS84)
    values = values if values is not None else out.model_dump()
    return page.render(
        "venues/show.html",
        status=status,
        venue=out,
        values=values,
        errors=errors or {},
        preview=preview(values.get("opening_hours") or "", page.ctx.clock.now()),
        bookable=venue.kind in BOOKABLE,
        parking=venue.kind == VenueKind.PARKING_LOT,
    )


NEW_FIELDS = (*EDITABLE, "kind", "lat", "lng", "coord", "operator_id")
COORDS = (
    (CoordSystem.GCJ02, "GCJ-02（微信、高德、腾讯地图）"),
    (CoordSystem.WGS84, "WGS-84（GPS）"),
    (CoordSystem.BD09, "BD-09（百度地图）"),
)


async def _new_venue_page(
    page: Page, values: dict[str, Any], errors: dict[str, str], status: int = 200
) -> HTTPResponse:
    operators = (
        await User.filter(role=Role.VENUE_OPERATOR, is_active=True)
        .order_by("username")
        .values_list("public_id", "display_name", "username")
    )
    return page.render(
        "venues/new.html",
        status=status,
        values=values,
        errors=errors,
        kinds=list(VenueKind),
        coords=COORDS,
        operators=operators,
        preview=preview(values.get("opening_hours") or "", page.ctx.clock.now()),
    )


@bp.get("/venues/new")
@page(read=ADMIN, write=ADMIN)
async def new_venue(request: Request, page: Page) -> HTTPResponse:
    """A new venue (the bureau): kind, place, contact, opening hours with the preview."""
    return await _new_venue_page(page, {"coord": CoordSystem.GCJ02.value}, {})


@bp.post("/venues/new")
@page(read=ADMIN, write=ADMIN)
async def create_venue(request: Request, page: Page) -> HTTPResponse:
    """Create through ``venues.service.create_venue``: the API's validation and rules."""
    form = page.form
    values: dict[str, Any] = {name: form.get(name, "") for name in NEW_FIELDS}
    data = {
        **values,
        "lat": values["lat"] or None,
        "lng": values["lng"] or None,
        "opening_hours": form.get("opening_hours") or None,
        "operator_id": values["operator_id"] or None,
    }
    values["opening_hours"] = form.get("opening_hours", "")
    body, errors = build(VenueCreate, data)
    if body is not None:
        try:
            venue = await venues.create_venue(ctx=page.ctx, actor=page.user, data=body)
        except ValidationFailed as exc:
            errors = dict(exc.fields)
        else:
            return await page.redirect(f"/console/venues/{venue.public_id}", flash="已创建场所")
    return await _new_venue_page(page, values, errors, status=400)


@bp.get("/venues/<venue_id:str>")
@page(read=VENUE_STAFF, write=VENUE_STAFF)
async def show(request: Request, page: Page, venue_id: str) -> HTTPResponse:
    return await _venue_page(page, await _managed(page, venue_id))


@bp.post("/venues/<venue_id:str>")
@page(read=VENUE_STAFF, write=VENUE_STAFF)
async def update(request: Request, page: Page, venue_id: str) -> HTTPResponse:
    venue = await _managed(page, venue_id)
    form = page.form
    data: dict[str, Any] = {name: form.get(name, "") for name in EDITABLE}
    data["opening_hours"] = form.get("opening_hours") or None
    body, errors = build(VenuePatch, data)
    if body is not None:
        try:
            await venues.update_venue(ctx=page.ctx, actor=page.user, public_id=venue_id, data=body)
        except ValidationFailed as exc:
            errors = dict(exc.fields)
        else:
            return await page.redirect(f"/console/venues/{venue_id}", flash="已保存")
    return await _venue_page(
        page,
        venue,
        values={**data, "opening_hours": form.get("opening_hours", "")},
        errors=errors,
        status=400,
    )


@bp.post("/venues/<venue_id:str>/close")
@page(read=ADMIN, write=ADMIN)
async def close(request: Request, page: Page, venue_id: str) -> HTTPResponse:
    body, errors = build(VenueClose, {"reason": page.form.get("reason", ""), "permanent": False})
    if body is None:
        raise ValidationFailed("请填写临时关闭的原因", fields=errors)
    await venues.close_venue(ctx=page.ctx, actor=page.user, public_id=venue_id, data=body)
    return await page.redirect(f"/console/venues/{venue_id}", flash="已临时关闭")


@bp.post("/venues/<venue_id:str>/reopen")
@page(read=ADMIN, write=ADMIN)
async def reopen(request: Request, page: Page, venue_id: str) -> HTTPResponse:
    await venues.reopen_venue(ctx=page.ctx, actor=page.user, public_id=venue_id)
    return await page.redirect(f"/console/venues/{venue_id}", flash="已恢复开放")


@bp.get("/venues/<venue_id:str>/parking")
@page(read=VENUE_STAFF)
async def parking(request: Request, page: Page, venue_id: str) -> HTTPResponse:
    venue = await _managed(page, venue_id)
    history = await venues.availability_history(ctx=page.ctx, public_id=venue_id, hours=24)
    chart = {
        "name": "空余车位",
        "unit": "个",
        "max": history.capacity,
        "labels": [f"{o.observed_at:%H:%M}" for o in history.items],
        "values": [o.free_spaces for o in history.items],
    }
    return page.render("venues/parking.html", venue=venue, history=history, chart=chart)


def _parse_day(value: str, today: date) -> date:
    try:
        return date.fromisoformat(value) if value else today
    except ValueError:
        return today


@bp.get("/venues/<venue_id:str>/bookings")
@page(read=VENUE_STAFF, write=VENUE_STAFF)
async def calendar(request: Request, page: Page, venue_id: str) -> HTTPResponse:
    """A day's bookings per unit, with check-in and no-show marking."""
    venue = await _managed(page, venue_id)
    today = to_local(page.ctx.clock.now()).date()
    day = _parse_day(request.args.get("date", ""), today)
    _venue, unit_rows = await units.list_units(venue_id=venue_id)
    _v, rows = await operators.day_bookings(actor=page.user, venue_id=venue_id, day=day)
    by_unit: dict[str, list[Any]] = {u.public_id: [] for u in unit_rows}
    for b in rows:
        by_unit.setdefault(b.unit.public_id, []).append(b)
    _v2, blackout_rows = await blackouts.list_blackouts(venue_id=venue_id, now=page.ctx.clock.now())
    return page.render(
        "venues/bookings.html",
        venue=venue,
        units=unit_rows,
        by_unit=by_unit,
        day=day,
        prev=day - timedelta(days=1),
        next=day + timedelta(days=1),
        blackouts=blackout_rows,
        now=page.ctx.clock.now(),
    )


@bp.post("/bookings/<booking_id:str>/check-in")
@page(read=VENUE_STAFF, write=VENUE_STAFF)
async def check_in(request: Request, page: Page, booking_id: str) -> HTTPResponse:
    """The operator checks a visitor in at the desk (the booking's own check-in token)."""
    booking = await lifecycle.visible_booking(actor=page.user, booking_id=booking_id)
    if not booking.qr_token:
        raise Conflict("该预约当前不能签到", code="not_confirmed")
    await checkin.check_in(ctx=page.ctx, actor=page.user, token=booking.qr_token)
    day = to_local(booking.start).date().isoformat()
    return await page.redirect(
        f"/console/venues/{booking.venue.public_id}/bookings?date={day}", flash="已签到"
    )


@bp.post("/bookings/<booking_id:str>/no-show")
@page(read=VENUE_STAFF, write=VENUE_STAFF)
async def no_show(request: Request, page: Page, booking_id: str) -> HTTPResponse:
    """Mark a no-show once the check-in window has closed (the rule the no-show job applies)."""
    booking = await lifecycle.visible_booking(actor=page.user, booking_id=booking_id)
    if not await penalties.mark_no_show(ctx=page.ctx, booking=booking):
        raise Conflict("只有已确认、未签到的预约可以标记未到场", code="booking_not_confirmed")
    day = to_local(booking.start).date().isoformat()
    return await page.redirect(
        f"/console/venues/{booking.venue.public_id}/bookings?date={day}", flash="已标记未到场"
    )


@bp.post("/venues/<venue_id:str>/blackouts")
@page(read=VENUE_STAFF, write=VENUE_STAFF)
async def add_blackout(request: Request, page: Page, venue_id: str) -> HTTPResponse:
    await _managed(page, venue_id)
    form = page.form
    body, errors = build(
        BlackoutCreate,
        {
            "unit_id": form.get("unit_id") or None,
            "starts_at": local_moment(form.get("starts_at", "")),
            "ends_at": local_moment(form.get("ends_at", "")),
            "reason": form.get("reason", ""),
        },
    )
    if body is None:
        raise ValidationFailed("停用时段有误", fields=errors)
    _blackout, conflicts = await blackouts.add_blackout(
        ctx=page.ctx, actor=page.user, venue_id=venue_id, data=body
    )
    note = f"；与 {len(conflicts)} 个已有预约重叠（不会自动取消）" if conflicts else ""
    return await page.redirect(
        f"/console/venues/{venue_id}/bookings", flash="已添加停用时段" + note
    )


@bp.post("/blackouts/<blackout_id:str>/delete")
@page(read=VENUE_STAFF, write=VENUE_STAFF)
async def remove_blackout(request: Request, page: Page, blackout_id: str) -> HTTPResponse:
    await blackouts.remove_blackout(ctx=page.ctx, actor=page.user, blackout_id=blackout_id)
    back = page.form.get("venue", "")
    return await page.redirect(
        f"/console/venues/{back}/bookings" if back else "/console/venues", flash="已删除停用时段"
    )
