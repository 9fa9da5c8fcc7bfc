"""Vendor proposals: drafts, versions, submission, withdrawal, and who may read them.

Confidentiality: a proposal is visible to the members of its vendor, to curators (once it has been
submitted) and to the judges assigned to its challenge who have not declared a conflict with its
vendor (once submitted). Everyone else, the bureau admin included, gets 404, the same answer as for
a proposal that does not exist.
"""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict, Forbidden, NotFound, Unprocessable
from backend.models import Role, User
from backend.uow import unit_of_work
from crowdsource.challenges.curation import get_challenge
from crowdsource.challenges.models import (
    Challenge,
    ChallengeStatus,
    ConflictOfInterest,
    JudgeAssignment,
    Proposal,
    ProposalStatus,
    ProposalVersion,
    Vendor,
    VendorStatus,
)
from crowdsource.challenges.presenters import version_out
from crowdsource.challenges.schemas import (
    ProposalIn,
    ProposalVersionOut,
)
from crowdsource.challenges.service import membership_of

HIDDEN_FROM_REVIEWERS = (ProposalStatus.DRAFT,)
HIDDEN_FROM_JUDGES = (ProposalStatus.DRAFT, ProposalStatus.WITHDRAWN)
DECIDED = (ProposalStatus.AWARDED, ProposalStatus.DECLINED)


def not_found() -> NotFound:
    return NotFound("方案不存在", code="proposal_not_found")


async def user_of(principal: Principal) -> User:
    return await User.get(public_id=principal.user_id)


async def is_assigned(challenge_id: int, user: User) -> bool:
    return await JudgeAssignment.filter(challenge_id=challenge_id, judge=user).exists()


async def _conflicted(challenge_id: int, user: User, vendor_id: int) -> bool:
    return await ConflictOfInterest.filter(
        challenge_id=challenge_id, judge=user, vendor_id=vendor_id
    ).exists()


async def can_read(proposal: Proposal, viewer: Principal | None) -> bool:
    """The confidentiality rule (see the module docstring)."""
    if viewer is None:
        return False
    if viewer.role == Role.VENDOR:
        member = await membership_of(viewer.user_id)
        return member is not None and member.vendor_id == proposal.vendor_id
    if viewer.role == Role.CURATOR:
        return proposal.status not in HIDDEN_FROM_REVIEWERS
    if viewer.role == Role.JUDGE:
        if proposal.status in HIDDEN_FROM_JUDGES:
            return False
        user = await user_of(viewer)
        return await is_assigned(proposal.challenge_id, user) and not await _conflicted(
            proposal.challenge_id, user, proposal.vendor_id
        )
    return False


async def get_readable(public_id: str, viewer: Principal | None) -> Proposal:
    proposal = await Proposal.get_or_none(public_id=public_id).select_related("vendor", "challenge")
    if proposal is None or not await can_read(proposal, viewer):
        raise not_found()
    return proposal


async def _vendor_of(actor: Principal) -> Vendor:
    member = await membership_of(actor.user_id)
    if member is None:
        raise Forbidden("账号未关联企业", code="no_vendor")
    vendor = member.vendor
    if vendor.status == VendorStatus.SUSPENDED:
        raise Forbidden("企业已被暂停，不能提交方案", code="vendor_suspended")
    if vendor.status != VendorStatus.VERIFIED:
        raise Unprocessable("企业通过审核后才能提交方案", code="vendor_not_verified")
    return vendor


def _require_open(challenge: Challenge, ctx: AppContext) -> None:
    if challenge.status != ChallengeStatus.PUBLISHED:
        raise NotFound("挑战不存在", code="challenge_not_found")
    if ctx.clock.now() >= challenge.submission_deadline:
        raise Conflict("方案提交已截止", code="deadline_passed")


async def _record_version(*, ctx: AppContext, actor: Principal, proposal: Proposal) -> None:
    """Submit: bump the version counter atomically and keep a copy of this version."""
    now = ctx.clock.now()
    await Proposal.filter(id=proposal.id).update(
        versions_submitted=F("versions_submitted") + 1,
        status=ProposalStatus.SUBMITTED,
        submitted_at=now,
    )
    await proposal.refresh_from_db(fields=["versions_submitted", "status", "submitted_at"])
    await ProposalVersion.create(
        proposal=proposal,
        number=proposal.versions_submitted,
        title=proposal.title,
        summary=proposal.summary,
        body=proposal.body,
        attachments=proposal.attachments,
        submitted_by=actor.user_id,
        submitted_at=now,
    )


async def create_proposal(
    *, ctx: AppContext, actor: Principal, challenge_id: str, data: ProposalIn
) -> Proposal:
    """A vendor's proposal to a published challenge before its deadline (one per vendor)."""
    vendor = await _vendor_of(actor)
    challenge = await get_challenge(challenge_id, viewer=None)
    _require_open(challenge, ctx)
    now = ctx.clock.now()
    attachments = [a.model_dump(mode="json") for a in data.attachments]
    try:
        async with unit_of_work():
            proposal = await Proposal.create(
                challenge=challenge,
                vendor=vendor,
                title=data.title,
                summary=data.summary,
                body=data.body,
                attachments=attachments,
                created_at=now,
                updated_at=now,
            )
            if data.submit:
                await _record_version(ctx=ctx, actor=actor, proposal=proposal)
            await record(
                ctx=ctx,
                actor=actor,
                action="proposal.create",
                obj=("proposal", proposal.public_id),
                detail={"submitted": data.submit},
            )
    except IntegrityError:
        raise Conflict("本企业已有该挑战的方案，请修改原方案", code="proposal_exists") from None
    proposal.vendor, proposal.challenge = vendor, challenge
    return proposal


async def update_proposal(
    *, ctx: AppContext, actor: Principal, public_id: str, data: ProposalIn
) -> Proposal:
    """Revise before the deadline; revising a submitted proposal submits a new version."""
    proposal = await get_readable(public_id, actor)
    if actor.role != Role.VENDOR:
        raise not_found()
    await _vendor_of(actor)
    _require_open(proposal.challenge, ctx)
    if proposal.status in (*DECIDED, ProposalStatus.SHORTLISTED):
        raise Conflict("方案已进入评审决定，不能修改", code="proposal_decided")
    resubmit = data.submit or proposal.status == ProposalStatus.SUBMITTED
    async with unit_of_work():
        proposal.title, proposal.summary, proposal.body = data.title, data.summary, data.body
        proposal.attachments = [a.model_dump(mode="json") for a in data.attachments]
        proposal.updated_at = ctx.clock.now()
        await proposal.save(update_fields=["title", "summary", "body", "attachments", "updated_at"])
        if resubmit:
            await _record_version(ctx=ctx, actor=actor, proposal=proposal)
        await record(
            ctx=ctx,
            actor=actor,
            action="proposal.update",
            obj=("proposal", public_id),
            detail={"submitted": resubmit},
        )
    return proposal


async def submit_proposal(*, ctx: AppContext, actor: Principal, public_id: str) -> Proposal:
    proposal = await get_readable(public_id, actor)
    if actor.role != Role.VENDOR:
        raise not_found()
    await _vendor_of(actor)
    _require_open(proposal.challenge, ctx)
    if proposal.status not in (ProposalStatus.DRAFT, ProposalStatus.WITHDRAWN):
        raise Conflict("方案已提交", code="proposal_already_submitted")
    async with unit_of_work():
        await _record_version(ctx=ctx, actor=actor, proposal=proposal)
        await record(ctx=ctx, actor=actor, action="proposal.submit", obj=("proposal", public_id))
    return proposal


async def withdraw_proposal(*, ctx: AppContext, actor: Principal, public_id: str) -> Proposal:
    proposal = await get_readable(public_id, actor)
    if actor.role != Role.VENDOR:
        raise not_found()
    _require_open(proposal.challenge, ctx)
    if proposal.status != ProposalStatus.SUBMITTED:
        raise Conflict("只有已提交的方案可以撤回", code="proposal_not_submitted")
    proposal.status = ProposalStatus.WITHDRAWN
    proposal.updated_at = ctx.clock.now()
    async with unit_of_work():
        await proposal.save(update_fields=["status", "updated_at"])
        await record(ctx=ctx, actor=actor, action="proposal.withdraw", obj=("proposal", public_id))
    return proposal


async def versions(*, actor: Principal | None, public_id: str) -> list[ProposalVersionOut]:
    proposal = await get_readable(public_id, actor)
    rows = await ProposalVersion.filter(proposal=proposal).order_by("number")
    return [version_out(v) for v in rows]


async def list_for_challenge(*, actor: Principal, challenge_id: str) -> list[Proposal]:
    """The proposals of a challenge this caller may read."""
    challenge = await get_challenge(challenge_id, viewer=None)
    rows = await Proposal.filter(challenge=challenge).select_related("vendor", "challenge")
    return [p for p in rows if await can_read(p, actor)]


async def mine(*, actor: Principal) -> list[Proposal]:
    member = await membership_of(actor.user_id)
    if member is None:
        return []
    return (
        await Proposal.filter(vendor_id=member.vendor_id)
        .select_related("vendor", "challenge")
        .order_by("-updated_at")
    )
