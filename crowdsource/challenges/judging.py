"""Judging: assignments, conflicts of interest, scores, decisions and awards."""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from typing import Any

from tortoise.exceptions import IntegrityError

from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict, Forbidden, NotFound, ValidationFailed
from backend.models import Role, User
from backend.notifications import notify
from backend.uow import unit_of_work
from crowdsource.challenges.curation import get_challenge, tell_followers
from crowdsource.challenges.models import (
    Challenge,
    ConflictOfInterest,
    JudgeAssignment,
    Proposal,
    ProposalStatus,
    Score,
    Vendor,
    VendorMember,
)
from crowdsource.challenges.presenters import awarded_out, judge_out, score_out
from crowdsource.challenges.proposals import DECIDED, get_readable, is_assigned, not_found, user_of
from crowdsource.challenges.schemas import (
    AwardedSolution,
    JudgeList,
    ScoreBoard,
    ScoreIn,
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
    user = await user_of(actor)
    if not await is_assigned(challenge.id, user):
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
    user = await user_of(actor)
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
        raise not_found()
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
    feedback = feedback.strip()
    if outcome is ProposalStatus.DECLINED and not feedback:
        raise ValidationFailed("不予通过须给企业反馈", fields={"feedback": "必填"})
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
