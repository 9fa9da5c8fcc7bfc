"""Judging: judges assigned to a challenge, conflicts of interest, scores on the rubric, the score
overview, decisions and awards — the API's own service functions and confidentiality rules."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from admin_console.forms import build
from admin_console.pages import CURATOR_ONLY, CURATORS, JUDGES, Page, page
from backend.errors import ValidationFailed
from backend.models import Role, User
from crowdsource.challenges import curation, judging, proposals
from crowdsource.challenges.models import (
    Challenge,
    ChallengeStatus,
    ProposalStatus,
    Vendor,
)
from crowdsource.challenges.presenters import challenge_out, proposal_out
from crowdsource.challenges.schemas import ScoreIn

bp = Blueprint("console_judging", url_prefix="/console")

READERS = CURATORS | JUDGES
DECISIONS = {
    "shortlist": ProposalStatus.SHORTLISTED,
    "award": ProposalStatus.AWARDED,
    "decline": ProposalStatus.DECLINED,
}


@bp.get("/judging")
@page(read=READERS)
async def index(request: Request, page: Page) -> HTTPResponse:
    """Curators: every published challenge; judges: the challenges they are assigned to."""
    query = Challenge.filter(status=ChallengeStatus.PUBLISHED).select_related("campaign")
    if page.user.role == Role.JUDGE:
        query = query.filter(judges__judge__public_id=page.user.user_id)
    rows = await query.order_by("-published_at").limit(200)
    return page.render("judging/index.html", challenges=rows, now=page.ctx.clock.now())


@bp.get("/judging/<challenge_id:str>")
@page(read=READERS, write=CURATOR_ONLY | JUDGES)
async def challenge(request: Request, page: Page, challenge_id: str) -> HTTPResponse:
    row = await curation.get_challenge(challenge_id, viewer=page.user)
    out = await challenge_out(row, now=page.ctx.clock.now())
    assigned = (
        await judging.judges(challenge_id=challenge_id, actor=page.user)
        if page.user.role in CURATORS
        else None
    )
    readable = await proposals.list_for_challenge(actor=page.user, challenge_id=challenge_id)
    boards: dict[str, Any] = {}
    if page.user.role != Role.BUREAU_ADMIN:
        for p in readable:
            boards[p.public_id] = await judging.scoreboard(actor=page.user, public_id=p.public_id)
    judge_accounts = (
        await User.filter(role=Role.JUDGE, is_active=True).order_by("id").limit(200)
        if page.user.role == Role.CURATOR
        else []
    )
    vendors = (
        await Vendor.filter(proposals__challenge_id=row.id).distinct().order_by("id")
        if page.user.role == Role.JUDGE
        else []
    )
    return page.render(
        "judging/challenge.html",
        challenge=out,
        judges=assigned.items if assigned else [],
        proposals=[proposal_out(p) for p in readable],
        boards=boards,
        judge_accounts=judge_accounts,
        vendors=vendors,
        judging_open=page.ctx.clock.now() >= row.submission_deadline,
    )


@bp.post("/judging/<challenge_id:str>/judges")
@page(read=CURATOR_ONLY, write=CURATOR_ONLY)
async def assign(request: Request, page: Page, challenge_id: str) -> HTTPResponse:
    await judging.assign_judge(
        ctx=page.ctx, actor=page.user, challenge_id=challenge_id, user_id=page.form.get("judge", "")
    )
    return await page.redirect(f"/console/judging/{challenge_id}", flash="已指派评委")


@bp.post("/judging/<challenge_id:str>/conflicts")
@page(read=JUDGES, write=JUDGES)
async def conflict(request: Request, page: Page, challenge_id: str) -> HTTPResponse:
    await judging.declare_conflict(
        ctx=page.ctx,
        actor=page.user,
        challenge_id=challenge_id,
        vendor_id=page.form.get("vendor", ""),
        reason=page.form.get("reason", "")[:300],
    )
    return await page.redirect(
        f"/console/judging/{challenge_id}", flash="已申报利益冲突，该企业的方案对您不再可见"
    )


@bp.get("/proposals/<proposal_id:str>")
@page(read=CURATOR_ONLY | JUDGES, write=CURATOR_ONLY | JUDGES)
async def proposal(request: Request, page: Page, proposal_id: str) -> HTTPResponse:
    return await _proposal_page(page, proposal_id, errors={}, values=None)


async def _proposal_page(
    page: Page,
    proposal_id: str,
    *,
    errors: dict[str, str],
    values: dict[str, str] | None,
    status: int = 200,
) -> HTTPResponse:
    row = await proposals.get_readable(proposal_id, page.user)
    board = await judging.scoreboard(actor=page.user, public_id=proposal_id)
    mine = next((s for s in board.scores if s.judge_id == page.user.user_id), None)
    if values is None:
        values = {}
        if mine is not None:
            values = {f"score-{k}": str(v) for k, v in mine.scores.items()}
            values |= {f"comment-{k}": v for k, v in mine.comments.items()}
            values["overall_comment"] = mine.overall_comment
    return page.render(
        "judging/proposal.html",
        status=status,
        proposal=proposal_out(row),
        challenge=row.challenge,
        versions=await proposals.versions(actor=page.user, public_id=proposal_id),
        board=board,
        values=values,
        errors=errors,
        judging_open=page.ctx.clock.now() >= row.challenge.submission_deadline,
    )


@bp.post("/proposals/<proposal_id:str>/score")
@page(read=JUDGES, write=JUDGES)
async def score(request: Request, page: Page, proposal_id: str) -> HTTPResponse:
    row = await proposals.get_readable(proposal_id, page.user)
    names = [str(c["criterion"]) for c in row.challenge.rubric]
    form = page.form
    data = {
        "scores": {n: form.get(f"score-{n}", "") for n in names},
        "comments": {n: form[f"comment-{n}"] for n in names if form.get(f"comment-{n}")},
        "overall_comment": form.get("overall_comment", ""),
    }
    body, errors = build(ScoreIn, data)
    if body is not None:
        try:
            await judging.score(ctx=page.ctx, actor=page.user, public_id=proposal_id, data=body)
        except ValidationFailed as exc:
            errors = dict(exc.fields) or {"scores": exc.message}
        else:
            return await page.redirect(f"/console/proposals/{proposal_id}", flash="评分已提交")
    return await _proposal_page(page, proposal_id, errors=errors, values=dict(form), status=400)


@bp.post("/proposals/<proposal_id:str>/decide")
@page(read=CURATOR_ONLY, write=CURATOR_ONLY)
async def decide(request: Request, page: Page, proposal_id: str) -> HTTPResponse:
    outcome = DECISIONS.get(page.form.get("outcome", ""))
    feedback = page.form.get("feedback", "")[:3000]
    if outcome is None:
        raise ValidationFailed(fields={"outcome": "未知的决定"})
    decided = await judging.decide(
        ctx=page.ctx, actor=page.user, public_id=proposal_id, outcome=outcome, feedback=feedback
    )
    return await page.redirect(
        f"/console/proposals/{proposal_id}", flash=f"已决定：{decided.status.value}"
    )
