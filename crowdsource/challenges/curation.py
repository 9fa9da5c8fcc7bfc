"""Curation: the shortlist of valid pain points, challenges from draft to published, follows."""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Any

from tortoise.exceptions import IntegrityError

from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict, NotFound, ValidationFailed
from backend.models import Role, User
from backend.notifications import notify
from backend.paging import decode_cursor, encode_cursor, scope_of
from backend.uow import unit_of_work
from crowdsource import counters
from crowdsource.challenges.models import (
    Challenge,
    ChallengeSource,
    ChallengeStatus,
    Follow,
    ShortlistEntry,
)
from crowdsource.challenges.presenters import challenges_out, shortlist_item_out
from crowdsource.challenges.schemas import (
    ChallengeIn,
    ChallengeListQuery,
    ChallengeOut,
    ChallengePage,
    ChallengePatch,
    ShortlistOut,
)
from crowdsource.models import Campaign, PainPoint, Status
from crowdsource.pain_points import check_category, get_pain_point_or_raise

CURATORS = (Role.CURATOR, Role.BUREAU_ADMIN)


def is_curator(principal: Principal | None) -> bool:
    return principal is not None and principal.role in CURATORS


async def get_campaign(public_id: str) -> Campaign:
    campaign = await Campaign.get_or_none(public_id=public_id)
    if campaign is None:
        raise NotFound("征集活动不存在", code="campaign_not_found")
    return campaign


async def _valid_pain_points(campaign: Campaign, public_ids: list[str]) -> list[PainPoint]:
    """The named pain points, each valid, visible and of this campaign."""
    items = await PainPoint.filter(public_id__in=public_ids, campaign=campaign)
    found = {p.public_id: p for p in items}
    problems = {}
    for index, public_id in enumerate(public_ids):
        item = found.get(public_id)
        if item is None:
            problems[f"pain_point_ids.{index}"] = "not a pain point of this campaign"
        elif item.status != Status.VALID or item.hidden:
            problems[f"pain_point_ids.{index}"] = "only valid, visible pain points"
    if problems:
        raise ValidationFailed("痛难点须为本活动中有效的条目", fields=problems)
    return [found[p] for p in dict.fromkeys(public_ids)]


# --- shortlist ---------------------------------------------------------------------------------


async def shortlist(*, campaign_id: str) -> ShortlistOut:
    """The curators' shortlist with live vote counts, most voted first."""
    campaign = await get_campaign(campaign_id)
    entries = await ShortlistEntry.filter(campaign=campaign).select_related("pain_point")
    counts = await counters.database_by_pk([e.pain_point.id for e in entries])
    items = [shortlist_item_out(e, counts) for e in entries]
    items.sort(key=lambda i: (-i.pain_point.votes, i.pain_point.id))
    return ShortlistOut(items=items)


async def add_to_shortlist(
    *, ctx: AppContext, actor: Principal, campaign_id: str, pain_point_id: str, note: str
) -> None:
    """Put a valid pain point on the shortlist (idempotent)."""
    campaign = await get_campaign(campaign_id)
    try:
        (item,) = await _valid_pain_points(campaign, [pain_point_id])
    except ValidationFailed as exc:
        reason = "only valid, visible pain points of this campaign"
        raise ValidationFailed(exc.message, fields={"pain_point_id": reason}) from None
    try:
        async with unit_of_work():
            await ShortlistEntry.create(
                campaign=campaign,
                pain_point=item,
                note=note,
                added_by=actor.user_id,
                added_at=ctx.clock.now(),
            )
            await record(
                ctx=ctx,
                actor=actor,
                action="shortlist.add",
                obj=("pain_point", item.public_id),
                reason=note,
            )
    except IntegrityError:
        return


async def remove_from_shortlist(
    *, ctx: AppContext, actor: Principal, campaign_id: str, pain_point_id: str
) -> None:
    campaign = await get_campaign(campaign_id)
    item = await PainPoint.get_or_none(public_id=pain_point_id, campaign=campaign)
    async with unit_of_work():
        deleted = 0 if item is None else await ShortlistEntry.filter(pain_point=item).delete()
        if not deleted:
            raise NotFound("该痛难点不在候选清单中", code="not_shortlisted")
        await record(
            ctx=ctx, actor=actor, action="shortlist.remove", obj=("pain_point", pain_point_id)
        )


# --- challenges --------------------------------------------------------------------------------


async def get_challenge(public_id: str, *, viewer: Principal | None) -> Challenge:
    """A challenge the viewer may see: published ones for everyone, all for curators."""
    challenge = await Challenge.get_or_none(public_id=public_id).select_related("campaign")
    if challenge is None or (
        challenge.status != ChallengeStatus.PUBLISHED and not is_curator(viewer)
    ):
        raise NotFound("挑战不存在", code="challenge_not_found")
    return challenge


def _check_deadline(deadline: datetime, now: datetime) -> None:
    if deadline <= now:
        raise ValidationFailed(fields={"submission_deadline": "must be in the future"})


async def create_challenge(
    *, ctx: AppContext, actor: Principal, campaign_id: str, data: ChallengeIn
) -> Challenge:
    """Write a draft challenge from valid pain points of the campaign."""
    campaign = await get_campaign(campaign_id)
    check_category(campaign, data.category)
    now = ctx.clock.now()
    _check_deadline(data.submission_deadline, now)
    items = await _valid_pain_points(campaign, data.pain_point_ids)
    async with unit_of_work():
        challenge = await Challenge.create(
            campaign=campaign,
            title=data.title,
            category=data.category,
            problem_statement=data.problem_statement,
            background=data.background,
            expected_outcome=data.expected_outcome,
            owning_department=data.owning_department,
            open_data=[d.model_dump() for d in data.open_data],
            rubric=[c.model_dump() for c in data.rubric],
            prize=data.prize,
            submission_deadline=data.submission_deadline,
            created_by=actor.user_id,
            created_at=now,
            updated_at=now,
        )
        await ChallengeSource.bulk_create(
            [ChallengeSource(challenge=challenge, pain_point=p) for p in items]
        )
        await record(
            ctx=ctx,
            actor=actor,
            action="challenge.create",
            obj=("challenge", challenge.public_id),
            detail={"pain_points": [p.public_id for p in items]},
        )
    return challenge


async def update_challenge(
    *, ctx: AppContext, actor: Principal, public_id: str, data: ChallengePatch
) -> Challenge:
    """Edit a challenge that is not yet published."""
    challenge = await get_challenge(public_id, viewer=actor)
    if challenge.status == ChallengeStatus.PUBLISHED:
        raise Conflict("已发布的挑战不能修改", code="challenge_published")
    changes: dict[str, Any] = data.model_dump(exclude_unset=True, exclude={"pain_point_ids"})
    if "category" in changes:
        check_category(challenge.campaign, changes["category"])
    if changes.get("submission_deadline") is not None:
        _check_deadline(changes["submission_deadline"], ctx.clock.now())
    items = None
    if data.pain_point_ids is not None:
        items = await _valid_pain_points(challenge.campaign, data.pain_point_ids)
    for key in ("open_data", "rubric"):
        if key in changes and changes[key] is not None:
            changes[key] = [dict(v) for v in changes[key]]
    async with unit_of_work():
        for key, value in changes.items():
            if value is not None:
                setattr(challenge, key, value)
        challenge.updated_at = ctx.clock.now()
        await challenge.save()
        if items is not None:
            await ChallengeSource.filter(challenge=challenge).delete()
            await ChallengeSource.bulk_create(
                [ChallengeSource(challenge=challenge, pain_point=p) for p in items]
            )
        await record(
            ctx=ctx,
            actor=actor,
            action="challenge.update",
            obj=("challenge", challenge.public_id),
            detail={"fields": sorted(changes)},
        )
    return challenge


async def submit_for_review(*, ctx: AppContext, actor: Principal, public_id: str) -> Challenge:
    """Draft → in review."""
    challenge = await get_challenge(public_id, viewer=actor)
    if challenge.status != ChallengeStatus.DRAFT:
        raise Conflict("只有草稿可以提交审核", code="challenge_not_draft")
    challenge.status = ChallengeStatus.IN_REVIEW
    challenge.updated_at = ctx.clock.now()
    async with unit_of_work():
        await challenge.save(update_fields=["status", "updated_at"])
        await record(
            ctx=ctx, actor=actor, action="challenge.submit_review", obj=("challenge", public_id)
        )
    return challenge


async def return_to_draft(
    *, ctx: AppContext, actor: Principal, public_id: str, note: str
) -> Challenge:
    """In review → draft, with the reviewer's note."""
    challenge = await get_challenge(public_id, viewer=actor)
    if challenge.status != ChallengeStatus.IN_REVIEW:
        raise Conflict("只有审核中的挑战可以退回", code="challenge_not_in_review")
    challenge.status = ChallengeStatus.DRAFT
    challenge.review_note = note
    challenge.updated_at = ctx.clock.now()
    async with unit_of_work():
        await challenge.save(update_fields=["status", "review_note", "updated_at"])
        await record(
            ctx=ctx,
            actor=actor,
            action="challenge.return",
            obj=("challenge", public_id),
            reason=note,
        )
    return challenge


async def publish(*, ctx: AppContext, actor: Principal, public_id: str) -> Challenge:
    """In review → published: numbered in its campaign, followers told."""
    challenge = await get_challenge(public_id, viewer=actor)
    if challenge.status != ChallengeStatus.IN_REVIEW:
        raise Conflict("只有审核中的挑战可以发布", code="challenge_not_in_review")
    now = ctx.clock.now()
    _check_deadline(challenge.submission_deadline, now)
    for _attempt in range(5):
        latest = (
            await Challenge.filter(campaign_id=challenge.campaign.id, number__isnull=False)
            .order_by("-number")
            .first()
        )
        highest = latest.number if latest is not None else 0
        challenge.number = int(highest or 0) + 1
        challenge.status = ChallengeStatus.PUBLISHED
        challenge.published_at = now
        challenge.updated_at = now
        try:
            async with unit_of_work() as uow:
                await challenge.save(
                    update_fields=["number", "status", "published_at", "updated_at"]
                )
                await record(
                    ctx=ctx,
                    actor=actor,
                    action="challenge.publish",
                    obj=("challenge", public_id),
                    detail={"number": challenge.number},
                )
                uow.after_commit(
                    partial(
                        tell_followers,
                        ctx=ctx,
                        challenge=challenge,
                        kind="challenge_published",
                        title=f"您关注的痛难点已形成挑战：{challenge.title}",
                        body="该挑战已面向全球发布，欢迎关注解决方案征集进展。",
                    )
                )
            break
        except IntegrityError:  # another challenge took the number at the same moment
            continue
    else:  # pragma: no cover - five collisions in a row
        raise Conflict("编号冲突，请重试", code="number_conflict")
    return challenge


async def notify_followers(
    *, ctx: AppContext, challenge: Challenge, kind: str, title: str, body: str
) -> int:
    """Tell everyone following one of the challenge's pain points (once per event)."""
    pain_point_ids = await ChallengeSource.filter(challenge=challenge).values_list(
        "pain_point_id", flat=True
    )
    user_ids = await Follow.filter(pain_point_id__in=list(pain_point_ids)).values_list(
        "user_id", flat=True
    )
    return await notify(
        ctx=ctx,
        user_ids=[int(u) for u in user_ids],  # type: ignore[call-overload]
        kind=kind,
        title=title,
        body=body,
        link=f"/api/v1/challenges/{challenge.public_id}",
        dedupe=f"{kind}:{challenge.public_id}",
    )


async def tell_followers(
    *, ctx: AppContext, challenge: Challenge, kind: str, title: str, body: str
) -> None:
    """:func:`notify_followers` as an after-commit hook."""
    await notify_followers(ctx=ctx, challenge=challenge, kind=kind, title=title, body=body)


async def list_challenges(
    *, ctx: AppContext, viewer: Principal | None, query: ChallengeListQuery
) -> ChallengePage:
    """Published challenges by number (staff may list drafts and those in review)."""
    status = ChallengeStatus(query.status) if query.status else ChallengeStatus.PUBLISHED
    if status != ChallengeStatus.PUBLISHED and not is_curator(viewer):
        raise ValidationFailed(fields={"status": "only staff may list unpublished challenges"})
    rows = Challenge.filter(status=status).select_related("campaign")
    if query.campaign:
        rows = rows.filter(campaign__public_id=query.campaign)
    if query.category:
        rows = rows.filter(category=query.category)
    scope = scope_of("challenges", query.campaign, query.category, status.value)
    if query.cursor:
        (last_id,) = decode_cursor(
            query.cursor, scope=scope, secret=ctx.settings.cursor_key, shape=(int,)
        )
        rows = rows.filter(id__gt=last_id)
    page = await rows.order_by("id").limit(query.limit + 1)
    more = len(page) > query.limit
    page = page[: query.limit]
    now = ctx.clock.now()
    return ChallengePage(
        items=await challenges_out(page, now=now),
        next_cursor=(
            encode_cursor([page[-1].id], scope=scope, secret=ctx.settings.cursor_key)
            if more
            else None
        ),
    )


async def published_for_booklet(*, campaign: Campaign, now: datetime) -> list[ChallengeOut]:
    """Every published challenge of a campaign, by number."""
    rows = await Challenge.filter(campaign=campaign, status=ChallengeStatus.PUBLISHED).order_by(
        "number"
    )
    for row in rows:
        row.campaign = campaign
    return await challenges_out(rows, now=now)


async def follow(*, ctx: AppContext, actor: Principal, pain_point_id: str, on: bool) -> None:
    """Follow or unfollow a pain point (one the public can see, or one's own)."""
    item = await get_pain_point_or_raise(pain_point_id, principal=actor)
    user = await User.get(public_id=actor.user_id)
    if on:
        try:
            await Follow.create(pain_point=item, user=user, created_at=ctx.clock.now())
        except IntegrityError:
            return
    else:
        await Follow.filter(pain_point=item, user=user).delete()


async def close_due_submissions(*, ctx: AppContext) -> int:
    """Scheduled: record the close of submissions for challenges past their deadline."""
    now = ctx.clock.now()
    due = await Challenge.filter(
        status=ChallengeStatus.PUBLISHED,
        submission_deadline__lte=now,
        submissions_closed_at__isnull=True,
    )
    closed = 0
    for challenge in due:
        async with unit_of_work():
            updated = await Challenge.filter(
                id=challenge.id, submissions_closed_at__isnull=True
            ).update(submissions_closed_at=now)
            if updated:
                await record(
                    ctx=ctx,
                    actor=None,
                    action="challenge.submissions_closed",
                    obj=("challenge", challenge.public_id),
                )
        if updated:
            closed += 1
    return closed
