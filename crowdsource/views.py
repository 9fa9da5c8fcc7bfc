"""Routes of pain-point campaigns: campaigns, submissions, moderation, reports and votes."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from backend.access import Call, endpoint
from backend.geo import CoordSystem
from backend.models import Role
from crowdsource import (
    campaigns,
    exports,
    integrity,
    merging,
    moderation,
    pain_points,
    statistics,
    votes,
)
from crowdsource.presenters import campaign_out, pain_point_out
from crowdsource.schemas import (
    CampaignCreate,
    CampaignList,
    CampaignListQuery,
    CampaignOut,
    CampaignStatistics,
    CampaignUpdate,
    CoordQuery,
    FlagOut,
    FlagResolveIn,
    IntegrityReport,
    MergeIn,
    ModerationIn,
    ModerationQueueQuery,
    MyPainPointsQuery,
    PainPointCreate,
    PainPointList,
    PainPointListQuery,
    PainPointOut,
    PainPointSubmitted,
    PainPointUpdate,
    ReportIn,
    ReportOut,
    SimilarList,
    SimilarQuery,
    VoteOut,
)
from crowdsource.visibility import submission_notice

bp = Blueprint("crowdsource", url_prefix="/api/v1")
TAG = "crowdsource"
MANAGERS = (Role.CURATOR, Role.BUREAU_ADMIN)


@bp.post("/campaigns")
@endpoint(
    summary="创建征集活动",
    tag=TAG,
    roles=MANAGERS,
    body=CampaignCreate,
    response=CampaignOut,
    status=201,
)
async def create_campaign(request: Request, call: Call[None, CampaignCreate]) -> CampaignOut:
    campaign = await campaigns.create_campaign(ctx=call.ctx, actor=call.user, data=call.body)
    return campaign_out(campaign, call.clock.now())


@bp.patch("/campaigns/<campaign_id:str>")
@endpoint(
    summary="修改征集活动（日程、分类、规则）",
    tag=TAG,
    roles=MANAGERS,
    body=CampaignUpdate,
    response=CampaignOut,
    errors=(404, 409),
)
async def update_campaign(
    request: Request, call: Call[None, CampaignUpdate], campaign_id: str
) -> CampaignOut:
    campaign = await campaigns.update_campaign(
        ctx=call.ctx, actor=call.user, public_id=campaign_id, data=call.body
    )
    return campaign_out(campaign, call.clock.now())


@bp.get("/campaigns")
@endpoint(
    summary="征集活动列表及当前阶段",
    tag=TAG,
    public=True,
    query=CampaignListQuery,
    response=CampaignList,
    description="草稿活动只对 curator / bureau_admin 可见。",
)
async def list_campaigns(request: Request, call: Call[CampaignListQuery, None]) -> CampaignList:
    return await campaigns.list_campaigns(
        ctx=call.ctx,
        principal=call.principal,
        phase=call.query.phase,
        limit=call.query.limit,
        cursor=call.query.cursor,
    )


@bp.get("/campaigns/<campaign_id:str>")
@endpoint(
    summary="一个征集活动及其当前阶段", tag=TAG, public=True, response=CampaignOut, errors=(404,)
)
async def get_campaign(request: Request, call: Call[None, None], campaign_id: str) -> CampaignOut:
    now = call.clock.now()
    campaign = await campaigns.get_campaign_or_raise(campaign_id, principal=call.principal, now=now)
    return campaign_out(campaign, now)


@bp.get("/campaigns/<campaign_id:str>/statistics")
@endpoint(
    summary="活动统计：按状态、分类、区县和日期",
    tag=TAG,
    public=True,
    response=CampaignStatistics,
    errors=(404,),
    description="全部按数据库计数；日期为北京时间。",
)
async def campaign_statistics(
    request: Request, call: Call[None, None], campaign_id: str
) -> CampaignStatistics:
    return await statistics.campaign_statistics(
        ctx=call.ctx, principal=call.principal, campaign_id=campaign_id
    )


@bp.post("/campaigns/<campaign_id:str>/pain-points")
@endpoint(
    summary="提交痛难点",
    tag=TAG,
    signed_in=True,
    body=PainPointCreate,
    response=PainPointSubmitted,
    status=201,
    errors=(403, 404, 409, 422),
    description="仅在征集阶段；每人每个活动有提交上限；location 可用 wgs84 / gcj02 / bd09。"
    "何时公开按活动的审核方式（moderation），见应答的 public 与 notice。"
    "以企业身份（audience=enterprise）提交须为认证企业的成员账号（否则 403 not_vendor_member / "
    "vendor_not_verified），企业名称取该企业的登记名称"
    "（给出不同的名称：422 company_name_mismatch）。",
)
async def submit_pain_point(
    request: Request, call: Call[None, PainPointCreate], campaign_id: str
) -> PainPointSubmitted:
    item, campaign = await pain_points.submit_pain_point(
        ctx=call.ctx, principal=call.user, campaign_id=campaign_id, data=call.body
    )
    location = call.body.location
    coord = location.coord if location is not None else CoordSystem.WGS84
    shown = pain_point_out(item, campaign, None, coord)
    return PainPointSubmitted(**shown.model_dump(), notice=submission_notice(campaign))


@bp.get("/campaigns/<campaign_id:str>/pain-points")
@endpoint(
    summary="痛难点列表（按票数或最新）",
    tag=TAG,
    public=True,
    query=PainPointListQuery,
    response=PainPointList,
    errors=(404,),
    description="sort=votes 按实时票数排名；每条带分群体票数；游标分页。"
    "只列出公众可见的痛点：先审后发（moderation=pre）的活动只列审核有效的，"
    "先发后审（post）的活动另列待审核的；自己提交的见 /me/pain-points。",
)
async def list_pain_points(
    request: Request, call: Call[PainPointListQuery, None], campaign_id: str
) -> PainPointList:
    q = call.query
    return await pain_points.list_pain_points(
        ctx=call.ctx,
        principal=call.principal,
        campaign_id=campaign_id,
        sort=q.sort,
        category=q.category,
        coord=q.coord,
        limit=q.limit,
        cursor=q.cursor,
    )


@bp.get("/me/pain-points")
@endpoint(
    summary="我提交的痛难点（任何状态，含尚未公开的）",
    tag=TAG,
    signed_in=True,
    query=MyPainPointsQuery,
    response=PainPointList,
    errors=(404,),
    description="最新在前；public 表示公众是否已可见（按活动的审核方式）；游标分页。",
)
async def my_pain_points(request: Request, call: Call[MyPainPointsQuery, None]) -> PainPointList:
    q = call.query
    return await pain_points.list_my_pain_points(
        ctx=call.ctx, principal=call.user, campaign_id=q.campaign_id, limit=q.limit, cursor=q.cursor
    )


EXPORT_DOC = (
    "每条痛点（任何状态，公开与否）：编号、标题、分类、区县、提交群体、状态、总票数与分群体票数"
    "（按数据库计数）、提交时间（北京时间）、公众是否可见（按活动的审核方式）；不含任何个人信息。"
)
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _attachment(body: bytes, content_type: str, name: str) -> HTTPResponse:
    return raw(
        body,
        content_type=content_type,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


@bp.get("/campaigns/<campaign_id:str>/pain-points/export.csv")
@endpoint(
    summary="导出痛难点及票数（CSV，UTF-8 带 BOM）",
    tag=TAG,
    roles=MANAGERS,
    errors=(404,),
    produces="text/csv",
    description=EXPORT_DOC,
)
async def export_csv(request: Request, call: Call[None, None], campaign_id: str) -> HTTPResponse:
    export = await exports.export_rows(ctx=call.ctx, principal=call.user, campaign_id=campaign_id)
    body = await exports.to_csv(export)
    return _attachment(body, "text/csv; charset=utf-8", exports.filename(export, "csv"))


@bp.get("/campaigns/<campaign_id:str>/pain-points/export.xlsx")
@endpoint(
    summary="导出痛难点及票数（Excel XLSX）",
    tag=TAG,
    roles=MANAGERS,
    errors=(404,),
    produces=XLSX_TYPE,
    description=EXPORT_DOC,
)
async def export_xlsx(request: Request, call: Call[None, None], campaign_id: str) -> HTTPResponse:
    export = await exports.export_rows(ctx=call.ctx, principal=call.user, campaign_id=campaign_id)
    body = await exports.to_xlsx(export)
    return _attachment(body, XLSX_TYPE, exports.filename(export, "xlsx"))


@bp.get("/campaigns/<campaign_id:str>/pain-points/similar")
@endpoint(
    summary="提交前查找相似痛难点",
    tag=TAG,
    public=True,
    query=SimilarQuery,
    response=SimilarList,
    errors=(404,),
)
async def similar_pain_points(
    request: Request, call: Call[SimilarQuery, None], campaign_id: str
) -> SimilarList:
    return await pain_points.similar_pain_points(
        ctx=call.ctx,
        principal=call.principal,
        campaign_id=campaign_id,
        text=call.query.text,
        limit=call.query.limit,
    )


@bp.get("/pain-points/<pain_point_id:str>")
@endpoint(
    summary="一条痛难点",
    tag=TAG,
    public=True,
    query=CoordQuery,
    response=PainPointOut,
    errors=(404,),
)
async def get_pain_point(
    request: Request, call: Call[CoordQuery, None], pain_point_id: str
) -> PainPointOut:
    item = await pain_points.get_pain_point_or_raise(pain_point_id, principal=call.principal)
    counts = await pain_points.live_counts(ctx=call.ctx, item=item, campaign=item.campaign)
    return pain_point_out(item, item.campaign, counts, call.query.coord)


@bp.patch("/pain-points/<pain_point_id:str>")
@endpoint(
    summary="提交者在审核前修改痛难点",
    tag=TAG,
    signed_in=True,
    body=PainPointUpdate,
    response=PainPointOut,
    errors=(403, 404, 409),
)
async def edit_pain_point(
    request: Request, call: Call[None, PainPointUpdate], pain_point_id: str
) -> PainPointOut:
    item = await pain_points.edit_pain_point(
        ctx=call.ctx, principal=call.user, public_id=pain_point_id, data=call.body
    )
    counts = await pain_points.live_counts(ctx=call.ctx, item=item, campaign=item.campaign)
    return pain_point_out(item, item.campaign, counts)


@bp.post("/pain-points/<pain_point_id:str>/moderation")
@endpoint(
    summary="审核痛难点：有效 / 无效（须说明理由）/ 重复",
    tag=TAG,
    roles=MANAGERS,
    body=ModerationIn,
    response=PainPointOut,
    errors=(404, 409, 422),
)
async def moderate(
    request: Request, call: Call[None, ModerationIn], pain_point_id: str
) -> PainPointOut:
    item = await moderation.moderate(
        ctx=call.ctx, actor=call.user, public_id=pain_point_id, data=call.body
    )
    counts = await pain_points.live_counts(ctx=call.ctx, item=item, campaign=item.campaign)
    return pain_point_out(item, item.campaign, counts)


@bp.post("/pain-points/<pain_point_id:str>/merge")
@endpoint(
    summary="把重复的痛难点合并到本条（投票随之转移，同一人只计一票）",
    tag=TAG,
    roles=MANAGERS,
    body=MergeIn,
    response=PainPointOut,
    errors=(404, 409, 422),
)
async def merge(request: Request, call: Call[None, MergeIn], pain_point_id: str) -> PainPointOut:
    item = await merging.merge_pain_points(
        ctx=call.ctx, actor=call.user, target_id=pain_point_id, data=call.body
    )
    counts = await pain_points.live_counts(ctx=call.ctx, item=item, campaign=item.campaign)
    return pain_point_out(item, item.campaign, counts)


@bp.post("/pain-points/<pain_point_id:str>/report")
@endpoint(
    summary="举报痛难点（达到活动设定次数后隐藏待复核）",
    tag=TAG,
    signed_in=True,
    body=ReportIn,
    response=ReportOut,
    status=201,
    errors=(404, 409, 422, 429),
)
async def report(request: Request, call: Call[None, ReportIn], pain_point_id: str) -> ReportOut:
    return await moderation.report_pain_point(
        ctx=call.ctx, principal=call.user, public_id=pain_point_id, reason=call.body.reason
    )


@bp.post("/pain-points/<pain_point_id:str>/vote")
@endpoint(
    summary="投票（每人每条一票）",
    tag=TAG,
    signed_in=True,
    response=VoteOut,
    status=201,
    errors=(403, 404, 409, 422, 429),
    description="可带 X-Device-Id 头（小程序设备标识，只存其加盐摘要，用于识别刷票）。"
    "企业账号的票计入企业群体，须为认证企业的成员（403 not_vendor_member / vendor_not_verified）。"
    "409 already_voted / phase_closed / pain_point_hidden / pain_point_pending_review（先审后发的"
    "活动中尚未审核通过）；"
    "422 pain_point_invalid / pain_point_duplicate / vote_budget_exhausted；429 带 Retry-After。",
)
async def vote(request: Request, call: Call[None, None], pain_point_id: str) -> VoteOut:
    return await votes.cast_vote(
        ctx=call.ctx,
        principal=call.user,
        public_id=pain_point_id,
        client_ip=call.client_ip,
        device_id=request.headers.get("x-device-id"),
    )


@bp.delete("/pain-points/<pain_point_id:str>/vote")
@endpoint(
    summary="撤回投票（投票阶段内）",
    tag=TAG,
    signed_in=True,
    response=VoteOut,
    errors=(404, 409, 429),
)
async def withdraw_vote(request: Request, call: Call[None, None], pain_point_id: str) -> VoteOut:
    return await votes.withdraw_vote(
        ctx=call.ctx, principal=call.user, public_id=pain_point_id, client_ip=call.client_ip
    )


@bp.get("/campaigns/<campaign_id:str>/integrity")
@endpoint(
    summary="投票诚信报告：计入、拒绝（按原因）、可疑标记",
    tag=TAG,
    roles=MANAGERS,
    response=IntegrityReport,
    errors=(404,),
    description="可疑投票由每分钟运行的检测任务标记（规则见 docs/architecture.md）；"
    "被标记的票在处理前照常计入。",
)
async def integrity_report(
    request: Request, call: Call[None, None], campaign_id: str
) -> IntegrityReport:
    campaign = await campaigns.get_campaign_or_raise(
        campaign_id, principal=call.user, now=call.clock.now()
    )
    return await integrity.report(ctx=call.ctx, campaign=campaign)


@bp.post("/campaigns/<campaign_id:str>/flags/<flag_id:str>/resolve")
@endpoint(
    summary="处理可疑投票标记：accept 保留 / discard 作废这些票",
    tag=TAG,
    roles=MANAGERS,
    body=FlagResolveIn,
    response=FlagOut,
    errors=(404, 409),
    description="discard 从计票中删除归于该标记的票，并立即重建实时计数与排名。",
)
async def resolve_flag(
    request: Request, call: Call[None, FlagResolveIn], campaign_id: str, flag_id: str
) -> FlagOut:
    campaign = await campaigns.get_campaign_or_raise(
        campaign_id, principal=call.user, now=call.clock.now()
    )
    return await integrity.resolve_flag(
        ctx=call.ctx, actor=call.user, campaign=campaign, flag_id=flag_id, data=call.body
    )


@bp.get("/campaigns/<campaign_id:str>/moderation")
@endpoint(
    summary="审核队列：待审核与被举报隐藏的痛点，最早的在前",
    tag=TAG,
    roles=MANAGERS,
    query=ModerationQueueQuery,
    response=PainPointList,
    errors=(404,),
)
async def moderation_queue(
    request: Request, call: Call[ModerationQueueQuery, None], campaign_id: str
) -> PainPointList:
    q = call.query
    return await moderation.moderation_queue(
        ctx=call.ctx,
        principal=call.user,
        campaign_id=campaign_id,
        status=q.status,
        limit=q.limit,
        cursor=q.cursor,
    )
