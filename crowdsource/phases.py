"""Campaign phases: computed from the schedule and the clock, each transition recorded once.

The phase of a campaign is always computed from its schedule and the clock (:func:`phases_at`), so
a rule is exact at a boundary even if the phase job has not run yet. The job
(:func:`advance_phases`, through :func:`sync_phase`) records each transition once, audited.
"""

from __future__ import annotations

import logging
from datetime import datetime

from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict, ValidationFailed
from backend.uow import unit_of_work
from crowdsource.models import Campaign, Phase

log = logging.getLogger("smartcircle.crowdsource")

SCHEDULE = (
    "collecting_starts_at",
    "collecting_ends_at",
    "voting_starts_at",
    "voting_ends_at",
    "closes_at",
)
ORDER = {p: i for i, p in enumerate(Phase)}


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


def require_phase(campaign: Campaign, now: datetime, phase: Phase, what: str) -> None:
    """409 ``phase_closed`` unless ``phase`` is open at ``now``."""
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
    async with unit_of_work() as uow:
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
            campaign.phase_state, campaign.phase, campaign.phase_changed_at = (
                new_state,
                main_phase(opened),
                now,
            )

            async def logged() -> None:
                log.info("campaign phase", extra={"campaign": campaign.public_id, "to": new_state})

            uow.after_commit(logged)
    return bool(changed)


async def advance_phases(*, ctx: AppContext) -> int:
    """Record every due phase transition; the number of campaigns that moved."""
    moved = 0
    for campaign in await Campaign.exclude(phase=Phase.CLOSED).order_by("id"):
        moved += await sync_phase(ctx=ctx, campaign=campaign)
    return moved
