"""Moderation and reports: curators' decisions, their queue, and reports that hide an item."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F, Q

from backend import paging
from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict, RateLimited, Unprocessable, ValidationFailed
from backend.uow import unit_of_work
from crowdsource.campaigns import get_campaign_or_raise, parse_time
from crowdsource.models import PainPoint, Phase, Report, Status
from crowdsource.pain_points import (
    campaign_counts,
    get_pain_point_or_raise,
    user_pk,
    with_links,
)
from crowdsource.phases import phases_at
from crowdsource.presenters import pain_point_out, report_out
from crowdsource.schemas import ModerationIn, PainPointList, ReportOut
from crowdsource.visibility import listed_statuses

REPORTS_PER_HOUR = 30


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
            public_id=data.duplicate_of, campaign_id=item.campaign_id
        )
        if target is None:
            raise ValidationFailed(fields={"duplicate_of": "本活动中没有这条痛点"})
        if target.id == item.id:
            raise Unprocessable(
                "不能与自身重复", code="duplicate_of_self", fields={"duplicate_of": "不能是本条"}
            )
        if target.status not in listed_statuses(item.campaign):
            raise Unprocessable(
                "目标痛点须为公开列出的痛点（先审后发的活动中须已审核有效）",
                code="duplicate_target_not_listed",
                fields={"duplicate_of": target.status.value},
            )
    elif data.duplicate_of:
        raise ValidationFailed(fields={"duplicate_of": "只有判定为重复时才能填写"})
    if item.status is Status.DUPLICATE:
        raise Conflict("该痛点已判定为重复", code="already_duplicate")
    previous = item.status
    now = ctx.clock.now()
    async with unit_of_work():
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
    secret = ctx.settings.cursor_key
    qs = PainPoint.filter(campaign_id=campaign.id)
    if status == "submitted":
        qs = qs.filter(status=Status.SUBMITTED, hidden=False)
    elif status == "hidden":
        qs = qs.filter(hidden=True)
    else:
        qs = qs.filter(Q(status=Status.SUBMITTED) | Q(hidden=True))
    if cursor:
        at, pid = paging.decode_cursor(cursor, scope=query, secret=secret, shape=(str, str))
        moment = parse_time(at)
        qs = qs.filter(Q(created_at__gt=moment) | Q(created_at=moment, public_id__gt=pid))
    rows = await qs.order_by("created_at", "public_id").limit(limit + 1)
    page = rows[:limit]
    next_cursor = None
    if len(rows) > limit:
        last = page[-1]
        next_cursor = paging.encode_cursor(
            [last.created_at.isoformat(), last.public_id], scope=query, secret=secret
        )
    counts = await campaign_counts(ctx=ctx, campaign=campaign)
    await with_links(page)
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
    reporter_pk = await user_pk(principal)
    if item.author_id == reporter_pk:
        raise Unprocessable("不能举报自己提交的痛点", code="own_pain_point")
    now = ctx.clock.now()
    hidden_now = False
    try:
        async with unit_of_work():
            await Report.create(
                pain_point_id=item.id, user_id=reporter_pk, reason=reason.strip(), created_at=now
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
    return report_out(item, hidden=hidden_now or item.hidden)
