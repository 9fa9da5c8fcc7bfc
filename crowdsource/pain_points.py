"""Pain points: submitted while a campaign collects, edited by their author, listed by live votes.

Who sees which item is :mod:`crowdsource.visibility` (the campaign's moderation policy); who
speaks as which audience is :mod:`crowdsource.voices`. Also the live counts of a campaign (from
the key-value store, or the database when it is unreachable).
"""

from __future__ import annotations

import logging
from typing import Any

from tortoise.expressions import F, Q

from backend import geo, paging
from backend.access import Principal
from backend.context import AppContext
from backend.errors import Conflict, Forbidden, NotFound, Unprocessable, ValidationFailed
from backend.models import User
from backend.uow import unit_of_work
from crowdsource import counters
from crowdsource.campaigns import get_campaign_or_raise, is_manager, parse_time
from crowdsource.models import Audience, Campaign, Merge, PainPoint, Participant, Phase, Status
from crowdsource.phases import require_phase
from crowdsource.presenters import attach_links, pain_point_out
from crowdsource.schemas import (
    LocationIn,
    PainPointCreate,
    PainPointList,
    PainPointUpdate,
    SimilarItem,
    SimilarList,
)
from crowdsource.similarity import backend_for
from crowdsource.visibility import is_public, listed_q
from crowdsource.voices import submitter_voice

log = logging.getLogger("smartcircle.crowdsource")


# -- who submits and votes as whom ------------------------------------------------------


async def user_pk(principal: Principal) -> int:
    """The database id of the signed-in person (403 if the account was disabled)."""
    found = (
        await User.filter(public_id=principal.user_id, is_active=True)
        .limit(1)
        .values_list("id", flat=True)
    )
    if not found:
        raise Forbidden("账号不可用", code="account_disabled")
    return int(str(found[0]))


def check_category(campaign: Campaign, category: str) -> None:
    """400 naming ``category`` unless it is one of the campaign's."""
    if category not in {c["code"] for c in campaign.categories}:
        raise ValidationFailed(fields={"category": "不是本活动的分类"})


def _wgs84(location: LocationIn | None) -> tuple[float | None, float | None]:
    if location is None:
        return None, None
    point = geo.to_wgs84(location.lat, location.lng, location.coord)
    return point.lat, point.lng


# -- links and live counts --------------------------------------------------------------


async def with_links(items: list[PainPoint]) -> None:
    """Attach the public ids of each item's duplicate target and merges, for the response."""
    ids = [i.id for i in items]
    merges = (
        await Merge.filter(Q(source_id__in=ids) | Q(target_id__in=ids))
        .order_by("id")
        .values_list("source_id", "target_id")
    )
    wanted = {i.duplicate_of_id for i in items if i.duplicate_of_id}
    wanted |= {pk for pair in merges for pk in pair}
    names: dict[Any, str] = {}
    if wanted:
        rows = await PainPoint.filter(id__in=wanted).values_list("id", "public_id")
        names = {pk: str(public_id) for pk, public_id in rows}  # type: ignore[misc]
    for item in items:
        links: dict[str, Any] = {"merged": []}
        target = item.duplicate_of_id
        if target:
            links["duplicate_of"] = names.get(target)
        for source, into in merges:
            if source == item.id:
                links["merged_into"] = names.get(into)
            if into == item.id:
                links["merged"].append(names.get(source))
        attach_links(item, links)


async def live_counts(*, ctx: AppContext, item: PainPoint, campaign: Campaign) -> dict[str, int]:
    """The live counts of one pain point (from the database if the store is unreachable)."""
    try:
        await counters.ensure_built(ctx=ctx, campaign=campaign)
        return await counters.read_one(ctx=ctx, campaign=campaign, pain_point=item.public_id)
    except counters.KV_ERRORS:
        log.warning("vote counters unreachable, counting in the database")
        return await counters.database_one(pain_point_pk=item.id)


async def campaign_counts(*, ctx: AppContext, campaign: Campaign) -> counters.Counts:
    """The live counts of every pain point of the campaign (the database's if unreachable)."""
    try:
        await counters.ensure_built(ctx=ctx, campaign=campaign)
        return await counters.read_all(ctx=ctx, campaign=campaign)
    except counters.KV_ERRORS:
        log.warning("vote counters unreachable, counting in the database")
        return await counters.database_counts(campaign=campaign)


# -- submissions and edits --------------------------------------------------------------


async def submit_pain_point(
    *, ctx: AppContext, principal: Principal, campaign_id: str, data: PainPointCreate
) -> tuple[PainPoint, Campaign]:
    """Submit a pain point while the campaign collects, within the per-person cap."""
    now = ctx.clock.now()
    campaign = await get_campaign_or_raise(campaign_id, principal=principal, now=now)
    require_phase(campaign, now, Phase.COLLECTING, "征集")
    check_category(campaign, data.category)
    audience, company_name = await submitter_voice(
        principal, campaign, data.audience, data.company_name
    )
    author_pk = await user_pk(principal)
    lat, lng = _wgs84(data.location)
    async with unit_of_work():
        await Participant.bulk_create(
            [Participant(campaign_id=campaign.id, user_id=author_pk)], ignore_conflicts=True
        )
        # One conditional UPDATE is the cap check: it cannot be passed twice concurrently.
        within_cap = await Participant.filter(
            campaign_id=campaign.id, user_id=author_pk, submissions__lt=campaign.submission_cap
        ).update(submissions=F("submissions") + 1)
        if not within_cap:
            raise Unprocessable(
                f"每人在本活动最多提交 {campaign.submission_cap} 条",
                code="submission_cap_reached",
            )
        item = await PainPoint.create(
            campaign_id=campaign.id,
            author_id=author_pk,
            audience=audience,
            company_name=company_name,
            department_name=data.department_name if audience is Audience.DEPARTMENT else None,
            title=data.title,
            description=data.description,
            category=data.category,
            lat=lat,
            lng=lng,
            district=data.district,
            photo_urls=[str(u) for u in data.photo_urls],
            created_at=now,
            updated_at=now,
        )
    return item, campaign


async def get_pain_point_or_raise(
    public_id: str, *, principal: Principal | None = None
) -> PainPoint:
    """The pain point with its campaign, or 404 (one not public: its author and curators only)."""
    item = await PainPoint.get_or_none(public_id=public_id).select_related("campaign")
    if item is None:
        raise NotFound("痛点不存在", code="pain_point_not_found")
    restricted = not is_public(item, item.campaign)
    if restricted and not is_manager(principal) and not await _is_author(item, principal):
        raise NotFound("痛点不存在", code="pain_point_not_found")
    await with_links([item])
    return item


async def _is_author(item: PainPoint, principal: Principal | None) -> bool:
    if principal is None:
        return False
    return await User.filter(id=item.author_id, public_id=principal.user_id).exists()


async def edit_pain_point(
    *, ctx: AppContext, principal: Principal, public_id: str, data: PainPointUpdate
) -> PainPoint:
    """The author edits a pain point until it is moderated."""
    item = await get_pain_point_or_raise(public_id, principal=principal)
    if not await _is_author(item, principal):
        raise Forbidden("只有提交者可以修改", code="not_author")
    given = data.model_dump(exclude_unset=True)
    nulls = [k for k, v in given.items() if v is None and k not in ("location", "district")]
    if nulls:
        raise ValidationFailed(fields={k: "不能为空" for k in nulls})
    changes: dict[str, Any] = {k: v for k, v in given.items() if k != "location"}
    if "category" in changes:
        check_category(item.campaign, changes["category"])
    if "photo_urls" in changes:
        changes["photo_urls"] = [str(u) for u in data.photo_urls or []]
    if "location" in given:
        changes["lat"], changes["lng"] = _wgs84(data.location)
    updated = await PainPoint.filter(id=item.id, status=Status.SUBMITTED).update(
        **changes, updated_at=ctx.clock.now()
    )
    if not updated:
        raise Conflict("痛点已审核，不能再修改", code="already_moderated")
    return await get_pain_point_or_raise(public_id, principal=principal)


# -- lists ------------------------------------------------------------------------------


async def list_pain_points(
    *,
    ctx: AppContext,
    principal: Principal | None,
    campaign_id: str,
    sort: str,
    category: str | None,
    coord: geo.CoordSystem,
    limit: int,
    cursor: str | None,
) -> PainPointList:
    """Listed pain points by live votes or newest first, with per-audience counts."""
    now = ctx.clock.now()
    campaign = await get_campaign_or_raise(campaign_id, principal=principal, now=now)
    query = paging.scope_of("pain-points", campaign.public_id, sort, category)
    secret = ctx.settings.cursor_key
    qs = PainPoint.filter(listed_q(campaign), campaign_id=campaign.id)
    if category:
        qs = qs.filter(category=category)
    counts = await campaign_counts(ctx=ctx, campaign=campaign)
    if sort == "votes":
        listed = [str(pid) for pid in await qs.values_list("public_id", flat=True)]
        keys: list[tuple[int, str]] = sorted(
            ((counts.get(pid, {}).get("total", 0), pid) for pid in listed), reverse=True
        )
        if cursor:
            votes, pid = paging.decode_cursor(cursor, scope=query, secret=secret, shape=(int, str))
            keys = [k for k in keys if k < (votes, pid)]
        page_keys = keys[: limit + 1]
        by_id = {
            i.public_id: i
            for i in await PainPoint.filter(public_id__in=[k[1] for k in page_keys[:limit]])
        }
        page = [by_id[k[1]] for k in page_keys if k[1] in by_id][:limit]
        more = len(page_keys) > limit
        next_key: list[Any] | None = list(page_keys[limit - 1]) if more else None
    else:
        if cursor:
            at, pid = paging.decode_cursor(cursor, scope=query, secret=secret, shape=(str, str))
            moment = parse_time(at)
            qs = qs.filter(Q(created_at__lt=moment) | Q(created_at=moment, public_id__lt=pid))
        rows = await qs.order_by("-created_at", "-public_id").limit(limit + 1)
        more = len(rows) > limit
        page = rows[:limit]
        next_key = [page[-1].created_at.isoformat(), page[-1].public_id] if more else None
    await with_links(page)
    return PainPointList(
        items=[pain_point_out(i, campaign, counts.get(i.public_id), coord) for i in page],
        next_cursor=paging.encode_cursor(next_key, scope=query, secret=secret)
        if next_key
        else None,
    )


async def list_my_pain_points(
    *,
    ctx: AppContext,
    principal: Principal,
    campaign_id: str | None,
    limit: int,
    cursor: str | None,
) -> PainPointList:
    """The signed-in person's own submissions in any status, newest first, each saying whether
    the public can see it yet."""
    author_pk = await user_pk(principal)
    query = paging.scope_of("my-pain-points", principal.user_id, campaign_id)
    secret = ctx.settings.cursor_key
    qs = PainPoint.filter(author_id=author_pk)
    if campaign_id:
        campaign = await get_campaign_or_raise(
            campaign_id, principal=principal, now=ctx.clock.now()
        )
        qs = qs.filter(campaign_id=campaign.id)
    if cursor:
        at, pid = paging.decode_cursor(cursor, scope=query, secret=secret, shape=(str, str))
        moment = parse_time(at)
        qs = qs.filter(Q(created_at__lt=moment) | Q(created_at=moment, public_id__lt=pid))
    rows = (
        await qs.order_by("-created_at", "-public_id").limit(limit + 1).select_related("campaign")
    )
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = paging.encode_cursor(
            [last.created_at.isoformat(), last.public_id], scope=query, secret=secret
        )
    counts = await counters.database_by_pk([i.id for i in page])
    await with_links(page)
    return PainPointList(
        items=[pain_point_out(i, i.campaign, counts[i.id]) for i in page],
        next_cursor=next_cursor,
    )


async def similar_pain_points(
    *, ctx: AppContext, principal: Principal | None, campaign_id: str, text: str, limit: int
) -> SimilarList:
    """Existing pain points similar to a draft text, best first."""
    campaign = await get_campaign_or_raise(campaign_id, principal=principal, now=ctx.clock.now())
    backend = backend_for(ctx)
    matches = await backend.similar(campaign=campaign, text=text, limit=limit)
    return SimilarList(
        items=[
            SimilarItem(
                id=m.public_id, title=m.title, category=m.category, status=m.status, score=m.score
            )
            for m in matches
        ],
        method=backend.name,
    )
