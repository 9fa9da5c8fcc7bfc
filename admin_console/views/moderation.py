"""The moderation queue: valid / invalid / duplicate with one key each, reports, hidden items,
duplicate suggestions side by side and merging — through the API's own service functions."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from admin_console.pages import CURATORS, Page, error_page, page
from admin_console.views.common import campaign_choice
from backend.errors import ValidationFailed
from crowdsource import merging, moderation, pain_points
from crowdsource.models import PainPoint, Report, Status
from crowdsource.presenters import pain_point_out
from crowdsource.schemas import MergeIn, ModerationIn, PainPointOut

bp = Blueprint("console_moderation", url_prefix="/console/moderation")

SUGGESTIONS = 4


async def _suggestions(page: Page, item: PainPointOut) -> list[dict[str, Any]]:
    """Similar listed pain points of the same campaign, with their text for side-by-side."""
    similar = await pain_points.similar_pain_points(
        ctx=page.ctx,
        principal=page.user,
        campaign_id=item.campaign_id,
        text=f"{item.title} {item.description}"[:2000],
        limit=SUGGESTIONS + 1,
    )
    ids = [
        s.id
        for s in similar.items
        if s.id != item.id and s.status in (Status.SUBMITTED, Status.VALID)
    ]
    rows = {p.public_id: p for p in await PainPoint.filter(public_id__in=ids)}
    return [
        {
            "id": s.id,
            "title": s.title,
            "score": s.score,
            "status": s.status.value,
            "description": rows[s.id].description if s.id in rows else "",
        }
        for s in similar.items
        if s.id in rows
    ][:SUGGESTIONS]


async def _reports(item_ids: list[str]) -> dict[str, list[str]]:
    rows = await Report.filter(pain_point__public_id__in=item_ids).values_list(
        "pain_point__public_id", "reason"
    )
    found: dict[str, list[str]] = {}
    for pid, reason in rows:
        found.setdefault(str(pid), []).append(str(reason or "（未说明）"))
    return found


@bp.get("/")
@page(read=CURATORS, write=CURATORS)
async def queue(request: Request, page: Page) -> HTTPResponse:
    choices, campaign = await campaign_choice(page)
    status = request.args.get("status") or None
    if status not in (None, "submitted", "hidden"):
        status = None
    items: list[dict[str, Any]] = []
    if campaign is not None:
        listing = await moderation.moderation_queue(
            ctx=page.ctx,
            principal=page.user,
            campaign_id=campaign.id,
            status=status,
            limit=20,
            cursor=None,
        )
        reports = await _reports([i.id for i in listing.items])
        for item in listing.items:
            items.append(
                {
                    "item": item,
                    "suggestions": await _suggestions(page, item),
                    "reports": reports.get(item.id, []),
                }
            )
    return page.render(
        "moderation/queue.html",
        campaigns=choices,
        campaign=campaign,
        items=items,
        scope=status or "",
    )


@bp.post("/<pain_point_id:str>")
@page(read=CURATORS, write=CURATORS)
async def decide(request: Request, page: Page, pain_point_id: str) -> HTTPResponse:
    """One decision on one item: valid, invalid (with a reason), duplicate of, or merge into."""
    form = page.form
    decision = form.get("decision", "")
    target = form.get("target") or None
    reason = form.get("reason", "")
    try:
        if decision == "merge":
            if not target:
                raise ValidationFailed("请选择要合并到的痛点", fields={"target": "请选择"})
            result = await merging.merge_pain_points(
                ctx=page.ctx,
                actor=page.user,
                target_id=target,
                data=MergeIn(source=pain_point_id, reason=reason or "控制台合并重复项"),
            )
            done = f"已合并到「{result.title}」"
        else:
            data = (
                ModerationIn(
                    decision=decision,  # type: ignore[arg-type]  # validated below by pydantic
                    reason=reason,
                    duplicate_of=target if decision == "duplicate" else None,
                )
                if decision in ("valid", "invalid", "duplicate")
                else None
            )
            if data is None:
                raise ValidationFailed(fields={"decision": "未知的操作"})
            await moderation.moderate(
                ctx=page.ctx, actor=page.user, public_id=pain_point_id, data=data
            )
            done = {"valid": "已判定有效", "invalid": "已判定无效", "duplicate": "已判定为重复"}[
                decision
            ]
    except ValidationFailed as exc:
        return error_page(page, 400, exc.message, exc.fields)
    row = await pain_points.get_pain_point_or_raise(pain_point_id, principal=page.user)
    item = pain_point_out(row, row.campaign, None)
    if page.htmx:
        return page.render("moderation/_done.html", item=item, done=done)
    return await page.redirect(
        f"/console/moderation?campaign={item.campaign_id}", flash=f"{item.title}：{done}"
    )
