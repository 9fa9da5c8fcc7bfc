"""Booking routes: slots and units for anyone, bookings for residents, management for operators."""

from __future__ import annotations

import segno
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from backend.access import Call, endpoint
from backend.errors import Conflict
from backend.models import Role
from backend.paging import decode_cursor, encode_cursor, scope_of
from venues.bookings import blackouts as blackout_rules
from venues.bookings import bookings, lifecycle, operators, waitlist
from venues.bookings import checkin as checkins
from venues.bookings import slots as slot_grid
from venues.bookings import units as unit_rules
from venues.bookings.models import Booking, BookingStatus, WaitStatus
from venues.bookings.presenters import (
    blackout_out,
    booking_out,
    day_bookings_out,
    policy_out,
    slots_out,
    unit_out,
    waitlist_out,
)
from venues.bookings.schemas import (
    BlackoutCreate,
    BlackoutList,
    BlackoutOut,
    BookingCreate,
    BookingList,
    BookingOut,
    CheckinIn,
    DayBookings,
    DayBookingsQuery,
    MyBookingsQuery,
    PolicyOut,
    PolicyPatch,
    ReasonIn,
    SlotsOut,
    SlotsQuery,
    UnitCreate,
    UnitList,
    UnitOut,
    UnitPatch,
    WaitlistCreate,
    WaitlistList,
    WaitlistOut,
)
from venues.service import get_venue_or_raise

bp = Blueprint("bookings", url_prefix="/api/v1")
TAG = "bookings"
OPERATORS = (Role.VENUE_OPERATOR, Role.BUREAU_ADMIN)


def _mine(call: Call, booking: Booking) -> BookingOut:
    return booking_out(booking, owner=booking.user.public_id == call.user.user_id)


# ---------------------------------------------------------------- public


@bp.get("/venues/<venue_id:str>/slots")
@endpoint(
    summary="某日各预约单元的时段及状态",
    tag=TAG,
    public=True,
    query=SlotsQuery,
    response=SlotsOut,
    errors=(404,),
    description="时段由场所营业时间（OSM opening_hours）与单元规则生成，扣除停用时段和已有预约。"
    "状态：free 可约、held 他人保留中、booked 已约满、blackout 停用、past 已过、"
    "too_soon 不足最少提前时间、not_open_yet 尚未开放预约、closed 场所关闭。",
)
async def slots(request: Request, call: Call[SlotsQuery, None], venue_id: str) -> SlotsOut:
    venue, units = await slot_grid.slots_for(ctx=call.ctx, venue_id=venue_id, day=call.query.date)
    return slots_out(venue, call.query.date, units)


@bp.get("/venues/<venue_id:str>/units")
@endpoint(summary="场所的预约单元", tag=TAG, public=True, response=UnitList, errors=(404,))
async def units(request: Request, call: Call[None, None], venue_id: str) -> UnitList:
    venue, rows = await unit_rules.list_units(venue_id=venue_id)
    return UnitList(items=[unit_out(u, venue.public_id) for u in rows])


@bp.get("/venues/<venue_id:str>/booking-policy")
@endpoint(
    summary="场所的预约规则（全市默认值与本场所覆盖值合并后）",
    tag=TAG,
    public=True,
    response=PolicyOut,
    errors=(404,),
)
async def get_policy(request: Request, call: Call[None, None], venue_id: str) -> PolicyOut:
    venue = await get_venue_or_raise(venue_id)
    policy, overridden = await unit_rules.effective_policy(ctx=call.ctx, venue=venue)
    return policy_out(venue.public_id, policy, overridden)


@bp.get("/venues/<venue_id:str>/blackouts")
@endpoint(
    summary="场所尚未结束的停用时段", tag=TAG, public=True, response=BlackoutList, errors=(404,)
)
async def blackouts(request: Request, call: Call[None, None], venue_id: str) -> BlackoutList:
    venue, rows = await blackout_rules.list_blackouts(venue_id=venue_id, now=call.clock.now())
    return BlackoutList(items=[blackout_out(b, venue.public_id) for b in rows])


# ---------------------------------------------------------------- residents


@bp.post("/bookings")
@endpoint(
    summary="预约时段（先保留，确认后生效）",
    tag=TAG,
    roles=(Role.RESIDENT,),
    body=BookingCreate,
    response=BookingOut,
    status=201,
    errors=(404, 409, 422),
    description="成功返回 201，状态为 held，须在保留时间内调用 confirm。"
    "时段已被占用返回 409 slot_taken。"
    "规则错误（422，fields 指明字段）：start_off_grid、start_in_past、notice_too_short、"
    "too_far_ahead、outside_opening_hours、blackout、duration_not_allowed、party_too_large、"
    "unit_not_in_venue、unit_unavailable、quota_active_bookings、quota_weekly_hours、"
    "one_unit_at_a_time、booking_suspended。",
)
async def create_booking(request: Request, call: Call[None, BookingCreate]) -> BookingOut:
    booking = await bookings.create_booking(ctx=call.ctx, actor=call.user, data=call.body)
    return booking_out(booking, owner=True)


@bp.get("/bookings/<booking_id:str>")
@endpoint(
    summary="预约详情（本人可见入场二维码内容）",
    tag=TAG,
    signed_in=True,
    api_key=True,
    response=BookingOut,
    errors=(404,),
)
async def get_booking(request: Request, call: Call[None, None], booking_id: str) -> BookingOut:
    booking = await lifecycle.visible_booking(actor=call.user, booking_id=booking_id)
    return _mine(call, booking)


@bp.get("/bookings/<booking_id:str>/qr.svg")
@endpoint(
    summary="入场二维码（SVG）",
    tag=TAG,
    roles=(Role.RESIDENT,),
    errors=(404, 409),
    description="仅预约本人、且预约已确认时可取；运营方扫码后调用 POST /operator/checkins。",
)
async def qr_svg(request: Request, call: Call[None, None], booking_id: str) -> HTTPResponse:
    booking = await lifecycle.own_booking(actor=call.user, booking_id=booking_id)
    if booking.status != BookingStatus.CONFIRMED or not booking.qr_token:
        raise Conflict("预约确认后才有入场二维码", code="no_checkin_code")
    svg = segno.make(booking.qr_token, error="m").svg_inline(scale=4)
    return raw(svg.encode(), content_type="image/svg+xml", headers={"Cache-Control": "no-store"})


@bp.post("/bookings/<booking_id:str>/confirm")
@endpoint(
    summary="确认保留中的预约",
    tag=TAG,
    roles=(Role.RESIDENT,),
    response=BookingOut,
    errors=(404, 409),
    description="无需审核的单元变为 confirmed（附入场二维码），需审核的变为 pending_approval。"
    "保留已过期返回 409 hold_expired。候补到位的预约也用此接口接受。",
)
async def confirm(request: Request, call: Call[None, None], booking_id: str) -> BookingOut:
    booking = await bookings.confirm_booking(ctx=call.ctx, actor=call.user, booking_id=booking_id)
    return booking_out(booking, owner=True)


@bp.post("/bookings/<booking_id:str>/cancel")
@endpoint(
    summary="取消自己的预约",
    tag=TAG,
    roles=(Role.RESIDENT,),
    response=BookingOut,
    errors=(404, 409, 422),
    description="开始前的取消截止时间之后返回 422 cancel_too_late；保留中的预约随时可放弃。",
)
async def cancel(request: Request, call: Call[None, None], booking_id: str) -> BookingOut:
    booking = await bookings.cancel_booking(ctx=call.ctx, actor=call.user, booking_id=booking_id)
    return booking_out(booking, owner=True)


@bp.get("/me/bookings")
@endpoint(
    summary="我的预约",
    tag=TAG,
    roles=(Role.RESIDENT,),
    query=MyBookingsQuery,
    response=BookingList,
)
async def my_bookings(request: Request, call: Call[MyBookingsQuery, None]) -> BookingList:
    q = call.query
    secret = call.settings.cursor_key
    scope = scope_of("me/bookings", call.user.user_id, q.status)
    offset = 0
    if q.cursor:
        (offset,) = decode_cursor(q.cursor, scope=scope, secret=secret, shape=(int,))
    rows, more = await bookings.list_my_bookings(
        actor=call.user, status=q.status, limit=q.limit, offset=offset
    )
    cursor = encode_cursor([offset + len(rows)], scope=scope, secret=secret) if more else None
    return BookingList(items=[booking_out(b, owner=True) for b in rows], next_cursor=cursor)


@bp.post("/bookings/waitlist")
@endpoint(
    summary="候补已被占用的时段",
    tag=TAG,
    roles=(Role.RESIDENT,),
    body=WaitlistCreate,
    response=WaitlistOut,
    status=201,
    errors=(404, 409, 422),
    description="时段空出时，按先后顺序为第一位候补者保留（held，限时确认），并发送通知；"
    "未在时限内确认则顺延给下一位。时段仍空闲时返回 422 slot_free。"
    "候补与预约适用同样的个人规则（422）：booking_suspended、quota_active_bookings、"
    "quota_weekly_hours、one_unit_at_a_time；轮到时已不符合的候补者被跳过。",
)
async def join_waitlist(request: Request, call: Call[None, WaitlistCreate]) -> WaitlistOut:
    entry, position = await waitlist.join_waitlist(ctx=call.ctx, actor=call.user, data=call.body)
    return waitlist_out(entry, call.body.unit_id, position)


@bp.get("/me/waitlist")
@endpoint(summary="我的候补", tag=TAG, roles=(Role.RESIDENT,), response=WaitlistList)
async def my_waitlist(request: Request, call: Call[None, None]) -> WaitlistList:
    items = []
    for entry in await waitlist.my_waitlist(actor=call.user):
        waiting = entry.status == WaitStatus.WAITING
        position = await waitlist.waitlist_position(entry) if waiting else None
        items.append(waitlist_out(entry, entry.unit.public_id, position))
    return WaitlistList(items=items)


@bp.delete("/bookings/waitlist/<entry_id:str>")
@endpoint(summary="退出候补", tag=TAG, roles=(Role.RESIDENT,), status=204, errors=(404,))
async def leave_waitlist(request: Request, call: Call[None, None], entry_id: str) -> None:
    await waitlist.leave_waitlist(actor=call.user, entry_id=entry_id)


# ---------------------------------------------------------------- operators


@bp.post("/venues/<venue_id:str>/units")
@endpoint(
    summary="新增预约单元（场地、房间）",
    tag=TAG,
    roles=OPERATORS,
    api_key=True,
    body=UnitCreate,
    response=UnitOut,
    status=201,
    errors=(404, 409, 422),
    description="仅体育场馆与社区活动室；运营方只能管理自己运营的场所。"
    "时长与间隔须为起始间隔的整数倍。",
)
async def create_unit(request: Request, call: Call[None, UnitCreate], venue_id: str) -> UnitOut:
    unit = await unit_rules.create_unit(
        ctx=call.ctx, actor=call.user, venue_id=venue_id, data=call.body
    )
    return unit_out(unit, venue_id)


@bp.patch("/units/<unit_id:str>")
@endpoint(
    summary="修改预约单元规则",
    tag=TAG,
    roles=OPERATORS,
    api_key=True,
    body=UnitPatch,
    response=UnitOut,
    errors=(404, 409),
)
async def update_unit(request: Request, call: Call[None, UnitPatch], unit_id: str) -> UnitOut:
    unit = await unit_rules.update_unit(
        ctx=call.ctx, actor=call.user, unit_id=unit_id, data=call.body
    )
    return unit_out(unit, unit.venue.public_id)


@bp.put("/venues/<venue_id:str>/booking-policy")
@endpoint(
    summary="设置场所的预约规则（覆盖全市默认值）",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN,),
    body=PolicyPatch,
    response=PolicyOut,
    errors=(404,),
    description="只改传入的字段；传 null 恢复全市默认值。",
)
async def put_policy(request: Request, call: Call[None, PolicyPatch], venue_id: str) -> PolicyOut:
    venue, policy, overridden = await unit_rules.set_policy(
        ctx=call.ctx, actor=call.user, venue_id=venue_id, data=call.body
    )
    return policy_out(venue.public_id, policy, overridden)


@bp.post("/venues/<venue_id:str>/blackouts")
@endpoint(
    summary="新增停用时段（维护、活动）",
    tag=TAG,
    roles=OPERATORS,
    api_key=True,
    body=BlackoutCreate,
    response=BlackoutOut,
    status=201,
    errors=(404, 422),
    description="不填 unit_id 表示整个场所。已有预约不会自动取消：conflicting_bookings 列出"
    "与之重叠的预约，运营方可逐个取消并说明原因。",
)
async def add_blackout(
    request: Request, call: Call[None, BlackoutCreate], venue_id: str
) -> BlackoutOut:
    blackout, conflicts = await blackout_rules.add_blackout(
        ctx=call.ctx, actor=call.user, venue_id=venue_id, data=call.body
    )
    return blackout_out(blackout, venue_id, conflicts)


@bp.delete("/blackouts/<blackout_id:str>")
@endpoint(summary="删除停用时段", tag=TAG, roles=OPERATORS, api_key=True, status=204, errors=(404,))
async def remove_blackout(request: Request, call: Call[None, None], blackout_id: str) -> None:
    await blackout_rules.remove_blackout(ctx=call.ctx, actor=call.user, blackout_id=blackout_id)


@bp.get("/operator/bookings")
@endpoint(
    summary="运营方查看某日的预约",
    tag=TAG,
    roles=OPERATORS,
    api_key=True,
    query=DayBookingsQuery,
    response=DayBookings,
    errors=(404,),
)
async def day_bookings(request: Request, call: Call[DayBookingsQuery, None]) -> DayBookings:
    venue, rows = await operators.day_bookings(
        actor=call.user, venue_id=call.query.venue_id, day=call.query.date
    )
    return day_bookings_out(venue, call.query.date, rows)


@bp.post("/operator/checkins")
@endpoint(
    summary="扫码签到",
    tag=TAG,
    roles=OPERATORS,
    api_key=True,
    body=CheckinIn,
    response=BookingOut,
    errors=(404, 409, 422),
    description="二维码只能使用一次；须在开始前后的签到窗口内（422 checkin_outside_window）。",
)
async def checkin(request: Request, call: Call[None, CheckinIn]) -> BookingOut:
    booking = await checkins.check_in(ctx=call.ctx, actor=call.user, token=call.body.token)
    return booking_out(booking, owner=False)


@bp.post("/operator/bookings/<booking_id:str>/cancel")
@endpoint(
    summary="场馆取消预约（须说明原因，会通知居民）",
    tag=TAG,
    roles=OPERATORS,
    api_key=True,
    body=ReasonIn,
    response=BookingOut,
    errors=(404, 409),
)
async def venue_cancel(request: Request, call: Call[None, ReasonIn], booking_id: str) -> BookingOut:
    booking = await operators.venue_cancel(
        ctx=call.ctx, actor=call.user, booking_id=booking_id, reason=call.body.reason
    )
    return booking_out(booking, owner=False)


@bp.post("/operator/bookings/<booking_id:str>/approve")
@endpoint(
    summary="审核通过预约",
    tag=TAG,
    roles=OPERATORS,
    api_key=True,
    response=BookingOut,
    errors=(404, 409),
)
async def approve(request: Request, call: Call[None, None], booking_id: str) -> BookingOut:
    booking = await operators.approve(ctx=call.ctx, actor=call.user, booking_id=booking_id)
    return booking_out(booking, owner=False)


@bp.post("/operator/bookings/<booking_id:str>/reject")
@endpoint(
    summary="驳回预约（须说明原因）",
    tag=TAG,
    roles=OPERATORS,
    api_key=True,
    body=ReasonIn,
    response=BookingOut,
    errors=(404, 409),
)
async def reject(request: Request, call: Call[None, ReasonIn], booking_id: str) -> BookingOut:
    booking = await operators.reject(
        ctx=call.ctx, actor=call.user, booking_id=booking_id, reason=call.body.reason
    )
    return booking_out(booking, owner=False)
