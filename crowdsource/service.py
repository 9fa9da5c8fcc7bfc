"""Pain-point campaigns: phases, submissions, moderation, reports and one-person-one-vote.

Rules live here, as keyword-only async functions. The phase of a campaign is always computed
from its schedule and the clock (:func:`phases_at`), so a rule is exact at a boundary even if the
phase job has not run yet. The job (:func:`sync_phase`) records each transition once, audited.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q, Subquery
from tortoise.functions import Count
from tortoise.transactions import in_transaction

from backend import geo, paging
from backend.access import AppContext, Principal
from backend.audit import record
from backend.clock import to_local
from backend.errors import (
    AppError,
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    Unprocessable,
    ValidationFailed,
)
from backend.models import Role, User
from crowdsource import counters, integrity
from crowdsource.models import (
    Audience,
    Campaign,
    Merge,
    PainPoint,
    Participant,
    Phase,
    Report,
    Status,
    Vote,
)
from crowdsource.schemas import (
    DEFAULT_CATEGORIES,
    CampaignCreate,
    CampaignList,
    CampaignOut,
    CampaignUpdate,
    Category,
    Location,
    LocationIn,
    MergeIn,
    ModerationIn,
    PainPointCreate,
    PainPointList,
    PainPointOut,
    PainPointUpdate,
    ReportOut,
    SimilarItem,
    SimilarList,
    VoteCounts,
    VoteOut,
)
from crowdsource.similarity import backend_for

log = logging.getLogger("smartcircle.crowdsource")

MANAGERS = frozenset({Role.CURATOR, Role.BUREAU_ADMIN})
DEPARTMENT_ROLES = frozenset({Role.STREET_WORKER, Role.CURATOR, Role.BUREAU_ADMIN, Role.JUDGE})
ENTERPRISE_ROLES = frozenset({Role.VENDOR, Role.VENUE_OPERATOR})
LISTED = (Status.SUBMITTED, Status.VALID)
SCHEDULE = (
    "collecting_starts_at",
    "collecting_ends_at",
    "voting_starts_at",
    "voting_ends_at",
    "closes_at",
)
REPORTS_PER_HOUR = 30
ORDER = {p: i for i, p in enumerate(Phase)}


# -- phases -----------------------------------------------------------------------------


def phases_at(campaign: Campaign, now: datetime) -> list[Phase]:
    """The phases in effect at ``now``, in order (collecting and voting may overlap)."""
    if now >= campaign.closes_at:
        return [Phase.CLOSED]
    opened = []
    if campaign.collecting_starts_at <= now < campaign.collecting_ends_at:
        opened.append(Phase.COLLECTING)
    if campaign.voting_starts_at <= now < campaign.voting_ends_at:
        opened.append(Phase.VOTING)
    if now >= campaign.voting_ends_at:
        opened.append(Phase.CURATING)
    return opened or [Phase.DRAFT]


def main_phase(opened: list[Phase]) -> Phase:
    return max(opened, key=ORDER.__getitem__)


def _state(opened: list[Phase]) -> str:
    return "+".join(p.value for p in opened)


def check_schedule(values: dict[str, datetime]) -> None:
    """Refuse a schedule whose phases are out of order (400 naming the field)."""
    # (field named in the error, a, b, may be equal): a must not be before b.
    rules = (
        ("collecting_ends_at", "collecting_ends_at", "collecting_starts_at", False),
        ("voting_starts_at", "voting_starts_at", "collecting_starts_at", True),
        ("voting_starts_at", "collecting_ends_at", "voting_starts_at", True),
        ("voting_ends_at", "voting_ends_at", "voting_starts_at", False),
        ("voting_ends_at", "voting_ends_at", "collecting_ends_at", True),
        ("closes_at", "closes_at", "voting_ends_at", False),
    )
    messages = {
        "collecting_ends_at": "征集结束时间应晚于征集开始时间",
        "voting_starts_at": "投票应在征集开始之后、征集结束之前（或同时）开始",
        "voting_ends_at": "投票结束时间应晚于投票开始时间，且不早于征集结束时间",
        "closes_at": "关闭时间应晚于投票结束时间",
    }
    problems: dict[str, str] = {}
    for field, a, b, equal_ok in rules:
        if values[a] < values[b] or (values[a] == values[b] and not equal_ok):
            problems[field] = messages[field]
    if problems:
        raise ValidationFailed("活动日程不合理", fields=problems)


def _require_phase(campaign: Campaign, now: datetime, phase: Phase, what: str) -> None:
    opened = phases_at(campaign, now)
    if phase not in opened:
        raise Conflict(
            f"当前不在{what}阶段",
            code="phase_closed",
            fields={"phase": ",".join(p.value for p in opened)},
        )


async def sync_phase(
    *, ctx: AppContext, campaign: Campaign, actor: Principal | None = None
) -> bool:
    """Record the campaign's transition to its current phases once, audited; False if none."""
    opened = phases_at(campaign, ctx.clock.now())
    new_state, old_state = _state(opened), campaign.phase_state
    if new_state == old_state:
        return False
    now = ctx.clock.now()
    async with in_transaction():
        changed = await Campaign.filter(id=campaign.id, phase_state=old_state).update(
            phase_state=new_state, phase=main_phase(opened), phase_changed_at=now
        )
        if changed:
            await record(
                ctx=ctx,
                actor=actor,
                action="campaign.phase",
                obj=("campaign", campaign.public_id),
                detail={"from": old_state, "to": new_state},
            )
    if changed:
        campaign.phase_state, campaign.phase, campaign.phase_changed_at = (
            new_state,
            main_phase(opened),
            now,
        )
        log.info("campaign phase", extra={"campaign": campaign.public_id, "to": new_state})
    return bool(changed)


async def advance_phases(*, ctx: AppContext) -> int:
    """Record every due phase transition; the number of campaigns that moved."""
    moved = 0
    for campaign in await Campaign.exclude(phase=Phase.CLOSED).order_by("id"):
        moved += await sync_phase(ctx=ctx, campaign=campaign)
    return moved


async def reconcile_counters(*, ctx: AppContext) -> int:
    """Fold late votes on merged items, then rebuild the live counters from the database."""
    now = ctx.clock.now()
    fixed = 0
    campaigns = await Campaign.filter(voting_starts_at__lte=now).exclude(phase=Phase.CLOSED)
    for campaign in campaigns:
        await fold_leftover_votes(ctx=ctx, campaign=campaign)
        fixed += await counters.rebuild(ctx=ctx, campaign=campaign)
    if fixed:
        log.warning("vote counters reconciled", extra={"corrected": fixed})
    return fixed


async def recount_participants(*, campaign: Campaign) -> int:
    """Rebuild a campaign's per-person tallies from its rows (offline use: imports, demo data)."""
    tally: dict[int, list[int]] = {}
    authors = (
        await PainPoint.filter(campaign_id=campaign.id)
        .annotate(n=Count("id"))
        .group_by("author_id")
        .values("author_id", "n")
    )
    for row in authors:
        tally.setdefault(int(row["author_id"]), [0, 0])[0] = int(row["n"])
    voters = (
        await Vote.filter(campaign_id=campaign.id)
        .annotate(n=Count("id"))
        .group_by("user_id")
        .values("user_id", "n")
    )
    for row in voters:
        tally.setdefault(int(row["user_id"]), [0, 0])[1] = int(row["n"])
    async with in_transaction():
        await Participant.filter(campaign_id=campaign.id).delete()
        await Participant.bulk_create(
            [
                Participant(campaign_id=campaign.id, user_id=user, submissions=s, votes=v)
                for user, (s, v) in tally.items()
            ],
            batch_size=1000,
        )
    return len(tally)


# -- campaigns --------------------------------------------------------------------------


def campaign_out(campaign: Campaign, now: datetime) -> CampaignOut:
    opened = phases_at(campaign, now)
    return CampaignOut(
        id=campaign.public_id,
        title=campaign.title,
        description=campaign.description,
        categories=[Category(**c) for c in campaign.categories],
        audiences=[Audience(a) for a in campaign.audiences],
        phase=main_phase(opened),
        phases_open=opened,
        collecting_starts_at=to_local(campaign.collecting_starts_at),
        collecting_ends_at=to_local(campaign.collecting_ends_at),
        voting_starts_at=to_local(campaign.voting_starts_at),
        voting_ends_at=to_local(campaign.voting_ends_at),
        closes_at=to_local(campaign.closes_at),
        submission_cap=campaign.submission_cap,
        report_threshold=campaign.report_threshold,
        vote_budget=campaign.vote_budget,
        votes_per_minute_person=campaign.votes_per_minute_person,
        votes_per_minute_ip=campaign.votes_per_minute_ip,
        created_at=to_local(campaign.created_at),
    )


def _is_manager(principal: Principal | None) -> bool:
    return principal is not None and principal.role in MANAGERS


async def get_campaign_or_raise(
    public_id: str, *, principal: Principal | None = None, now: datetime | None = None
) -> Campaign:
    """The campaign, or 404 (drafts are visible to curators and the bureau only)."""
    campaign = await Campaign.get_or_none(public_id=public_id)
    hidden_draft = (
        campaign is not None
        and now is not None
        and phases_at(campaign, now) == [Phase.DRAFT]
        and not _is_manager(principal)
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
    async with in_transaction():
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
    await ctx.kv.set(counters.built_key(campaign), "1")  # nothing to count yet
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
    async with in_transaction():
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
    query = paging.scope_of("campaigns", phase, _is_manager(principal))
    secret = ctx.settings.jwt_secret
    qs = Campaign.all()
    if not _is_manager(principal):
        qs = qs.filter(collecting_starts_at__lte=now)
    if cursor:
        start, pid = paging.decode_cursor(cursor, scope=query, secret=secret, shape=(str, str))
        at = _parse_time(start)
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


def _parse_time(value: str) -> datetime:
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        raise ValidationFailed("分页游标无效", fields={"cursor": "游标无效或已被篡改"}) from None


# -- pain points ------------------------------------------------------------------------


async def _user_pk(principal: Principal) -> int:
    found = (
        await User.filter(public_id=principal.user_id, is_active=True)
        .limit(1)
        .values_list("id", flat=True)
    )
    if not found:
        raise Forbidden("账号不可用", code="account_disabled")
    return int(str(found[0]))


def _submitter_audience(
    principal: Principal, campaign: Campaign, requested: Audience | None
) -> Audience:
    allowed: tuple[Audience, ...]
    if principal.role in DEPARTMENT_ROLES:
        allowed = (Audience.DEPARTMENT,)
    elif principal.role in ENTERPRISE_ROLES:
        allowed = (Audience.ENTERPRISE,)
    else:
        allowed = (Audience.RESIDENT, Audience.ENTERPRISE)
    audience = requested or allowed[0]
    if audience not in allowed:
        raise Unprocessable(
            "当前账号不能以该身份提交",
            code="audience_not_allowed",
            fields={"audience": "可选：" + ",".join(a.value for a in allowed)},
        )
    _require_invited(campaign, audience)
    return audience


def voter_audience(role: Role) -> Audience:
    """The audience a vote counts for: residents, enterprises (vendors), departments (staff)."""
    if role in DEPARTMENT_ROLES:
        return Audience.DEPARTMENT
    if role in ENTERPRISE_ROLES:
        return Audience.ENTERPRISE
    return Audience.RESIDENT


def _require_invited(campaign: Campaign, audience: Audience) -> None:
    if audience.value not in campaign.audiences:
        raise Unprocessable(
            "本次活动未面向该群体征集",
            code="audience_not_invited",
            fields={"audience": audience.value},
        )


def check_category(campaign: Campaign, category: str) -> None:
    """400 naming ``category`` unless it is one of the campaign's."""
    if category not in {c["code"] for c in campaign.categories}:
        raise ValidationFailed(fields={"category": "不是本活动的分类"})


def _wgs84(location: LocationIn | None) -> tuple[float | None, float | None]:
    if location is None:
        return None, None
    point = geo.to_wgs84(location.lat, location.lng, location.coord)
    return point.lat, point.lng


def pain_point_out(
    item: PainPoint,
    campaign: Campaign,
    counts: dict[str, int] | None,
    coord: geo.CoordSystem = geo.CoordSystem.WGS84,
) -> PainPointOut:
    counts = counts or {}
    labels = campaign.category_labels()
    location = None
    if item.lat is not None and item.lng is not None:
        point = geo.from_wgs84(geo.Point(item.lat, item.lng), coord)
        location = Location(lat=round(point.lat, 7), lng=round(point.lng, 7))
    links: dict[str, Any] = getattr(item, "_links", {})
    return PainPointOut(
        id=item.public_id,
        campaign_id=campaign.public_id,
        title=item.title,
        description=item.description,
        category=item.category,
        category_label=labels.get(item.category, item.category),
        location=location,
        district=item.district,
        address=item.address,
        photo_urls=list(item.photo_urls),
        audience=item.audience,
        company_name=item.company_name,
        department_name=item.department_name,
        status=item.status,
        hidden=item.hidden,
        moderation_reason=item.moderation_reason or None,
        duplicate_of=links.get("duplicate_of"),
        merged_into=links.get("merged_into"),
        merged=links.get("merged", []),
        votes=counts.get("total", 0),
        votes_by_audience=VoteCounts(
            **{a.value: counts.get(a.value, 0) for a in counters.AUDIENCES}
        ),
        created_at=to_local(item.created_at),
        updated_at=to_local(item.updated_at),
    )


async def _with_links(items: list[PainPoint]) -> None:
    """Attach the public ids of each item's duplicate target and merges, for the response."""
    ids = [i.id for i in items]
    merges = (
        await Merge.filter(Q(source_id__in=ids) | Q(target_id__in=ids))
        .order_by("id")
        .values_list("source_id", "target_id")
    )
    wanted = {i.duplicate_of_id for i in items if i.duplicate_of_id}  # type: ignore[attr-defined]
    wanted |= {pk for pair in merges for pk in pair}
    names: dict[Any, str] = {}
    if wanted:
        rows = await PainPoint.filter(id__in=wanted).values_list("id", "public_id")
        names = {pk: str(public_id) for pk, public_id in rows}  # type: ignore[misc]
    for item in items:
        links: dict[str, Any] = {"merged": []}
        target = item.duplicate_of_id  # type: ignore[attr-defined]
        if target:
            links["duplicate_of"] = names.get(target)
        for source, into in merges:
            if source == item.id:
                links["merged_into"] = names.get(into)
            if into == item.id:
                links["merged"].append(names.get(source))
        item._links = links  # type: ignore[attr-defined]


async def live_counts(*, ctx: AppContext, item: PainPoint, campaign: Campaign) -> dict[str, int]:
    """The live counts of one pain point (from the database if the store is unreachable)."""
    try:
        await counters.ensure_built(ctx=ctx, campaign=campaign)
        return await counters.read_one(ctx=ctx, campaign=campaign, pain_point=item.public_id)
    except counters.KV_ERRORS:
        log.warning("vote counters unreachable, counting in the database")
        return await counters.database_one(pain_point_pk=item.id)


async def submit_pain_point(
    *, ctx: AppContext, principal: Principal, campaign_id: str, data: PainPointCreate
) -> tuple[PainPoint, Campaign]:
    """Submit a pain point while the campaign collects, within the per-person cap."""
    now = ctx.clock.now()
    campaign = await get_campaign_or_raise(campaign_id, principal=principal, now=now)
    _require_phase(campaign, now, Phase.COLLECTING, "征集")
    check_category(campaign, data.category)
    audience = _submitter_audience(principal, campaign, data.audience)
    if audience is Audience.ENTERPRISE and not data.company_name:
        raise ValidationFailed(fields={"company_name": "企业提交须填写企业名称"})
    user_pk = await _user_pk(principal)
    lat, lng = _wgs84(data.location)
    await Participant.bulk_create(
        [Participant(campaign_id=campaign.id, user_id=user_pk)], ignore_conflicts=True
    )
    async with in_transaction():
        # One conditional UPDATE is the cap check: it cannot be passed twice concurrently.
        within_cap = await Participant.filter(
            campaign_id=campaign.id, user_id=user_pk, submissions__lt=campaign.submission_cap
        ).update(submissions=F("submissions") + 1)
        if not within_cap:
            raise Unprocessable(
                f"每人在本活动最多提交 {campaign.submission_cap} 条",
                code="submission_cap_reached",
            )
        item = await PainPoint.create(
            campaign_id=campaign.id,
            author_id=user_pk,
            audience=audience,
            company_name=data.company_name if audience is Audience.ENTERPRISE else None,
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
    """The pain point with its campaign, or 404 (hidden and invalid ones: author and curators)."""
    item = await PainPoint.get_or_none(public_id=public_id).select_related("campaign")
    if item is None:
        raise NotFound("痛点不存在", code="pain_point_not_found")
    restricted = item.hidden or item.status is Status.INVALID
    if restricted and not _is_manager(principal) and not await _is_author(item, principal):
        raise NotFound("痛点不存在", code="pain_point_not_found")
    await _with_links([item])
    return item


async def _is_author(item: PainPoint, principal: Principal | None) -> bool:
    if principal is None:
        return False
    return await User.filter(id=item.author_id, public_id=principal.user_id).exists()  # type: ignore[attr-defined]


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
    secret = ctx.settings.jwt_secret
    qs = PainPoint.filter(campaign_id=campaign.id, status__in=LISTED, hidden=False)
    if category:
        qs = qs.filter(category=category)
    counts: counters.Counts
    try:
        await counters.ensure_built(ctx=ctx, campaign=campaign)
        counts = await counters.read_all(ctx=ctx, campaign=campaign)
    except counters.KV_ERRORS:
        log.warning("vote counters unreachable, counting in the database")
        counts = await counters.database_counts(campaign=campaign)
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
            moment = _parse_time(at)
            qs = qs.filter(Q(created_at__lt=moment) | Q(created_at=moment, public_id__lt=pid))
        rows = await qs.order_by("-created_at", "-public_id").limit(limit + 1)
        more = len(rows) > limit
        page = rows[:limit]
        next_key = [page[-1].created_at.isoformat(), page[-1].public_id] if more else None
    await _with_links(page)
    return PainPointList(
        items=[pain_point_out(i, campaign, counts.get(i.public_id), coord) for i in page],
        next_cursor=paging.encode_cursor(next_key, scope=query, secret=secret)
        if next_key
        else None,
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


# -- moderation and reports -------------------------------------------------------------


async def moderate(
    *, ctx: AppContext, actor: Principal, public_id: str, data: ModerationIn
) -> PainPoint:
    """A curator's decision (valid, invalid with a reason, duplicate of another), audited."""
    item = await get_pain_point_or_raise(public_id, principal=actor)
    decision = Status(data.decision)
    reason = data.reason.strip()
    target: PainPoint | None = None
    if decision is Status.INVALID and len(reason) < 2:
        raise ValidationFailed(fields={"reason": "判定无效须说明理由"})
    if decision is Status.DUPLICATE:
        if not data.duplicate_of:
            raise ValidationFailed(fields={"duplicate_of": "须指明与哪条痛点重复"})
        target = await PainPoint.get_or_none(
            public_id=data.duplicate_of,
            campaign_id=item.campaign_id,  # type: ignore[attr-defined]
        )
        if target is None:
            raise ValidationFailed(fields={"duplicate_of": "本活动中没有这条痛点"})
        if target.id == item.id:
            raise Unprocessable(
                "不能与自身重复", code="duplicate_of_self", fields={"duplicate_of": "不能是本条"}
            )
        if target.status not in LISTED:
            raise Unprocessable(
                "目标痛点本身无效或已是重复项",
                code="duplicate_target_not_listed",
                fields={"duplicate_of": target.status.value},
            )
    elif data.duplicate_of:
        raise ValidationFailed(fields={"duplicate_of": "只有判定为重复时才能填写"})
    if item.status is Status.DUPLICATE:
        raise Conflict("该痛点已判定为重复", code="already_duplicate")
    previous = item.status
    now = ctx.clock.now()
    async with in_transaction():
        changed = await PainPoint.filter(id=item.id, status=previous).update(
            status=decision,
            moderation_reason=reason,
            duplicate_of_id=target.id if target else None,
            moderated_by=actor.user_id,
            moderated_at=now,
            hidden=False,
            report_count=0,
            updated_at=now,
        )
        if not changed:
            raise Conflict("该痛点刚被他人审核，请刷新后重试", code="moderation_conflict")
        await record(
            ctx=ctx,
            actor=actor,
            action="pain_point.moderate",
            obj=("pain_point", item.public_id),
            reason=reason,
            detail={
                "from": previous.value,
                "to": decision.value,
                "was_hidden": item.hidden,
                **({"duplicate_of": target.public_id} if target else {}),
            },
        )
    return await get_pain_point_or_raise(public_id, principal=actor)


async def moderation_queue(
    *,
    ctx: AppContext,
    principal: Principal,
    campaign_id: str,
    status: str | None,
    limit: int,
    cursor: str | None,
) -> PainPointList:
    """Items awaiting review (submitted, or hidden by reports), oldest first."""
    campaign = await get_campaign_or_raise(campaign_id, principal=principal, now=ctx.clock.now())
    query = paging.scope_of("moderation", campaign.public_id, status)
    secret = ctx.settings.jwt_secret
    qs = PainPoint.filter(campaign_id=campaign.id)
    if status == "submitted":
        qs = qs.filter(status=Status.SUBMITTED, hidden=False)
    elif status == "hidden":
        qs = qs.filter(hidden=True)
    else:
        qs = qs.filter(Q(status=Status.SUBMITTED) | Q(hidden=True))
    if cursor:
        at, pid = paging.decode_cursor(cursor, scope=query, secret=secret, shape=(str, str))
        moment = _parse_time(at)
        qs = qs.filter(Q(created_at__gt=moment) | Q(created_at=moment, public_id__gt=pid))
    rows = await qs.order_by("created_at", "public_id").limit(limit + 1)
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = paging.encode_cursor(
            [last.created_at.isoformat(), last.public_id], scope=query, secret=secret
        )
    try:
        await counters.ensure_built(ctx=ctx, campaign=campaign)
        counts = await counters.read_all(ctx=ctx, campaign=campaign)
    except counters.KV_ERRORS:
        log.warning("vote counters unreachable, counting in the database")
        counts = await counters.database_counts(campaign=campaign)
    await _with_links(page)
    return PainPointList(
        items=[pain_point_out(i, campaign, counts.get(i.public_id)) for i in page],
        next_cursor=next_cursor,
    )


async def report_pain_point(
    *, ctx: AppContext, principal: Principal, public_id: str, reason: str
) -> ReportOut:
    """A report by a signed-in person; the campaign's threshold of reports hides the item."""
    item = await get_pain_point_or_raise(public_id, principal=principal)
    campaign = item.campaign
    if phases_at(campaign, ctx.clock.now()) == [Phase.CLOSED]:
        raise Conflict("活动已关闭", code="phase_closed")
    limit = await ctx.kv.hit(f"cs:report:{principal.user_id}", limit=REPORTS_PER_HOUR, window=3600)
    if not limit.allowed:
        raise RateLimited(limit.retry_after, "举报过于频繁，请稍后再试")
    user_pk = await _user_pk(principal)
    if item.author_id == user_pk:  # type: ignore[attr-defined]
        raise Unprocessable("不能举报自己提交的痛点", code="own_pain_point")
    now = ctx.clock.now()
    hidden_now = False
    try:
        async with in_transaction():
            await Report.create(
                pain_point_id=item.id, user_id=user_pk, reason=reason.strip(), created_at=now
            )
            await PainPoint.filter(id=item.id).update(report_count=F("report_count") + 1)
            hidden_now = bool(
                await PainPoint.filter(
                    id=item.id, hidden=False, report_count__gte=campaign.report_threshold
                ).update(hidden=True, updated_at=now)
            )
            if hidden_now:
                await record(
                    ctx=ctx,
                    actor=None,
                    action="pain_point.hide",
                    obj=("pain_point", item.public_id),
                    reason="reports",
                    detail={"threshold": campaign.report_threshold},
                )
    except IntegrityError:
        raise Conflict("你已举报过该痛点", code="already_reported") from None
    hidden = hidden_now or item.hidden
    return ReportOut(pain_point_id=item.public_id, hidden=hidden)


# -- merging duplicates -----------------------------------------------------------------

MERGEABLE_SOURCE = (Status.SUBMITTED, Status.VALID, Status.DUPLICATE)
MERGE_ATTEMPTS = 3
AudienceCounts = dict[str, int]


async def _by_audience(qs: Any) -> AudienceCounts:
    rows = await qs.annotate(n=Count("id")).group_by("audience").values("audience", "n")
    return {str(r["audience"]): int(r["n"]) for r in rows}


async def _fold_votes(
    *, source_pk: int, target_pk: int, campaign_pk: int
) -> tuple[AudienceCounts, AudienceCounts]:
    """Move the source's votes to the target inside the caller's transaction.

    A person who voted for both keeps only the target vote (and gets the other back from their
    budget). Returns the votes moved and the votes dropped as doubles, per audience.
    """
    both = Vote.filter(
        pain_point_id=source_pk,
        user_id__in=Subquery(Vote.filter(pain_point_id=target_pk).values("user_id")),
    )
    doubled = await _by_audience(both)
    if doubled:
        await Participant.filter(
            campaign_id=campaign_pk,
            votes__gt=0,
            user_id__in=Subquery(both.values("user_id")),
        ).update(votes=F("votes") - 1)
        await both.delete()
    moved = await _by_audience(Vote.filter(pain_point_id=source_pk))
    if moved:
        await Vote.filter(pain_point_id=source_pk).update(pain_point_id=target_pk)
    return moved, doubled


async def _move_counters(
    *, ctx: AppContext, campaign: Campaign, source: str, target: str, moved: AudienceCounts
) -> None:
    """Carry moved votes over in the live counters and drop the source from the ranking."""
    try:
        kv = ctx.kv
        for audience, n in moved.items():
            await kv.zincrby(counters.audience_key(campaign, audience), target, n)
            await kv.zincrby(counters.total_key(campaign), target, n)
        for key in [counters.total_key(campaign)] + [
            counters.audience_key(campaign, a) for a in counters.AUDIENCES
        ]:
            await kv.zrem(key, source)
    except counters.KV_ERRORS:
        log.warning("vote counters unreachable, reconciliation will catch up")


async def merge_pain_points(
    *, ctx: AppContext, actor: Principal, target_id: str, data: MergeIn
) -> PainPoint:
    """Merge a duplicate (source) into a target: voters carry over, counted once, audited."""
    target = await get_pain_point_or_raise(target_id, principal=actor)
    campaign = target.campaign
    source = await PainPoint.get_or_none(public_id=data.source, campaign_id=campaign.id)
    if source is None:
        raise ValidationFailed(fields={"source": "本活动中没有这条痛点"})
    if source.id == target.id:
        raise Unprocessable(
            "不能合并到自身", code="merge_into_self", fields={"source": "不能是本条"}
        )
    if target.status not in LISTED:
        raise Unprocessable(
            "只能合并到有效或待审核的痛点",
            code="merge_target_not_listed",
            fields={"target": target.status.value},
        )
    if await Merge.filter(source_id=source.id).exists():
        raise Conflict(
            "该痛点已被合并过", code="already_merged", fields={"source": source.public_id}
        )
    if source.status not in MERGEABLE_SOURCE:
        raise Unprocessable(
            "无效的痛点不能合并",
            code="merge_source_invalid",
            fields={"source": source.status.value},
        )
    if source.duplicate_of_id not in (None, target.id):  # type: ignore[attr-defined]
        raise Unprocessable(
            "该痛点已被判定为另一条痛点的重复项",
            code="duplicate_of_other",
            fields={"source": "已是另一条痛点的重复项"},
        )
    reason = data.reason.strip()
    for attempt in range(MERGE_ATTEMPTS):
        now = ctx.clock.now()
        try:
            async with in_transaction():
                await _claim_pair(target=target, source=source, actor=actor, reason=reason, now=now)
                if await Merge.filter(source_id=source.id).exists():
                    raise Conflict("该痛点已被合并过", code="already_merged")
                moved, doubled = await _fold_votes(
                    source_pk=source.id, target_pk=target.id, campaign_pk=campaign.id
                )
                await Merge.create(
                    campaign_id=campaign.id,
                    target_id=target.id,
                    source_id=source.id,
                    votes_moved=sum(moved.values()),
                    votes_deduplicated=sum(doubled.values()),
                    reason=reason,
                    merged_by=actor.user_id,
                    merged_at=now,
                )
                await record(
                    ctx=ctx,
                    actor=actor,
                    action="pain_point.merge",
                    obj=("pain_point", target.public_id),
                    reason=reason,
                    detail={
                        "source": source.public_id,
                        "target": target.public_id,
                        "votes_moved": sum(moved.values()),
                        "votes_deduplicated": sum(doubled.values()),
                    },
                )
            break
        except IntegrityError:
            # A vote for the target landed while we moved votes: start again from the top.
            if attempt == MERGE_ATTEMPTS - 1:
                raise Conflict("合并时有新的投票，请重试", code="merge_conflict") from None
    await _move_counters(
        ctx=ctx, campaign=campaign, source=source.public_id, target=target.public_id, moved=moved
    )
    return await get_pain_point_or_raise(target.public_id, principal=actor)


async def _claim_pair(
    *, target: PainPoint, source: PainPoint, actor: Principal, reason: str, now: datetime
) -> None:
    """Re-check both items under row locks taken in id order (so two merges cannot deadlock)."""
    for pk in sorted((target.id, source.id)):
        if pk == target.id:
            claimed = await PainPoint.filter(id=pk, status__in=LISTED).update(updated_at=now)
        else:
            claimed = await PainPoint.filter(
                Q(duplicate_of_id__isnull=True) | Q(duplicate_of_id=target.id),
                id=pk,
                status__in=MERGEABLE_SOURCE,
            ).update(
                status=Status.DUPLICATE,
                duplicate_of_id=target.id,
                moderated_by=actor.user_id,
                moderated_at=now,
                moderation_reason=reason,
                hidden=False,
                updated_at=now,
            )
        if not claimed:
            raise Conflict("痛点状态刚刚发生变化，请刷新后重试", code="merge_conflict")


async def fold_leftover_votes(*, ctx: AppContext, campaign: Campaign) -> int:
    """Move votes that reached merged items during a merge to where the item now lives."""
    pairs = await Merge.filter(campaign_id=campaign.id).values_list("source_id", "target_id")
    target_of: dict[int, int] = {int(s): int(t) for s, t in pairs}  # type: ignore[misc]
    if not target_of:
        return 0
    leftovers = await (
        Vote.filter(pain_point_id__in=list(target_of))
        .distinct()
        .values_list("pain_point_id", flat=True)
    )
    folded = 0
    for source_pk in {int(str(pk)) for pk in leftovers}:
        root = source_pk
        for _ in range(len(target_of)):  # merges never form cycles: the walk ends
            if root not in target_of:
                break
            root = target_of[root]
        async with in_transaction():
            moved, doubled = await _fold_votes(
                source_pk=source_pk, target_pk=root, campaign_pk=campaign.id
            )
        folded += sum(moved.values()) + sum(doubled.values())
    if folded:
        log.warning("late votes on merged pain points folded", extra={"votes": folded})
    return folded


# -- votes ------------------------------------------------------------------------------


async def _check_vote_rate(
    *, ctx: AppContext, campaign: Campaign, principal: Principal, client_ip: str
) -> None:
    secret = ctx.settings.jwt_secret
    checks = (
        (
            f"cs:vote:user:{campaign.public_id}:{principal.user_id}",
            campaign.votes_per_minute_person,
        ),
        (
            f"cs:vote:ip:{campaign.public_id}:{integrity.ip_hash(secret, client_ip)}",
            campaign.votes_per_minute_ip,
        ),
    )
    for key, per_minute in checks:
        result = await ctx.kv.hit(key, limit=per_minute, window=60)
        if not result.allowed:
            raise RateLimited(
                result.retry_after, "投票过于频繁，请稍后再试", code="vote_rate_limited"
            )


async def _check_votable(item: PainPoint) -> None:
    if item.status is Status.INVALID:
        raise Unprocessable("该痛点已被判定无效，不能投票", code="pain_point_invalid")
    if item.status is Status.DUPLICATE:
        target = await PainPoint.filter(id=item.duplicate_of_id).values_list(  # type: ignore[attr-defined]
            "public_id", flat=True
        )
        raise Unprocessable(
            "该痛点是重复项，请为原痛点投票",
            code="pain_point_duplicate",
            fields={"duplicate_of": str(target[0]) if target else ""},
        )
    if item.hidden:
        raise Conflict("该痛点正在复核中，暂不能投票", code="pain_point_hidden")


async def _vote_out(
    *, ctx: AppContext, item: PainPoint, campaign: Campaign, audience: Audience
) -> VoteOut:
    counts = await live_counts(ctx=ctx, item=item, campaign=campaign)
    return VoteOut(
        pain_point_id=item.public_id,
        audience=audience,
        votes=counts["total"],
        votes_by_audience=VoteCounts(**{a.value: counts[a.value] for a in counters.AUDIENCES}),
    )


async def _bump(
    *, ctx: AppContext, campaign: Campaign, item: PainPoint, audience: Audience, amount: int
) -> None:
    try:
        await counters.bump(
            ctx=ctx, campaign=campaign, pain_point=item.public_id, audience=audience, amount=amount
        )
    except counters.KV_ERRORS:
        log.warning("vote counters unreachable, reconciliation will catch up")


async def cast_vote(
    *,
    ctx: AppContext,
    principal: Principal,
    public_id: str,
    client_ip: str,
    device_id: str | None = None,
) -> VoteOut:
    """One vote per person per pain point while voting is open, within the budget."""
    item = await PainPoint.get_or_none(public_id=public_id).select_related("campaign")
    if item is None:
        raise NotFound("痛点不存在", code="pain_point_not_found")
    try:
        return await _cast_vote(
            ctx=ctx, principal=principal, item=item, client_ip=client_ip, device_id=device_id
        )
    except AppError as exc:
        await integrity.count_refusal(ctx=ctx, campaign=item.campaign, code=exc.code)
        raise


async def _cast_vote(
    *,
    ctx: AppContext,
    principal: Principal,
    item: PainPoint,
    client_ip: str,
    device_id: str | None,
) -> VoteOut:
    campaign = item.campaign
    await _check_vote_rate(ctx=ctx, campaign=campaign, principal=principal, client_ip=client_ip)
    now = ctx.clock.now()
    _require_phase(campaign, now, Phase.VOTING, "投票")
    await _check_votable(item)
    audience = voter_audience(principal.role)
    _require_invited(campaign, audience)
    user_pk = await _user_pk(principal)
    ip_hash, net_hash, device_hash = integrity.origin_hashes(
        ctx.settings.jwt_secret, client_ip, device_id
    )
    try:
        await counters.ensure_built(ctx=ctx, campaign=campaign)
    except counters.KV_ERRORS:
        log.warning("vote counters unreachable, reconciliation will catch up")
    await Participant.bulk_create(
        [Participant(campaign_id=campaign.id, user_id=user_pk)], ignore_conflicts=True
    )
    try:
        async with in_transaction():
            # The UNIQUE (pain_point, user) constraint is the one-vote rule.
            await Vote.create(
                pain_point_id=item.id,
                campaign_id=campaign.id,
                user_id=user_pk,
                audience=audience,
                created_at=now,
                ip_hash=ip_hash,
                net_hash=net_hash,
                device_hash=device_hash,
            )
            # The budget: one conditional UPDATE of the person's row, serialised by the database.
            tally = Participant.filter(campaign_id=campaign.id, user_id=user_pk)
            if campaign.vote_budget is not None:
                tally = tally.filter(votes__lt=campaign.vote_budget)
            if not await tally.update(votes=F("votes") + 1):
                raise Unprocessable(
                    f"每人在本活动最多投 {campaign.vote_budget} 票",
                    code="vote_budget_exhausted",
                )
    except IntegrityError:
        raise Conflict("你已为该痛点投过票", code="already_voted") from None
    await _bump(ctx=ctx, campaign=campaign, item=item, audience=audience, amount=1)
    return await _vote_out(ctx=ctx, item=item, campaign=campaign, audience=audience)


async def withdraw_vote(
    *, ctx: AppContext, principal: Principal, public_id: str, client_ip: str
) -> VoteOut:
    """Withdraw one's vote while voting is open."""
    item = await PainPoint.get_or_none(public_id=public_id).select_related("campaign")
    if item is None:
        raise NotFound("痛点不存在", code="pain_point_not_found")
    campaign = item.campaign
    await _check_vote_rate(ctx=ctx, campaign=campaign, principal=principal, client_ip=client_ip)
    _require_phase(campaign, ctx.clock.now(), Phase.VOTING, "投票")
    user_pk = await _user_pk(principal)
    vote = await Vote.get_or_none(pain_point_id=item.id, user_id=user_pk)
    if vote is None:
        raise NotFound("你没有为该痛点投票", code="vote_not_found")
    try:
        await counters.ensure_built(ctx=ctx, campaign=campaign)
    except counters.KV_ERRORS:
        log.warning("vote counters unreachable, reconciliation will catch up")
    async with in_transaction():
        if not await Vote.filter(id=vote.id).delete():
            raise NotFound("你没有为该痛点投票", code="vote_not_found")
        await Participant.filter(campaign_id=campaign.id, user_id=user_pk, votes__gt=0).update(
            votes=F("votes") - 1
        )
    await _bump(ctx=ctx, campaign=campaign, item=item, audience=vote.audience, amount=-1)
    return await _vote_out(ctx=ctx, item=item, campaign=campaign, audience=vote.audience)
