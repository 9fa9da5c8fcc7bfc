"""Campaigns: list, create, edit phases and dates, audiences, categories and moderation
policy; the phase timeline."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from admin_console.forms import build, local_moment, number, without_none
from admin_console.pages import CURATORS, Page, page
from backend.errors import Conflict, ValidationFailed
from crowdsource import campaigns
from crowdsource.models import Audience, ModerationPolicy
from crowdsource.presenters import campaign_out
from crowdsource.schemas import (
    DEFAULT_CATEGORIES,
    CampaignCreate,
    CampaignOut,
    CampaignUpdate,
    Category,
)

bp = Blueprint("console_campaigns", url_prefix="/console/campaigns")

SCHEDULE = (
    ("collecting_starts_at", "征集开始"),
    ("collecting_ends_at", "征集结束"),
    ("voting_starts_at", "投票开始"),
    ("voting_ends_at", "投票结束"),
    ("closes_at", "遴选结束、活动关闭"),
)
LIMITS = (
    ("submission_cap", "每人最多提交条数"),
    ("report_threshold", "被举报多少次后隐藏待审"),
    ("vote_budget", "每人票数上限（空为不限）"),
)
MODERATION = (
    (ModerationPolicy.PRE, "先审后发：审核有效后才公开、才能投票"),
    (ModerationPolicy.POST, "先发后审：提交即公开，判定无效后撤下"),
)
AUDIENCES = (
    (Audience.RESIDENT, "居民"),
    (Audience.ENTERPRISE, "企业"),
    (Audience.DEPARTMENT, "政府部门"),
)


def timeline(campaign: CampaignOut) -> list[dict[str, Any]]:
    """The phases in order with their dates, the open ones marked."""
    opened = {p.value for p in campaign.phases_open}
    c = campaign
    steps = [
        ("draft", "筹备", f"至 {c.collecting_starts_at:%Y-%m-%d %H:%M}"),
        ("collecting", "征集", f"{c.collecting_starts_at:%m-%d} 至 {c.collecting_ends_at:%m-%d}"),
        ("voting", "投票", f"{c.voting_starts_at:%m-%d} 至 {c.voting_ends_at:%m-%d}"),
        ("curating", "遴选", f"{c.voting_ends_at:%m-%d} 至 {c.closes_at:%m-%d}"),
        ("closed", "结束", f"{c.closes_at:%Y-%m-%d %H:%M} 起"),
    ]
    return [
        {"phase": phase, "label": label, "when": when, "current": phase in opened}
        for phase, label, when in steps
    ]


def _categories(text: str) -> list[dict[str, str]] | None:
    """One category per line, code then label ("parking 停车"); none: defaults / unchanged."""
    rows = []
    for line in text.splitlines():
        parts = line.split(maxsplit=1)  # any whitespace, the full-width space too
        if parts:
            rows.append({"code": parts[0], "label": parts[1] if len(parts) > 1 else ""})
    return rows or None


def categories_text(categories: list[Any]) -> str:
    return "\n".join(f"{c.code} {c.label}" for c in categories)


def _field_errors(errors: dict[str, str]) -> dict[str, str]:
    """A category's error ("categories.2.label") shown under the field, with its line."""
    found = dict(errors)
    for key in [k for k in errors if k.startswith("categories.")]:
        where = key.split(".")
        line = f"第 {int(where[1]) + 1} 行：" if len(where) > 1 and where[1].isdigit() else ""
        found.setdefault("categories", line + found.pop(key))
    return found


def _form_data(page: Page) -> dict[str, Any]:
    form = page.form
    data: dict[str, Any] = {
        "title": form.get("title", ""),
        "description": form.get("description", ""),
        "audiences": page.form_list("audiences"),
        "moderation": form.get("moderation") or None,
        "categories": _categories(form.get("categories", "")),
    }
    for name, _label in SCHEDULE:
        data[name] = local_moment(form.get(name, ""))
    for name, _label in LIMITS:
        data[name] = number(form.get(name, ""))
    return data


def _values(page: Page) -> dict[str, Any]:
    """What the user typed, to show again next to the errors."""
    values: dict[str, Any] = dict(page.form)
    values["audiences"] = page.form_list("audiences")
    return values


@bp.get("/")
@page(read=CURATORS)
async def index(request: Request, page: Page) -> HTTPResponse:
    listing = await campaigns.list_campaigns(
        ctx=page.ctx, principal=page.user, phase=None, limit=100, cursor=None
    )
    return page.render("campaigns/index.html", campaigns=listing.items)


@bp.get("/new")
@page(read=CURATORS, write=CURATORS)
async def new(request: Request, page: Page) -> HTTPResponse:
    values = {
        "audiences": [a.value for a, _ in AUDIENCES],
        "submission_cap": 5,
        "report_threshold": 5,
        "moderation": ModerationPolicy.PRE.value,
        "categories": categories_text([Category(code=c, label=n) for c, n in DEFAULT_CATEGORIES]),
    }
    return page.render("campaigns/form.html", values=values, errors={}, campaign=None, **_choices())


def _choices() -> dict[str, Any]:
    return {
        "schedule": SCHEDULE,
        "limits": LIMITS,
        "audience_choices": AUDIENCES,
        "moderation_choices": MODERATION,
    }


@bp.post("/")
@page(read=CURATORS, write=CURATORS)
async def create(request: Request, page: Page) -> HTTPResponse:
    data = without_none(_form_data(page))
    if data.get("vote_budget") is None:
        data.pop("vote_budget", None)
    body, errors = build(CampaignCreate, data)
    errors = _field_errors(errors)
    if body is not None:
        try:
            created = await campaigns.create_campaign(ctx=page.ctx, actor=page.user, data=body)
        except ValidationFailed as exc:
            errors = _field_errors(dict(exc.fields)) or {"title": exc.message}
        else:
            return await page.redirect(
                f"/console/campaigns/{created.public_id}",
                flash=f"已创建征集活动「{created.title}」",
            )
    return page.render(
        "campaigns/form.html",
        status=400,
        values=_values(page),
        errors=errors,
        campaign=None,
        **_choices(),
    )


@bp.get("/<campaign_id:str>")
@page(read=CURATORS, write=CURATORS)
async def show(request: Request, page: Page, campaign_id: str) -> HTTPResponse:
    now = page.ctx.clock.now()
    row = await campaigns.get_campaign_or_raise(campaign_id, principal=page.user, now=now)
    campaign = campaign_out(row, now)
    values = campaign.model_dump()
    values["audiences"] = [a.value for a in campaign.audiences]
    values["moderation"] = campaign.moderation.value
    values["categories"] = categories_text(campaign.categories)
    return page.render(
        "campaigns/form.html",
        campaign=campaign,
        steps=timeline(campaign),
        values=values,
        errors={},
        **_choices(),
    )


@bp.post("/<campaign_id:str>")
@page(read=CURATORS, write=CURATORS)
async def update(request: Request, page: Page, campaign_id: str) -> HTTPResponse:
    now = page.ctx.clock.now()
    row = await campaigns.get_campaign_or_raise(campaign_id, principal=page.user, now=now)
    data = _form_data(page)
    if data.get("vote_budget") is None:
        data["vote_budget"] = None  # empty field: no budget
    body, errors = build(
        CampaignUpdate, {k: v for k, v in data.items() if v is not None or k == "vote_budget"}
    )
    errors = _field_errors(errors)
    if body is not None:
        try:
            await campaigns.update_campaign(
                ctx=page.ctx, actor=page.user, public_id=campaign_id, data=body
            )
        except ValidationFailed as exc:
            errors = _field_errors(dict(exc.fields)) or {"title": exc.message}
        except Conflict as exc:  # a category still used by pain points: named under the field
            errors = {k: f"{exc.message}：{v}" for k, v in exc.fields.items()}
            if not errors:
                raise
        else:
            return await page.redirect(f"/console/campaigns/{campaign_id}", flash="已保存")
    campaign = campaign_out(row, now)
    return page.render(
        "campaigns/form.html",
        status=400,
        campaign=campaign,
        steps=timeline(campaign),
        values=_values(page),
        errors=errors,
        **_choices(),
    )
