"""Who sees a pain point: one rule, the campaign's moderation policy, for every surface.

A campaign is either **pre-moderated** (``pre``, the default: a submission is public only once a
curator marks it valid) or **post-moderated** (``post``: public at once, withdrawn when a curator
judges it invalid). Under both, an item hidden by reports is not public until a curator reviews
it, and a duplicate stays readable as a pointer to its original.

:data:`PUBLIC_STATUSES` is the whole rule; :func:`is_public` applies it to one item and
:func:`public_q` / :func:`listed_q` turn it into query filters, so the public list, the ranking,
the detail, Open311, similar-item suggestions, statistics and voting all agree. Authors and
curators see non-public items through their own paths (detail, moderation queue, exports).
"""

from __future__ import annotations

from typing import Any

from tortoise.expressions import Q

from crowdsource.models import Campaign, ModerationPolicy, PainPoint, Status

# The statuses whose items are public (when not hidden), per moderation policy.
PUBLIC_STATUSES: dict[ModerationPolicy, tuple[Status, ...]] = {
    ModerationPolicy.PRE: (Status.VALID, Status.DUPLICATE),
    ModerationPolicy.POST: (Status.SUBMITTED, Status.VALID, Status.DUPLICATE),
}
# Listed (in lists and rankings, suggested, votable): public and not a duplicate of another.
NOT_LISTED = (Status.DUPLICATE,)

HIDDEN = "hidden"
INVALID = "invalid"
PENDING_REVIEW = "pending_review"

NOTICES = {
    ModerationPolicy.PRE: "已收到，审核通过后将公开并参与投票",
    ModerationPolicy.POST: "已收到并已公开；经审核判定无效的将不再公开",
}


def policy_of(campaign: Campaign) -> ModerationPolicy:
    return ModerationPolicy(campaign.moderation)


def why_not_public(item: PainPoint, campaign: Campaign) -> str | None:
    """Why the public cannot see this item: ``hidden``, ``invalid``, ``pending_review`` or None."""
    return why_not_public_state(Status(item.status), item.hidden, campaign)


def why_not_public_state(status: Status, hidden: bool, campaign: Campaign) -> str | None:
    """:func:`why_not_public` for a row read as values (exports)."""
    if hidden:
        return HIDDEN
    if status in PUBLIC_STATUSES[policy_of(campaign)]:
        return None
    return INVALID if status is Status.INVALID else PENDING_REVIEW


def is_public(item: PainPoint, campaign: Campaign) -> bool:
    """Whether everyone may see this pain point: the one decision every surface follows."""
    return why_not_public(item, campaign) is None


def is_listed(item: PainPoint, campaign: Campaign) -> bool:
    """Public and not a duplicate: in lists and rankings, suggested as similar, votable."""
    return is_public(item, campaign) and item.status not in NOT_LISTED


def listed_statuses(campaign: Campaign) -> tuple[Status, ...]:
    """The statuses of the campaign's listed items (hidden ones aside)."""
    return tuple(s for s in PUBLIC_STATUSES[policy_of(campaign)] if s not in NOT_LISTED)


def listed_q(campaign: Campaign, prefix: str = "") -> Q:
    """Filter: the campaign's listed items (``prefix`` reaches them through a relation)."""
    conditions: dict[str, Any] = {
        f"{prefix}hidden": False,
        f"{prefix}status__in": listed_statuses(campaign),
    }
    return Q(**conditions)


def public_q() -> Q:
    """Filter over pain points of any campaign: the public ones, each by its campaign's policy."""
    by_policy = [
        Q(campaign__moderation=policy, status__in=statuses)
        for policy, statuses in PUBLIC_STATUSES.items()
    ]
    either = by_policy[0]
    for clause in by_policy[1:]:
        either |= clause
    return Q(hidden=False) & either


def submission_notice(campaign: Campaign) -> str:
    """What a submitter is told about when their pain point becomes public."""
    return NOTICES[policy_of(campaign)]
