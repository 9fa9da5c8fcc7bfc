"""Merging duplicates: a source's voters carry over to the target, each person counted once.

The rows move in one transaction; the live counters follow after it commits.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q, Subquery
from tortoise.functions import Count

from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict, Unprocessable, ValidationFailed
from backend.uow import unit_of_work
from crowdsource import counters
from crowdsource.models import Campaign, Merge, PainPoint, Participant, Status, Vote
from crowdsource.pain_points import get_pain_point_or_raise
from crowdsource.schemas import MergeIn
from crowdsource.visibility import listed_statuses

log = logging.getLogger("smartcircle.crowdsource")

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
    listed = listed_statuses(campaign)
    if target.status not in listed:
        raise Unprocessable(
            "只能合并到公开列出的痛点（先审后发的活动中须已审核有效）",
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
    if source.duplicate_of_id not in (None, target.id):
        raise Unprocessable(
            "该痛点已被判定为另一条痛点的重复项",
            code="duplicate_of_other",
            fields={"source": "已是另一条痛点的重复项"},
        )
    reason = data.reason.strip()
    for attempt in range(MERGE_ATTEMPTS):
        now = ctx.clock.now()
        try:
            async with unit_of_work() as uow:
                await _claim_pair(
                    target=target,
                    source=source,
                    listed=listed,
                    actor=actor,
                    reason=reason,
                    now=now,
                )
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
                uow.after_commit(
                    partial(
                        _move_counters,
                        ctx=ctx,
                        campaign=campaign,
                        source=source.public_id,
                        target=target.public_id,
                        moved=moved,
                    )
                )
            break
        except IntegrityError:
            # A vote for the target landed while we moved votes: start again from the top.
            if attempt == MERGE_ATTEMPTS - 1:
                raise Conflict("合并时有新的投票，请重试", code="merge_conflict") from None
    return await get_pain_point_or_raise(target.public_id, principal=actor)


async def _claim_pair(
    *,
    target: PainPoint,
    source: PainPoint,
    listed: tuple[Status, ...],
    actor: Principal,
    reason: str,
    now: datetime,
) -> None:
    """Re-check both items under row locks taken in id order (so two merges cannot deadlock)."""
    for pk in sorted((target.id, source.id)):
        if pk == target.id:
            claimed = await PainPoint.filter(id=pk, status__in=listed).update(updated_at=now)
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
        async with unit_of_work():
            moved, doubled = await _fold_votes(
                source_pk=source_pk, target_pk=root, campaign_pk=campaign.id
            )
        folded += sum(moved.values()) + sum(doubled.values())
    if folded:
        log.warning("late votes on merged pain points folded", extra={"votes": folded})
    return folded
