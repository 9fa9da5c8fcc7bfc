"""Campaigns: created and edited by curators and the bureau, listed by their computed phase.

Rules live here, as keyword-only async functions; phases in :mod:`crowdsource.phases`, responses in
:mod:`crowdsource.presenters`.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.expressions import Q

from backend import paging
from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict, NotFound, ValidationFailed
from backend.models import Role
from backend.uow import unit_of_work
from crowdsource import counters
from crowdsource.models import Audience, Campaign, PainPoint, Phase
from crowdsource.phases import SCHEDULE, check_schedule, phases_at, sync_phase
from crowdsource.presenters import campaign_out
from crowdsource.schemas import (
    DEFAULT_CATEGORIES,
    CampaignCreate,
    CampaignList,
    CampaignUpdate,
)

MANAGERS = frozenset({Role.CURATOR, Role.BUREAU_ADMIN})


def is_manager(principal: Principal | None) -> bool:
    """Curators and the bureau manage campaigns (and see drafts and hidden items)."""
    return principal is not None and principal.role in MANAGERS


def parse_time(value: str) -> datetime:
    """A moment read back from a paging cursor (400 if it was tampered with)."""
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed("分页游标无效", fields={"cursor": "游标无效或已被篡改"}) from None


async def get_campaign_or_raise(
    public_id: str, *, principal: Principal | None = None, now: datetime | None = None
) -> Campaign:
    """The campaign, or 404 (drafts are visible to curators and the bureau only)."""
    campaign = await Campaign.get_or_none(public_id=public_id)
    hidden_draft = (
        campaign is not None
        and now is not None
        and phases_at(campaign, now) == [Phase.DRAFT]
        and not is_manager(principal)
    )
    if campaign is None or hidden_draft:
        raise NotFound("征集活动不存在", code="campaign_not_found")
    return campaign


async def create_campaign(*, ctx: AppContext, actor: Principal, data: CampaignCreate) -> Campaign:
    """Create a campaign, audited, and record its first phase."""
    check_schedule({name: getattr(data, name) for name in SCHEDULE})
    categories = (
        [c.model_dump() for c in data.categories]
        if data.categories
        else [{"code": code, "label": label} for code, label in DEFAULT_CATEGORIES]
    )
    now = ctx.clock.now()
    fields = data.model_dump(exclude={"categories", "audiences"})
    async with unit_of_work() as uow:
        campaign = await Campaign.create(
            **fields,
            categories=categories,
            audiences=[a.value for a in data.audiences],
            created_by=actor.user_id,
            created_at=now,
            updated_at=now,
        )
        await record(
            ctx=ctx, actor=actor, action="campaign.create", obj=("campaign", campaign.public_id)
        )

        async def nothing_to_count() -> None:
            await ctx.kv.set(counters.built_key(campaign), "1")

        uow.after_commit(nothing_to_count)
        await sync_phase(ctx=ctx, campaign=campaign, actor=actor)
    return campaign


async def update_campaign(
    *, ctx: AppContext, actor: Principal, public_id: str, data: CampaignUpdate
) -> Campaign:
    """Edit a campaign that has not closed, audited with the fields changed."""
    now = ctx.clock.now()
    campaign = await get_campaign_or_raise(public_id)
    if phases_at(campaign, now) == [Phase.CLOSED]:
        raise Conflict("活动已关闭，不能修改", code="campaign_closed")
    given = data.model_dump(exclude_unset=True)
    nulls = [k for k, v in given.items() if v is None and k != "vote_budget"]
    if nulls:
        raise ValidationFailed(fields={k: "不能为空" for k in nulls})
    if any(k in given for k in SCHEDULE):
        check_schedule({k: given.get(k, getattr(campaign, k)) for k in SCHEDULE})
    if "categories" in given:
        codes = {c["code"] for c in given["categories"]}
        used = set(
            await PainPoint.filter(campaign_id=campaign.id)
            .distinct()
            .values_list("category", flat=True)
        )
        missing = sorted(str(c) for c in used - codes)
        if missing:
            raise Conflict(
                "已有痛点使用的分类不能删除",
                code="category_in_use",
                fields={"categories": ",".join(missing)},
            )
    if "audiences" in given:
        given["audiences"] = [Audience(a).value for a in given["audiences"]]
    async with unit_of_work():
        await Campaign.filter(id=campaign.id).update(**given, updated_at=now)
        await record(
            ctx=ctx,
            actor=actor,
            action="campaign.update",
            obj=("campaign", campaign.public_id),
            detail={"fields": sorted(given)},
        )
        campaign = await Campaign.get(id=campaign.id)
        await sync_phase(ctx=ctx, campaign=campaign, actor=actor)
    return campaign


async def list_campaigns(
    *,
    ctx: AppContext,
    principal: Principal | None,
    phase: Phase | None,
    limit: int,
    cursor: str | None,
) -> CampaignList:
    """Campaigns, newest collecting start first (drafts only for curators and the bureau)."""
    now = ctx.clock.now()
    query = paging.scope_of("campaigns", phase, is_manager(principal))
    secret = ctx.settings.cursor_key
    qs = Campaign.all()
    if not is_manager(principal):
        qs = qs.filter(collecting_starts_at__lte=now)
    if cursor:
        start, pid = paging.decode_cursor(cursor, scope=query, secret=secret, shape=(str, str))
        at = parse_time(start)
        qs = qs.filter(
            Q(collecting_starts_at__lt=at) | Q(collecting_starts_at=at, public_id__lt=pid)
        )
    qs = qs.order_by("-collecting_starts_at", "-public_id")
    items: list[Campaign] = []
    next_cursor = None
    # Filtering by the computed phase happens here: scan in batches until the page is full.
    batch_size = max(limit * 2, 50)
    offset = 0
    while True:
        batch = await qs.offset(offset).limit(batch_size)
        for campaign in batch:
            if phase is None or phase in phases_at(campaign, now):
                items.append(campaign)
                if len(items) > limit:
                    break
        if len(items) > limit or len(batch) < batch_size:
            break
        offset += batch_size
    if len(items) > limit:
        items = items[:limit]
        last = items[-1]
        next_cursor = paging.encode_cursor(
            [last.collecting_starts_at.isoformat(), last.public_id], scope=query, secret=secret
        )
    return CampaignList(items=[campaign_out(c, now) for c in items], next_cursor=next_cursor)
