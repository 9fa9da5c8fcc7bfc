"""Venue routes: read by anyone, written by the bureau and (their own) by operators."""

from __future__ import annotations

from sanic import Blueprint, Request

from backend.access import Call, endpoint
from backend.geo import CoordSystem
from backend.models import Role
from venues import catalogue, presenters, service
from venues.schemas import (
    AvailabilityHistory,
    AvailabilityHistoryQuery,
    AvailabilityIn,
    AvailabilityOut,
    CataloguePage,
    CatalogueQuery,
    CoordQuery,
    HoldingsFeed,
    HoldingsResult,
    VenueClose,
    VenueCreate,
    VenueOut,
    VenuePatch,
)

bp = Blueprint("venues", url_prefix="/api/v1")
TAG = "venues"


@bp.post("/venues")
@endpoint(
    summary="新建场所",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN,),
    body=VenueCreate,
    response=VenueOut,
    status=201,
    description="lat/lng 按 coord 指定的坐标系解释，统一存为 WGS-84。attributes 按 kind 校验。",
)
async def create_venue(request: Request, call: Call[None, VenueCreate]) -> VenueOut:
    venue = await service.create_venue(ctx=call.ctx, actor=call.user, data=call.body)
    return presenters.venue_out(venue, ctx=call.ctx, coord=CoordSystem.WGS84)


@bp.get("/venues/<venue_id:str>")
@endpoint(
    summary="场所详情（含营业时间、当前是否开放、下次变化时间）",
    tag=TAG,
    public=True,
    query=CoordQuery,
    response=VenueOut,
    errors=(404,),
)
async def get_venue(request: Request, call: Call[CoordQuery, None], venue_id: str) -> VenueOut:
    venue = await service.get_venue_or_raise(venue_id)
    return presenters.venue_out(venue, ctx=call.ctx, coord=call.query.coord)


@bp.patch("/venues/<venue_id:str>")
@endpoint(
    summary="编辑场所",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN, Role.VENUE_OPERATOR),
    api_key=True,
    body=VenuePatch,
    response=VenueOut,
    errors=(404,),
    description=(
        "数据资源局可编辑任何场所；运营方（登录或 X-Api-Key）只能编辑自己运营的场所。"
        "实时空位不在此修改。"
    ),
)
async def update_venue(request: Request, call: Call[None, VenuePatch], venue_id: str) -> VenueOut:
    venue = await service.update_venue(
        ctx=call.ctx, actor=call.user, public_id=venue_id, data=call.body
    )
    return presenters.venue_out(venue, ctx=call.ctx, coord=CoordSystem.WGS84)


@bp.post("/venues/<venue_id:str>/close")
@endpoint(
    summary="临时闭馆或撤除场所",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN,),
    body=VenueClose,
    response=VenueOut,
    errors=(404,),
)
async def close_venue(request: Request, call: Call[None, VenueClose], venue_id: str) -> VenueOut:
    venue = await service.close_venue(
        ctx=call.ctx, actor=call.user, public_id=venue_id, data=call.body
    )
    return presenters.venue_out(venue, ctx=call.ctx, coord=CoordSystem.WGS84)


@bp.post("/venues/<venue_id:str>/reopen")
@endpoint(
    summary="恢复开放临时闭馆的场所",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN,),
    response=VenueOut,
    errors=(404,),
)
async def reopen_venue(request: Request, call: Call[None, None], venue_id: str) -> VenueOut:
    venue = await service.reopen_venue(ctx=call.ctx, actor=call.user, public_id=venue_id)
    return presenters.venue_out(venue, ctx=call.ctx, coord=CoordSystem.WGS84)


@bp.put("/parking/<venue_id:str>/availability")
@endpoint(
    summary="发布停车场实时空位",
    tag="operators",
    roles=(Role.VENUE_OPERATOR, Role.BUREAU_ADMIN),
    api_key=True,
    body=AvailabilityIn,
    response=AvailabilityOut,
    errors=(404, 409),
    description=(
        "运营方用 X-Api-Key 发布。observed_at 不得晚于当前时间（400），须晚于已发布的最新一条"
        "（409）；每条都保存为历史。"
    ),
)
async def publish_availability(
    request: Request, call: Call[None, AvailabilityIn], venue_id: str
) -> AvailabilityOut:
    return await service.publish_availability(
        ctx=call.ctx, actor=call.user, public_id=venue_id, data=call.body
    )


@bp.put("/venues/<venue_id:str>/holdings")
@endpoint(
    summary="批量更新阅读空间馆藏（按 ISBN）",
    tag="books",
    roles=(Role.BUREAU_ADMIN, Role.VENUE_OPERATOR),
    api_key=True,
    body=HoldingsFeed,
    response=HoldingsResult,
    errors=(404,),
    description="ISBN-10/13 校验并统一为 ISBN-13；replace=true 时删除未列出的馆藏。",
)
async def upsert_holdings(
    request: Request, call: Call[None, HoldingsFeed], venue_id: str
) -> HoldingsResult:
    return await service.upsert_holdings(
        ctx=call.ctx, actor=call.user, public_id=venue_id, feed=call.body
    )


@bp.get("/venues/<venue_id:str>/books")
@endpoint(
    summary="阅读空间的馆藏（可在馆内检索，含在架可借册数）",
    tag="books",
    public=True,
    query=CatalogueQuery,
    response=CataloguePage,
    errors=(404, 422),
    description=(
        "按书名排序（书名相同按 ISBN），游标分页。q 为书名或作者的子串（不区分大小写），"
        "或一个 ISBN-10/13；available=true 只列有可借册的。"
        "场所不存在：404 venue_not_found；不是阅读空间：422 venue_not_reading_space。"
    ),
)
async def venue_books(
    request: Request, call: Call[CatalogueQuery, None], venue_id: str
) -> CataloguePage:
    return await catalogue.venue_catalogue(ctx=call.ctx, public_id=venue_id, query=call.query)


@bp.get("/parking/<venue_id:str>/availability")
@endpoint(
    summary="停车场空位历史（图表用）",
    tag="venues",
    public=True,
    query=AvailabilityHistoryQuery,
    response=AvailabilityHistory,
    errors=(404,),
)
async def availability_history(
    request: Request, call: Call[AvailabilityHistoryQuery, None], venue_id: str
) -> AvailabilityHistory:
    return await service.availability_history(
        ctx=call.ctx, public_id=venue_id, hours=call.query.hours
    )
