"""Vendor proposals, judging and awards.

Confidentiality: a proposal is visible to the members of its vendor, to curators (once it has been
submitted) and to the judges assigned to its challenge who have not declared a conflict with its
vendor (once submitted). Everyone else, the bureau admin included, gets 404, the same answer as for
a proposal that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F

from backend.access import AppContext, Principal
from backend.audit import record
from backend.errors import Conflict, Forbidden, NotFound, Unprocessable, ValidationFailed
from backend.models import Role, User
from backend.notifications import notify
from backend.uow import unit_of_work
from crowdsource.challenges.curation import get_challenge, tell_followers
from crowdsource.challenges.models import (
    Challenge,
    ChallengeStatus,
    ConflictOfInterest,
    JudgeAssignment,
    Proposal,
    ProposalStatus,
    ProposalVersion,
    Score,
    Vendor,
    VendorMember,
    VendorStatus,
)
from crowdsource.challenges.presenters import awarded_out, judge_out, score_out, version_out
from crowdsource.challenges.schemas import (
    AwardedSolution,
    JudgeList,
    ProposalIn,
    ProposalVersionOut,
    ScoreBoard,
    ScoreIn,
)
from crowdsource.challenges.service import membership_of

HIDDEN_FROM_REVIEWERS = (ProposalStatus.DRAFT,)
HIDDEN_FROM_JUDGES = (ProposalStatus.DRAFT, ProposalStatus.WITHDRAWN)
DECIDED = (ProposalStatus.AWARDED, ProposalStatus.DECLINED)


def _not_found() -> NotFound:
    return NotFound("方案不存在", code="proposal_not_found")


async def _user(principal: Principal) -> User:
    return await User.get(public_id=principal.user_id)


async def _is_assigned(challenge_id: int, user: User) -> bool:
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
        user = await _user(viewer)
        return await _is_assigned(proposal.challenge_id, user) and not await _conflicted(
            proposal.challenge_id, user, proposal.vendor_id
        )
    return False


async def get_readable(public_id: str, viewer: Principal | None) -> Proposal:
    proposal = await Proposal.get_or_none(public_id=public_id).select_related("vendor", "challenge")
    if proposal is None or not await can_read(proposal, viewer):
        raise _not_found()
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
        raise _not_found()
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
        raise _not_found()
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
        raise _not_found()
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


# --- judges ------------------------------------------------------------------------------------


async def judges(*, challenge_id: str, actor: Principal) -> JudgeList:
    challenge = await get_challenge(challenge_id, viewer=actor)
    rows = await JudgeAssignment.filter(challenge=challenge).select_related("judge")
    conflicts = await ConflictOfInterest.filter(challenge=challenge).select_related(
        "vendor", "judge"
    )
    by_judge: dict[int, list[str]] = {}
    for c in conflicts:
        by_judge.setdefault(c.judge.id, []).append(c.vendor.public_id)
    return JudgeList(items=[judge_out(a.judge, by_judge.get(a.judge.id, [])) for a in rows])


async def assign_judge(
    *, ctx: AppContext, actor: Principal, challenge_id: str, user_id: str
) -> None:
    challenge = await get_challenge(challenge_id, viewer=actor)
    judge = await User.get_or_none(public_id=user_id)
    if judge is None or judge.role != Role.JUDGE or not judge.is_active:
        raise ValidationFailed(fields={"user_id": "not an active judge account"})
    try:
        async with unit_of_work():
            await JudgeAssignment.create(
                challenge=challenge,
                judge=judge,
                assigned_by=actor.user_id,
                assigned_at=ctx.clock.now(),
            )
            await record(
                ctx=ctx,
                actor=actor,
                action="judge.assign",
                obj=("challenge", challenge_id),
                detail={"judge": user_id},
            )
    except IntegrityError:
        return


async def declare_conflict(
    *, ctx: AppContext, actor: Principal, challenge_id: str, vendor_id: str, reason: str
) -> None:
    """A judge excludes themself from one vendor's proposals."""
    challenge = await get_challenge(challenge_id, viewer=None)
    user = await _user(actor)
    if not await _is_assigned(challenge.id, user):
        raise NotFound("挑战不存在", code="challenge_not_found")
    vendor = await Vendor.get_or_none(public_id=vendor_id)
    if vendor is None:
        raise ValidationFailed(fields={"vendor_id": "no such vendor"})
    try:
        async with unit_of_work():
            await ConflictOfInterest.create(
                challenge=challenge,
                judge=user,
                vendor=vendor,
                reason=reason,
                declared_at=ctx.clock.now(),
            )
            await Score.filter(
                proposal__challenge=challenge, proposal__vendor=vendor, judge=user
            ).delete()
            await record(
                ctx=ctx,
                actor=actor,
                action="judge.conflict",
                obj=("challenge", challenge_id),
                reason=reason,
                detail={"vendor": vendor_id},
            )
    except IntegrityError:
        return


def weighted_total(rubric: list[dict[str, object]], scores: dict[str, int]) -> float:
    """Σ score × weight / 100, on the 0–100 scale."""
    return round(sum(scores[str(c["criterion"])] * int(c["weight"]) for c in rubric) / 100, 2)  # type: ignore[call-overload]


async def score(*, ctx: AppContext, actor: Principal, public_id: str, data: ScoreIn) -> Score:
    """A judge scores every criterion of the rubric (revisable until the decision)."""
    proposal = await get_readable(public_id, actor)
    if actor.role != Role.JUDGE:
        raise Forbidden()
    challenge = proposal.challenge
    if ctx.clock.now() < challenge.submission_deadline:
        raise Conflict("方案征集截止后才能评分", code="judging_not_open")
    if proposal.status in DECIDED:
        raise Conflict("方案已有评审结果", code="proposal_decided")
    names = [str(c["criterion"]) for c in challenge.rubric]
    problems = {f"scores.{n}": "missing" for n in names if n not in data.scores}
    problems.update({f"scores.{n}": "not a criterion" for n in data.scores if n not in names})
    problems.update({f"comments.{n}": "not a criterion" for n in data.comments if n not in names})
    if problems:
        raise ValidationFailed("评分须覆盖评审细则的每一项", fields=problems)
    user = await _user(actor)
    total = weighted_total(challenge.rubric, data.scores)
    values = {
        "scores": data.scores,
        "comments": data.comments,
        "overall_comment": data.overall_comment,
        "total": total,
        "submitted_at": ctx.clock.now(),
    }
    async with unit_of_work():
        try:  # get_or_create inserts under a savepoint: a lost race leaves the unit usable
            row, created = await Score.get_or_create(proposal=proposal, judge=user, defaults=values)
        except IntegrityError:  # the same judge's other request created it a moment ago
            row, created = await Score.get(proposal=proposal, judge=user), False
        if not created:
            await Score.filter(id=row.id).update(**values)
        await record(
            ctx=ctx,
            actor=actor,
            action="proposal.score",
            obj=("proposal", public_id),
            detail={"total": total},
        )
    return row


async def scoreboard(*, actor: Principal, public_id: str) -> ScoreBoard:
    """Scores of a proposal; a judge sees the others' only after scoring it."""
    proposal = await get_readable(public_id, actor)
    if actor.role == Role.VENDOR:
        raise _not_found()
    rows = await Score.filter(proposal=proposal).select_related("judge").order_by("id")
    all_totals = [r.total for r in rows]
    others_hidden = False
    if actor.role == Role.JUDGE and not any(r.judge.public_id == actor.user_id for r in rows):
        rows, others_hidden = [], True
    return ScoreBoard(
        proposal_id=proposal.public_id,
        scores=[score_out(r) for r in rows],
        judges_scored=len(all_totals),
        aggregate=None if others_hidden else aggregate_of(_floats(all_totals)),
        others_hidden=others_hidden,
    )


def _floats(values: Iterable[Any]) -> list[float]:
    return [float(v) for v in values]


def aggregate_of(totals: list[float]) -> float | None:
    return round(sum(totals) / len(totals), 2) if totals else None


async def decide(
    *, ctx: AppContext, actor: Principal, public_id: str, outcome: ProposalStatus, feedback: str
) -> Proposal:
    """Shortlist, award (优秀解决方案) or decline with feedback to the vendor."""
    proposal = await get_readable(public_id, actor)
    if actor.role != Role.CURATOR:
        raise Forbidden()
    if ctx.clock.now() < proposal.challenge.submission_deadline:
        raise Conflict("方案征集截止后才能评审决定", code="judging_not_open")
    allowed = {
        ProposalStatus.SHORTLISTED: (ProposalStatus.SUBMITTED,),
        ProposalStatus.AWARDED: (ProposalStatus.SHORTLISTED,),
        ProposalStatus.DECLINED: (ProposalStatus.SUBMITTED, ProposalStatus.SHORTLISTED),
    }[outcome]
    if proposal.status not in allowed:
        raise Conflict("方案当前状态不能作此决定", code="invalid_transition")
    proposal.status = outcome
    proposal.decided_by, proposal.decided_at = actor.user_id, ctx.clock.now()
    if feedback:
        proposal.decision_feedback = feedback
    async with unit_of_work() as uow:
        await proposal.save(
            update_fields=["status", "decided_by", "decided_at", "decision_feedback"]
        )
        await record(
            ctx=ctx,
            actor=actor,
            action=f"proposal.{outcome.value}",
            obj=("proposal", public_id),
            reason=feedback,
        )
        uow.after_commit(
            partial(_tell_vendor, ctx=ctx, proposal=proposal, outcome=outcome, feedback=feedback)
        )
        if outcome == ProposalStatus.AWARDED:
            uow.after_commit(
                partial(
                    tell_followers,
                    ctx=ctx,
                    challenge=proposal.challenge,
                    kind="challenge_awarded",
                    title=f"您关注的痛难点有了优秀解决方案：{proposal.challenge.title}",
                    body=f"{proposal.vendor.name}：{proposal.title}",
                )
            )
    return proposal


async def _tell_vendor(
    *, ctx: AppContext, proposal: Proposal, outcome: ProposalStatus, feedback: str
) -> None:
    """Notify the vendor's members of a decision on their proposal (once per decision)."""
    member_ids = await VendorMember.filter(vendor_id=proposal.vendor.id).values_list(
        "user_id", flat=True
    )
    titles = {
        ProposalStatus.SHORTLISTED: "您的方案已入围",
        ProposalStatus.AWARDED: "您的方案获评优秀解决方案",
        ProposalStatus.DECLINED: "您的方案未获通过",
    }
    await notify(
        ctx=ctx,
        user_ids=[int(u) for u in member_ids],  # type: ignore[call-overload]
        kind=f"proposal_{outcome.value}",
        title=f"{titles[outcome]}：{proposal.title}",
        body=feedback,
        link=f"/api/v1/proposals/{proposal.public_id}",
        dedupe=f"proposal_{outcome.value}:{proposal.public_id}",
    )


async def awarded(*, challenge: Challenge) -> tuple[list[AwardedSolution], int]:
    """The awarded solutions of a challenge and how many proposals it received."""
    rows = await Proposal.filter(challenge=challenge, status=ProposalStatus.AWARDED).select_related(
        "vendor"
    )
    result = []
    for p in rows:
        totals = await Score.filter(proposal=p).values_list("total", flat=True)
        result.append(awarded_out(p, aggregate=aggregate_of(_floats(totals))))
    received = await Proposal.filter(challenge=challenge, versions_submitted__gt=0).count()
    return result, received
