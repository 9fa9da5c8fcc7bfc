"""The curation board: shortlist valid pain points, write challenges from them, edit, send for
review, publish (the bureau admin); the booklet's preview and PDF are in ``views/tasks.py``."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from admin_console.forms import build, local_moment
from admin_console.pages import ADMIN, CURATORS, Page, page
from admin_console.views.common import campaign_choice
from backend.errors import ValidationFailed
from crowdsource.challenges import curation
from crowdsource.challenges.models import ChallengeStatus
from crowdsource.challenges.presenters import challenge_out
from crowdsource.challenges.schemas import (
    ChallengeIn,
    ChallengeListQuery,
    ChallengeOut,
    ChallengePatch,
)
from crowdsource.models import PainPoint, Status

bp = Blueprint("console_challenges", url_prefix="/console/challenges")

RUBRIC_ROWS = 5
DATA_ROWS = 3


async def _challenges(page: Page, campaign_id: str) -> dict[str, list[ChallengeOut]]:
    found: dict[str, list[ChallengeOut]] = {}
    for status in ("draft", "in_review", "published"):
        listing = await curation.list_challenges(
            ctx=page.ctx,
            viewer=page.user,
            query=ChallengeListQuery(campaign=campaign_id, status=status, limit=100),  # type: ignore[arg-type]
        )
        found[status] = listing.items
    return found


async def _valid_items(campaign_id: str) -> list[PainPoint]:
    return (
        await PainPoint.filter(campaign__public_id=campaign_id, status=Status.VALID, hidden=False)
        .order_by("-created_at")
        .limit(200)
    )


@bp.get("/")
@page(read=CURATORS, write=CURATORS)
async def board(request: Request, page: Page) -> HTTPResponse:
    choices, campaign = await campaign_choice(page)
    context: dict[str, Any] = {"campaigns": choices, "campaign": campaign}
    if campaign is not None:
        shortlist = await curation.shortlist(campaign_id=campaign.id)
        listed = {i.pain_point.id for i in shortlist.items}
        context.update(
            shortlist=shortlist.items,
            candidates=[p for p in await _valid_items(campaign.id) if p.public_id not in listed],
            challenges=await _challenges(page, campaign.id),
        )
    return page.render("challenges/board.html", **context)


@bp.post("/shortlist")
@page(read=CURATORS, write=CURATORS)
async def shortlist(request: Request, page: Page) -> HTTPResponse:
    form = page.form
    campaign_id = form.get("campaign", "")
    pain_point_id = form.get("pain_point", "")
    if form.get("action") == "remove":
        await curation.remove_from_shortlist(
            ctx=page.ctx, actor=page.user, campaign_id=campaign_id, pain_point_id=pain_point_id
        )
        message = "已移出候选清单"
    else:
        await curation.add_to_shortlist(
            ctx=page.ctx,
            actor=page.user,
            campaign_id=campaign_id,
            pain_point_id=pain_point_id,
            note=form.get("note", "")[:500],
        )
        message = "已加入候选清单"
    return await page.redirect(f"/console/challenges?campaign={campaign_id}", flash=message)


def _rows(page: Page, prefix: str, names: tuple[str, ...], count: int) -> list[dict[str, str]]:
    rows = []
    for n in range(count):
        row = {name: page.form.get(f"{prefix}-{n}-{name}", "") for name in names}
        if any(row.values()):
            rows.append(row)
    return rows


def _form_data(page: Page) -> dict[str, Any]:
    form = page.form
    rubric = [
        {"criterion": r["criterion"], "weight": r["weight"] or "0", "description": r["description"]}
        for r in _rows(page, "rubric", ("criterion", "weight", "description"), RUBRIC_ROWS)
    ]
    open_data = [
        {
            "dataset": r["dataset"],
            "access_tier": r["access_tier"] or "public",
            "description": r["description"],
        }
        for r in _rows(page, "data", ("dataset", "description", "access_tier"), DATA_ROWS)
        if r["dataset"]
    ]
    return {
        "title": form.get("title", ""),
        "category": form.get("category", ""),
        "problem_statement": form.get("problem_statement", ""),
        "background": form.get("background", ""),
        "expected_outcome": form.get("expected_outcome", ""),
        "owning_department": form.get("owning_department", ""),
        "pain_point_ids": page.form_list("pain_point_ids"),
        "open_data": open_data,
        "rubric": rubric,
        "prize": form.get("prize", ""),
        "submission_deadline": local_moment(form.get("submission_deadline", "")),
    }


def _values_from(challenge: ChallengeOut) -> dict[str, Any]:
    values: dict[str, Any] = challenge.model_dump()
    values["pain_point_ids"] = [p.id for p in challenge.pain_points]
    values["submission_deadline"] = challenge.submission_deadline
    return values


def _posted_values(page: Page) -> dict[str, Any]:
    values: dict[str, Any] = _form_data(page)
    values["submission_deadline"] = page.form.get("submission_deadline", "")
    return values


async def _form_page(
    page: Page,
    *,
    campaign_id: str,
    challenge: ChallengeOut | None,
    values: dict[str, Any],
    errors: dict[str, str],
    status: int = 200,
) -> HTTPResponse:
    campaign = await curation.get_campaign(campaign_id)
    shortlist = await curation.shortlist(campaign_id=campaign_id)
    choices = {i.pain_point.id: i.pain_point.title for i in shortlist.items}
    for item in await _valid_items(campaign_id):
        choices.setdefault(item.public_id, item.title)
    rubric = list(values.get("rubric") or [])
    rubric += [{}] * (RUBRIC_ROWS - len(rubric))
    data = list(values.get("open_data") or [])
    data += [{}] * (DATA_ROWS - len(data))
    return page.render(
        "challenges/form.html",
        status=status,
        campaign=campaign,
        challenge=challenge,
        values=values,
        errors=errors,
        choices=choices,
        rubric=rubric,
        open_data=data,
    )


@bp.get("/new")
@page(read=CURATORS, write=CURATORS)
async def new(request: Request, page: Page) -> HTTPResponse:
    campaign_id = request.args.get("campaign", "")
    chosen = request.args.getlist("pain_point") or []
    values = {
        "pain_point_ids": chosen,
        "rubric": [
            {"criterion": "可行性", "weight": 40, "description": ""},
            {"criterion": "创新性", "weight": 30, "description": ""},
            {"criterion": "成本", "weight": 30, "description": ""},
        ],
    }
    return await _form_page(page, campaign_id=campaign_id, challenge=None, values=values, errors={})


@bp.post("/new")
@page(read=CURATORS, write=CURATORS)
async def create(request: Request, page: Page) -> HTTPResponse:
    campaign_id = page.form.get("campaign", "")
    body, errors = build(ChallengeIn, _form_data(page))
    if body is not None:
        try:
            created = await curation.create_challenge(
                ctx=page.ctx, actor=page.user, campaign_id=campaign_id, data=body
            )
        except ValidationFailed as exc:
            errors = dict(exc.fields) or {"title": exc.message}
        else:
            return await page.redirect(
                f"/console/challenges/{created.public_id}",
                flash=f"已创建挑战草稿「{created.title}」",
            )
    return await _form_page(
        page,
        campaign_id=campaign_id,
        challenge=None,
        values=_posted_values(page),
        errors=errors,
        status=400,
    )


@bp.get("/<challenge_id:str>")
@page(read=CURATORS, write=CURATORS)
async def show(request: Request, page: Page, challenge_id: str) -> HTTPResponse:
    row = await curation.get_challenge(challenge_id, viewer=page.user)
    challenge = await challenge_out(row, now=page.ctx.clock.now())
    return await _form_page(
        page,
        campaign_id=challenge.campaign_id,
        challenge=challenge,
        values=_values_from(challenge),
        errors={},
    )


@bp.post("/<challenge_id:str>")
@page(read=CURATORS, write=CURATORS)
async def update(request: Request, page: Page, challenge_id: str) -> HTTPResponse:
    row = await curation.get_challenge(challenge_id, viewer=page.user)
    body, errors = build(ChallengePatch, _form_data(page))
    if body is not None:
        try:
            await curation.update_challenge(
                ctx=page.ctx, actor=page.user, public_id=challenge_id, data=body
            )
        except ValidationFailed as exc:
            errors = dict(exc.fields) or {"title": exc.message}
        else:
            return await page.redirect(f"/console/challenges/{challenge_id}", flash="已保存")
    challenge = await challenge_out(row, now=page.ctx.clock.now())
    return await _form_page(
        page,
        campaign_id=challenge.campaign_id,
        challenge=challenge,
        values=_posted_values(page),
        errors=errors,
        status=400,
    )


@bp.post("/<challenge_id:str>/review")
@page(read=CURATORS, write=CURATORS)
async def review(request: Request, page: Page, challenge_id: str) -> HTTPResponse:
    await curation.submit_for_review(ctx=page.ctx, actor=page.user, public_id=challenge_id)
    return await page.redirect(
        f"/console/challenges/{challenge_id}", flash="已提交审核，等待数据资源局发布"
    )


@bp.post("/<challenge_id:str>/publish")
@page(read=ADMIN, write=ADMIN)
async def publish(request: Request, page: Page, challenge_id: str) -> HTTPResponse:
    challenge = await curation.publish(ctx=page.ctx, actor=page.user, public_id=challenge_id)
    return await page.redirect(
        f"/console/challenges/{challenge_id}", flash=f"已发布，编号 {challenge.number}"
    )


@bp.post("/<challenge_id:str>/return")
@page(read=ADMIN, write=ADMIN)
async def send_back(request: Request, page: Page, challenge_id: str) -> HTTPResponse:
    await curation.return_to_draft(
        ctx=page.ctx, actor=page.user, public_id=challenge_id, note=page.form.get("note", "")[:500]
    )
    return await page.redirect(f"/console/challenges/{challenge_id}", flash="已退回草稿")


STATUS_ORDER = (ChallengeStatus.DRAFT, ChallengeStatus.IN_REVIEW, ChallengeStatus.PUBLISHED)
