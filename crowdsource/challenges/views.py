"""Vendor routes: self-registration, the bureau's decisions, members."""

from __future__ import annotations

import asyncio

from sanic import Blueprint, HTTPResponse, Request
from sanic.response import html, raw

from backend.access import Call, endpoint
from backend.errors import Forbidden, NotFound
from backend.headers import csp_for_inline_styles
from backend.models import Role
from crowdsource.challenges import booklet, curation, judging, proposals, service
from crowdsource.challenges.models import ProposalStatus, VendorStatus
from crowdsource.challenges.presenters import challenge_out, member_out, proposal_out, vendor_out
from crowdsource.challenges.schemas import (
    ChallengeIn,
    ChallengeListQuery,
    ChallengeOut,
    ChallengePage,
    ChallengePatch,
    ConflictIn,
    Decision,
    DeclineIn,
    JudgeIn,
    JudgeList,
    MemberOut,
    ProposalIn,
    ProposalList,
    ProposalOut,
    ResultsOut,
    ReviewNote,
    ScoreBoard,
    ScoreIn,
    ShortlistIn,
    ShortlistOut,
    VendorDecision,
    VendorListQuery,
    VendorMemberCreate,
    VendorOut,
    VendorPage,
    VendorRegistration,
    VendorSuspension,
    VersionList,
)

bp = Blueprint("vendors", url_prefix="/api/v1")
TAG = "vendors"
STAFF = (Role.BUREAU_ADMIN, Role.CURATOR)


@bp.post("/vendors")
@endpoint(
    summary="企业注册（统一社会信用代码校验）",
    tag=TAG,
    public=True,
    body=VendorRegistration,
    response=VendorOut,
    status=201,
    errors=(409, 429),
)
async def register(request: Request, call: Call[None, VendorRegistration]) -> VendorOut:
    vendor = await service.register_vendor(ctx=call.ctx, data=call.body, client_ip=call.client_ip)
    return await vendor_out(vendor, full=True, with_members=True)


@bp.get("/vendors")
@endpoint(summary="企业列表", tag=TAG, roles=STAFF, query=VendorListQuery, response=VendorPage)
async def list_vendors(request: Request, call: Call[VendorListQuery, None]) -> VendorPage:
    return await service.list_vendors(ctx=call.ctx, viewer=call.user, query=call.query)


@bp.get("/vendors/<vendor_id:str>")
@endpoint(
    summary="企业详情", tag=TAG, roles=(*STAFF, Role.VENDOR), response=VendorOut, errors=(404,)
)
async def get_vendor(request: Request, call: Call[None, None], vendor_id: str) -> VendorOut:
    vendor = await service.get_vendor_or_raise(vendor_id)
    if call.user.role == Role.VENDOR:
        member = await service.membership_of(call.user.user_id)
        if member is None or member.vendor_id != vendor.id:
            raise NotFound("企业不存在", code="vendor_not_found")
    full = await service.sees_contact(call.user, vendor)
    return await vendor_out(vendor, full=full, with_members=True)


@bp.get("/me/vendor")
@endpoint(summary="我所在的企业", tag=TAG, roles=(Role.VENDOR,), response=VendorOut, errors=(404,))
async def my_vendor(request: Request, call: Call[None, None]) -> VendorOut:
    member = await service.membership_of(call.user.user_id)
    if member is None:
        raise NotFound("账号未关联企业", code="vendor_not_found")
    return await vendor_out(member.vendor, full=True, with_members=True)


@bp.post("/vendors/<vendor_id:str>/verify")
@endpoint(
    summary="审核通过企业",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN,),
    body=VendorDecision,
    response=VendorOut,
    errors=(404,),
)
async def verify(request: Request, call: Call[None, VendorDecision], vendor_id: str) -> VendorOut:
    vendor = await service.decide_vendor(
        ctx=call.ctx,
        actor=call.user,
        public_id=vendor_id,
        status=VendorStatus.VERIFIED,
        reason=call.body.reason,
    )
    return await vendor_out(vendor, full=True)


@bp.post("/vendors/<vendor_id:str>/suspend")
@endpoint(
    summary="暂停企业（须说明原因）",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN,),
    body=VendorSuspension,
    response=VendorOut,
    errors=(404,),
)
async def suspend(
    request: Request, call: Call[None, VendorSuspension], vendor_id: str
) -> VendorOut:
    vendor = await service.decide_vendor(
        ctx=call.ctx,
        actor=call.user,
        public_id=vendor_id,
        status=VendorStatus.SUSPENDED,
        reason=call.body.reason,
    )
    return await vendor_out(vendor, full=True)


@bp.post("/vendors/<vendor_id:str>/members")
@endpoint(
    summary="企业成员添加同事账号",
    tag=TAG,
    roles=(Role.VENDOR,),
    body=VendorMemberCreate,
    response=MemberOut,
    status=201,
    errors=(404, 409, 422),
)
async def add_member(
    request: Request, call: Call[None, VendorMemberCreate], vendor_id: str
) -> MemberOut:
    if call.user.role != Role.VENDOR:  # pragma: no cover - guarded by roles
        raise Forbidden()
    user = await service.add_member(
        ctx=call.ctx, actor=call.user, public_id=vendor_id, data=call.body
    )
    return member_out(user, is_owner=False)


# --- challenges, proposals, judging ----------------------------------------------------------

challenges_bp = Blueprint("challenges", url_prefix="/api/v1")
CTAG = "challenges"
PTAG = "proposals"
CURATORS = (Role.CURATOR, Role.BUREAU_ADMIN)
READERS = (Role.VENDOR, Role.CURATOR, Role.JUDGE)


@challenges_bp.get("/campaigns/<campaign_id:str>/shortlist")
@endpoint(summary="候选痛难点清单", tag=CTAG, roles=CURATORS, response=ShortlistOut, errors=(404,))
async def get_shortlist(request: Request, call: Call[None, None], campaign_id: str) -> ShortlistOut:
    return await curation.shortlist(campaign_id=campaign_id)


@challenges_bp.post("/campaigns/<campaign_id:str>/shortlist")
@endpoint(
    summary="加入候选清单", tag=CTAG, roles=CURATORS, body=ShortlistIn, status=204, errors=(404,)
)
async def add_shortlist(request: Request, call: Call[None, ShortlistIn], campaign_id: str) -> None:
    await curation.add_to_shortlist(
        ctx=call.ctx,
        actor=call.user,
        campaign_id=campaign_id,
        pain_point_id=call.body.pain_point_id,
        note=call.body.note,
    )


@challenges_bp.delete("/campaigns/<campaign_id:str>/shortlist/<pain_point_id:str>")
@endpoint(summary="移出候选清单", tag=CTAG, roles=CURATORS, status=204, errors=(404,))
async def remove_shortlist(
    request: Request, call: Call[None, None], campaign_id: str, pain_point_id: str
) -> None:
    await curation.remove_from_shortlist(
        ctx=call.ctx, actor=call.user, campaign_id=campaign_id, pain_point_id=pain_point_id
    )


@challenges_bp.post("/campaigns/<campaign_id:str>/challenges")
@endpoint(
    summary="撰写挑战（草稿）",
    tag=CTAG,
    roles=CURATORS,
    body=ChallengeIn,
    response=ChallengeOut,
    status=201,
    errors=(404,),
)
async def create_challenge(
    request: Request, call: Call[None, ChallengeIn], campaign_id: str
) -> ChallengeOut:
    challenge = await curation.create_challenge(
        ctx=call.ctx, actor=call.user, campaign_id=campaign_id, data=call.body
    )
    challenge = await curation.get_challenge(challenge.public_id, viewer=call.user)
    return await challenge_out(challenge, now=call.clock.now())


@challenges_bp.get("/challenges")
@endpoint(
    summary="已发布的挑战", tag=CTAG, public=True, query=ChallengeListQuery, response=ChallengePage
)
async def list_challenges(request: Request, call: Call[ChallengeListQuery, None]) -> ChallengePage:
    return await curation.list_challenges(ctx=call.ctx, viewer=call.principal, query=call.query)


@challenges_bp.get("/challenges/<challenge_id:str>")
@endpoint(summary="挑战详情", tag=CTAG, public=True, response=ChallengeOut, errors=(404,))
async def get_challenge(
    request: Request, call: Call[None, None], challenge_id: str
) -> ChallengeOut:
    challenge = await curation.get_challenge(challenge_id, viewer=call.principal)
    return await challenge_out(challenge, now=call.clock.now())


@challenges_bp.patch("/challenges/<challenge_id:str>")
@endpoint(
    summary="修改未发布的挑战",
    tag=CTAG,
    roles=CURATORS,
    body=ChallengePatch,
    response=ChallengeOut,
    errors=(404, 409),
)
async def patch_challenge(
    request: Request, call: Call[None, ChallengePatch], challenge_id: str
) -> ChallengeOut:
    challenge = await curation.update_challenge(
        ctx=call.ctx, actor=call.user, public_id=challenge_id, data=call.body
    )
    return await challenge_out(challenge, now=call.clock.now())


@challenges_bp.post("/challenges/<challenge_id:str>/submit-for-review")
@endpoint(
    summary="提交审核（草稿 → 审核中）",
    tag=CTAG,
    roles=CURATORS,
    response=ChallengeOut,
    errors=(404, 409),
)
async def review(request: Request, call: Call[None, None], challenge_id: str) -> ChallengeOut:
    challenge = await curation.submit_for_review(
        ctx=call.ctx, actor=call.user, public_id=challenge_id
    )
    return await challenge_out(challenge, now=call.clock.now())


@challenges_bp.post("/challenges/<challenge_id:str>/return")
@endpoint(
    summary="退回修改（审核中 → 草稿）",
    tag=CTAG,
    roles=(Role.BUREAU_ADMIN,),
    body=ReviewNote,
    response=ChallengeOut,
    errors=(404, 409),
)
async def return_challenge(
    request: Request, call: Call[None, ReviewNote], challenge_id: str
) -> ChallengeOut:
    challenge = await curation.return_to_draft(
        ctx=call.ctx, actor=call.user, public_id=challenge_id, note=call.body.note
    )
    return await challenge_out(challenge, now=call.clock.now())


@challenges_bp.post("/challenges/<challenge_id:str>/publish")
@endpoint(
    summary="发布挑战（数据资源局）",
    tag=CTAG,
    roles=(Role.BUREAU_ADMIN,),
    response=ChallengeOut,
    errors=(404, 409),
)
async def publish(request: Request, call: Call[None, None], challenge_id: str) -> ChallengeOut:
    challenge = await curation.publish(ctx=call.ctx, actor=call.user, public_id=challenge_id)
    return await challenge_out(challenge, now=call.clock.now())


@challenges_bp.get("/challenges/<challenge_id:str>/results")
@endpoint(summary="挑战评审结果（公开）", tag=CTAG, public=True, response=ResultsOut, errors=(404,))
async def results(request: Request, call: Call[None, None], challenge_id: str) -> ResultsOut:
    challenge = await curation.get_challenge(challenge_id, viewer=None)
    awarded, received = await judging.awarded(challenge=challenge)
    out = await challenge_out(challenge, now=call.clock.now())
    return ResultsOut(challenge=out, awarded=awarded, proposals_received=received)


@challenges_bp.post("/pain-points/<pain_point_id:str>/follow")
@endpoint(
    summary="关注痛难点（挑战发布、获奖时通知）",
    tag=CTAG,
    signed_in=True,
    status=204,
    errors=(404,),
)
async def follow(request: Request, call: Call[None, None], pain_point_id: str) -> None:
    await curation.follow(ctx=call.ctx, actor=call.user, pain_point_id=pain_point_id, on=True)


@challenges_bp.delete("/pain-points/<pain_point_id:str>/follow")
@endpoint(summary="取消关注", tag=CTAG, signed_in=True, status=204, errors=(404,))
async def unfollow(request: Request, call: Call[None, None], pain_point_id: str) -> None:
    await curation.follow(ctx=call.ctx, actor=call.user, pain_point_id=pain_point_id, on=False)


@challenges_bp.post("/challenges/<challenge_id:str>/proposals")
@endpoint(
    summary="提交方案（企业）",
    tag=PTAG,
    roles=(Role.VENDOR,),
    body=ProposalIn,
    response=ProposalOut,
    status=201,
    errors=(404, 409, 422),
)
async def create_proposal(
    request: Request, call: Call[None, ProposalIn], challenge_id: str
) -> ProposalOut:
    proposal = await proposals.create_proposal(
        ctx=call.ctx, actor=call.user, challenge_id=challenge_id, data=call.body
    )
    return proposal_out(proposal)


@challenges_bp.get("/challenges/<challenge_id:str>/proposals")
@endpoint(
    summary="挑战的方案（按权限可见）",
    tag=PTAG,
    roles=READERS,
    response=ProposalList,
    errors=(404,),
)
async def challenge_proposals(
    request: Request, call: Call[None, None], challenge_id: str
) -> ProposalList:
    rows = await proposals.list_for_challenge(actor=call.user, challenge_id=challenge_id)
    return ProposalList(items=[proposal_out(p) for p in rows])


@challenges_bp.get("/me/proposals")
@endpoint(summary="本企业的方案", tag=PTAG, roles=(Role.VENDOR,), response=ProposalList)
async def my_proposals(request: Request, call: Call[None, None]) -> ProposalList:
    return ProposalList(items=[proposal_out(p) for p in await proposals.mine(actor=call.user)])


@challenges_bp.get("/proposals/<proposal_id:str>")
@endpoint(
    summary="方案详情（保密：无权者一律 404）",
    tag=PTAG,
    public=True,
    response=ProposalOut,
    errors=(404,),
)
async def get_proposal(request: Request, call: Call[None, None], proposal_id: str) -> ProposalOut:
    return proposal_out(await proposals.get_readable(proposal_id, call.principal))


@challenges_bp.put("/proposals/<proposal_id:str>")
@endpoint(
    summary="修改方案（截止前；已提交的方案修改即提交新版本）",
    tag=PTAG,
    roles=(Role.VENDOR,),
    body=ProposalIn,
    response=ProposalOut,
    errors=(404, 409),
)
async def put_proposal(
    request: Request, call: Call[None, ProposalIn], proposal_id: str
) -> ProposalOut:
    proposal = await proposals.update_proposal(
        ctx=call.ctx, actor=call.user, public_id=proposal_id, data=call.body
    )
    return proposal_out(proposal)


@challenges_bp.post("/proposals/<proposal_id:str>/submit")
@endpoint(
    summary="提交方案", tag=PTAG, roles=(Role.VENDOR,), response=ProposalOut, errors=(404, 409)
)
async def submit_proposal(
    request: Request, call: Call[None, None], proposal_id: str
) -> ProposalOut:
    proposal = await proposals.submit_proposal(ctx=call.ctx, actor=call.user, public_id=proposal_id)
    return proposal_out(proposal)


@challenges_bp.post("/proposals/<proposal_id:str>/withdraw")
@endpoint(
    summary="撤回方案", tag=PTAG, roles=(Role.VENDOR,), response=ProposalOut, errors=(404, 409)
)
async def withdraw_proposal(
    request: Request, call: Call[None, None], proposal_id: str
) -> ProposalOut:
    proposal = await proposals.withdraw_proposal(
        ctx=call.ctx, actor=call.user, public_id=proposal_id
    )
    return proposal_out(proposal)


@challenges_bp.get("/proposals/<proposal_id:str>/versions")
@endpoint(
    summary="方案的历次提交版本（保密）", tag=PTAG, public=True, response=VersionList, errors=(404,)
)
async def proposal_versions(
    request: Request, call: Call[None, None], proposal_id: str
) -> VersionList:
    return VersionList(items=await proposals.versions(actor=call.principal, public_id=proposal_id))


@challenges_bp.get("/challenges/<challenge_id:str>/judges")
@endpoint(summary="评委名单", tag=PTAG, roles=CURATORS, response=JudgeList, errors=(404,))
async def list_judges(request: Request, call: Call[None, None], challenge_id: str) -> JudgeList:
    return await judging.judges(challenge_id=challenge_id, actor=call.user)


@challenges_bp.post("/challenges/<challenge_id:str>/judges")
@endpoint(
    summary="指派评委", tag=PTAG, roles=(Role.CURATOR,), body=JudgeIn, status=204, errors=(404,)
)
async def assign_judge(request: Request, call: Call[None, JudgeIn], challenge_id: str) -> None:
    await judging.assign_judge(
        ctx=call.ctx, actor=call.user, challenge_id=challenge_id, user_id=call.body.user_id
    )


@challenges_bp.post("/challenges/<challenge_id:str>/conflicts")
@endpoint(
    summary="评委申报利益冲突（回避该企业）",
    tag=PTAG,
    roles=(Role.JUDGE,),
    body=ConflictIn,
    status=204,
    errors=(404,),
)
async def declare_conflict(
    request: Request, call: Call[None, ConflictIn], challenge_id: str
) -> None:
    await judging.declare_conflict(
        ctx=call.ctx,
        actor=call.user,
        challenge_id=challenge_id,
        vendor_id=call.body.vendor_id,
        reason=call.body.reason,
    )


@challenges_bp.put("/proposals/<proposal_id:str>/score")
@endpoint(
    summary="评委按细则评分",
    tag=PTAG,
    roles=(Role.JUDGE,),
    body=ScoreIn,
    status=204,
    errors=(404, 409),
)
async def score(request: Request, call: Call[None, ScoreIn], proposal_id: str) -> None:
    await judging.score(ctx=call.ctx, actor=call.user, public_id=proposal_id, data=call.body)


@challenges_bp.get("/proposals/<proposal_id:str>/scores")
@endpoint(
    summary="方案评分（评委须先提交自己的评分）",
    tag=PTAG,
    roles=(Role.JUDGE, Role.CURATOR),
    response=ScoreBoard,
    errors=(404,),
)
async def scores(request: Request, call: Call[None, None], proposal_id: str) -> ScoreBoard:
    return await judging.scoreboard(actor=call.user, public_id=proposal_id)


async def _decide(call: Call, proposal_id: str, outcome: ProposalStatus) -> ProposalOut:
    proposal = await judging.decide(
        ctx=call.ctx,
        actor=call.user,
        public_id=proposal_id,
        outcome=outcome,
        feedback=call.body.feedback,
    )
    return proposal_out(proposal)


@challenges_bp.post("/proposals/<proposal_id:str>/shortlist")
@endpoint(
    summary="方案入围",
    tag=PTAG,
    roles=(Role.CURATOR,),
    body=Decision,
    response=ProposalOut,
    errors=(404, 409),
)
async def shortlist_proposal(
    request: Request, call: Call[None, Decision], proposal_id: str
) -> ProposalOut:
    return await _decide(call, proposal_id, ProposalStatus.SHORTLISTED)


@challenges_bp.post("/proposals/<proposal_id:str>/award")
@endpoint(
    summary="评为优秀解决方案",
    tag=PTAG,
    roles=(Role.CURATOR,),
    body=Decision,
    response=ProposalOut,
    errors=(404, 409),
)
async def award(request: Request, call: Call[None, Decision], proposal_id: str) -> ProposalOut:
    return await _decide(call, proposal_id, ProposalStatus.AWARDED)


@challenges_bp.post("/proposals/<proposal_id:str>/decline")
@endpoint(
    summary="不予通过（附反馈）",
    tag=PTAG,
    roles=(Role.CURATOR,),
    body=DeclineIn,
    response=ProposalOut,
    errors=(404, 409),
)
async def decline(request: Request, call: Call[None, DeclineIn], proposal_id: str) -> ProposalOut:
    return await _decide(call, proposal_id, ProposalStatus.DECLINED)


async def _booklet(call: Call, campaign_id: str) -> booklet.Booklet:
    campaign = await curation.get_campaign(campaign_id)
    page = await curation.published_for_booklet(campaign=campaign, now=call.clock.now())
    return booklet.build(campaign, page, booklet.local_stamp(call.clock.now()))


@challenges_bp.get("/campaigns/<campaign_id:str>/booklet")
@endpoint(
    summary="挑战手册（HTML，可打印）", tag=CTAG, public=True, errors=(404,), produces="text/html"
)
async def booklet_html(request: Request, call: Call[None, None], campaign_id: str) -> HTTPResponse:
    page = booklet.render_html(await _booklet(call, campaign_id))
    return html(page, headers={"Content-Security-Policy": csp_for_inline_styles(page)})


@challenges_bp.get("/campaigns/<campaign_id:str>/booklet.pdf")
@endpoint(
    summary="挑战手册（PDF）", tag=CTAG, public=True, errors=(404,), produces="application/pdf"
)
async def booklet_pdf(request: Request, call: Call[None, None], campaign_id: str) -> HTTPResponse:
    data = await _booklet(call, campaign_id)
    pdf = await asyncio.to_thread(booklet.render_pdf, data)
    return raw(
        pdf,
        content_type="application/pdf",
        headers={"Content-Disposition": f'inline; filename="booklet-{campaign_id}.pdf"'},
    )
