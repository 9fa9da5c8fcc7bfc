"""One person, one vote: casting and withdrawing votes, and reconciling what was counted.

A vote is checked here (rate limits, phase, the item, the audience), then recorded by the group
commit of :mod:`crowdsource.ballots`: the UNIQUE pair and the person's budget, in one transaction
shared with the other votes of the moment, answered only after it commits. The live counters in
the key-value store follow after the commit (:mod:`crowdsource.counters`). A withdrawal is rare
and commits on its own, under the same row locks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from tortoise import connections
from tortoise.expressions import F
from tortoise.functions import Count

from backend.access import Principal
from backend.coalesce import Coalesced
from backend.context import AppContext
from backend.errors import AppError, Conflict, Forbidden, NotFound, RateLimited, Unprocessable
from backend.uow import unit_of_work
from crowdsource import ballots, counters, integrity
from crowdsource.merging import fold_leftover_votes
from crowdsource.models import Audience, Campaign, PainPoint, Participant, Phase, Status, Vote
from crowdsource.pain_points import user_pk
from crowdsource.phases import require_phase
from crowdsource.presenters import vote_out
from crowdsource.schemas import VoteOut
from crowdsource.visibility import HIDDEN, PENDING_REVIEW, why_not_public_state
from crowdsource.voices import voter_audience

log = logging.getLogger("smartcircle.crowdsource")


async def _check_vote_rate(
    *, ctx: AppContext, campaign: Campaign, principal: Principal, client_ip: str
) -> None:
    secret = ctx.settings.origin_key
    limits = [
        (
            f"cs:vote:user:{campaign.public_id}:{principal.user_id}",
            campaign.votes_per_minute_person,
            60.0,
        ),
        (
            f"cs:vote:ip:{campaign.public_id}:{integrity.ip_hash(secret, client_ip)}",
            campaign.votes_per_minute_ip,
            60.0,
        ),
    ]
    # Both in one round trip, stopping at the first refusal (as one hit after the other would).
    for result in await ctx.kv.hit_all(limits):
        if not result.allowed:
            raise RateLimited(
                result.retry_after, "投票过于频繁，请稍后再试", code="vote_rate_limited"
            )


async def _check_votable(item: Votable, campaign: Campaign) -> None:
    """Only listed items take votes: public under the campaign's policy, not a duplicate."""
    reason = why_not_public_state(item.status, item.hidden, campaign)
    if reason == HIDDEN:
        raise Conflict("该痛点正在复核中，暂不能投票", code="pain_point_hidden")
    if reason == PENDING_REVIEW:
        raise Conflict("该痛点尚待审核，审核通过后才能投票", code="pain_point_pending_review")
    if item.status is Status.INVALID:
        raise Unprocessable("该痛点已被判定无效，不能投票", code="pain_point_invalid")
    if item.status is Status.DUPLICATE:
        target = await PainPoint.filter(id=item.duplicate_of_id).values_list("public_id", flat=True)
        raise Unprocessable(
            "该痛点是重复项，请为原痛点投票",
            code="pain_point_duplicate",
            fields={"duplicate_of": str(target[0]) if target else ""},
        )


async def _bump_and_count(
    *, ctx: AppContext, campaign: Campaign, item: PainPoint, audience: Audience, amount: int
) -> dict[str, int]:
    """Move the live counters after a commit and read the item's counts (the database's when
    the store is unreachable: reconciliation repairs the sets afterwards)."""
    try:
        moved = await counters.bump(
            ctx=ctx,
            moves=[(campaign, item.public_id, audience, amount)],
            items={(campaign.id, item.public_id): campaign},
        )
        return moved[(campaign.id, item.public_id)]
    except counters.KV_ERRORS:
        log.warning("vote counters unreachable, reconciliation will catch up")
        return await counters.database_one(pain_point_pk=item.id)


async def _ensure_built(*, ctx: AppContext, campaign: Campaign) -> None:
    try:
        await counters.ensure_built(ctx=ctx, campaign=campaign)
    except counters.KV_ERRORS:
        log.warning("vote counters unreachable, reconciliation will catch up")


def padded(public_ids: list[str]) -> list[str]:
    """The distinct ids, the last repeated up to a power of two: a burst's IN lists take a few
    lengths, so the query has a few texts, each prepared once per pooled connection (SQLite;
    PostgreSQL gets the ids as one array)."""
    distinct = sorted(set(public_ids))
    return distinct + distinct[-1:] * ((1 << (len(distinct) - 1).bit_length()) - len(distinct))


@dataclass(frozen=True, slots=True)
class Votable:
    """What a vote reads of its pain point: the moderation state, and the campaign."""

    id: int
    public_id: str
    status: Status
    hidden: bool
    duplicate_of_id: int | None
    campaign: Campaign


# Every column of the campaign: the row read with the item is compared whole (below).
_CAMPAIGN_COLUMNS = tuple(sorted(Campaign._meta.fields_db_projection.values()))
_CAMPAIGN_SELECT = ", ".join(f'c."{column}" AS "c_{column}"' for column in _CAMPAIGN_COLUMNS)
_ITEMS_SQL = (
    "SELECT p.id AS p_id, p.public_id AS p_public_id, p.status AS p_status,"  # noqa: S608 - names
    f" p.hidden AS p_hidden, p.duplicate_of_id AS p_duplicate_of_id, {_CAMPAIGN_SELECT}"
    f" FROM {PainPoint._meta.db_table} p JOIN {Campaign._meta.db_table} c"
    " ON c.id = p.campaign_id WHERE p.public_id "
)
# Per worker: campaign id -> (the row's values, the Campaign built from them). A campaign is
# rebuilt only when a value of its row, read in this very statement, differs: a phase, schedule
# or rule change is seen by the next vote exactly as before, only the model building is saved.
# The votes' code only reads the campaign (never assigns to it), so requests may share one.
_campaigns: dict[int, tuple[tuple[Any, ...], Campaign]] = {}
_MAX_CAMPAIGNS = 64


def _campaign_of(row: dict[str, Any]) -> Campaign:
    values = tuple(row[f"c_{column}"] for column in _CAMPAIGN_COLUMNS)
    pk = int(row["c_id"])
    kept = _campaigns.get(pk)
    if kept is not None and kept[0] == values:
        return kept[1]
    campaign = Campaign._init_from_db(**dict(zip(_CAMPAIGN_COLUMNS, values, strict=True)))
    if len(_campaigns) >= _MAX_CAMPAIGNS:
        _campaigns.clear()
    _campaigns[pk] = (values, campaign)
    return campaign


async def _load_items(public_ids: list[str]) -> list[Votable | None]:
    """The pain points (with their campaigns) that concurrent votes name, in one statement of
    one text (PostgreSQL: the ids as an array; SQLite: a padded IN list), read without building
    pain-point models."""
    conn = connections.get("default")
    params: list[Any]
    if conn.capabilities.dialect == "postgres":
        query, params = _ITEMS_SQL + "= ANY($1::text[])", [sorted(set(public_ids))]
    else:
        params = padded(public_ids)
        query = _ITEMS_SQL + f"IN ({', '.join('?' * len(params))})"
    found = {}
    for row in await conn.execute_query_dict(query, params):
        found[str(row["p_public_id"])] = Votable(
            id=int(row["p_id"]),
            public_id=str(row["p_public_id"]),
            status=Status(row["p_status"]),
            hidden=bool(row["p_hidden"]),
            duplicate_of_id=row["p_duplicate_of_id"],
            campaign=_campaign_of(row),
        )
    return [found.get(public_id) for public_id in public_ids]


# A burst of votes reads its items together: one query per round trip, not one per vote.
_votable_item = Coalesced(_load_items)


async def cast_vote(
    *,
    ctx: AppContext,
    principal: Principal,
    public_id: str,
    client_ip: str,
    device_id: str | None = None,
) -> VoteOut:
    """One vote per person per pain point while voting is open, within the budget."""
    item = await _votable_item(public_id)
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
    item: Votable,
    client_ip: str,
    device_id: str | None,
) -> VoteOut:
    campaign = item.campaign
    await _check_vote_rate(ctx=ctx, campaign=campaign, principal=principal, client_ip=client_ip)
    now = ctx.clock.now()
    require_phase(campaign, now, Phase.VOTING, "投票")
    await _check_votable(item, campaign)
    audience = await voter_audience(principal, campaign)
    ip_hash, net_hash, device_hash = integrity.origin_hashes(
        ctx.settings.origin_key, client_ip, device_id
    )
    ballot = ballots.Ballot(
        campaign_id=campaign.id,
        pain_point_id=item.id,
        user_public_id=principal.user_id,
        audience=audience,
        created_at=now,
        ip_hash=ip_hash,
        net_hash=net_hash,
        device_hash=device_hash,
    )
    counted = await ballots.submit(
        ctx=ctx, campaign=campaign, item_public_id=item.public_id, ballot=ballot
    )
    if counted.outcome == ballots.ACCOUNT_DISABLED:  # the batch looked the voter up
        raise Forbidden("账号不可用", code="account_disabled")
    if counted.outcome == ballots.ALREADY_VOTED:
        raise Conflict("你已为该痛点投过票", code="already_voted")
    if counted.outcome == ballots.BUDGET_EXHAUSTED:
        raise Unprocessable(
            f"每人在本活动最多投 {campaign.vote_budget} 票", code="vote_budget_exhausted"
        )
    counts = counted.counts
    if counts is None:  # the store could not tell
        counts = await counters.database_one(pain_point_pk=item.id)
    return vote_out(item.public_id, audience, counts)


async def withdraw_vote(
    *, ctx: AppContext, principal: Principal, public_id: str, client_ip: str
) -> VoteOut:
    """Withdraw one's vote while voting is open."""
    item = await PainPoint.get_or_none(public_id=public_id).select_related("campaign")
    if item is None:
        raise NotFound("痛点不存在", code="pain_point_not_found")
    campaign = item.campaign
    await _check_vote_rate(ctx=ctx, campaign=campaign, principal=principal, client_ip=client_ip)
    require_phase(campaign, ctx.clock.now(), Phase.VOTING, "投票")
    voter_pk = await user_pk(principal)
    vote = await Vote.get_or_none(pain_point_id=item.id, user_id=voter_pk)
    if vote is None:
        raise NotFound("你没有为该痛点投票", code="vote_not_found")
    await _ensure_built(ctx=ctx, campaign=campaign)
    async with unit_of_work():
        # The vote's row first, then the tally's: the order a batch of votes locks them in.
        if not await Vote.filter(id=vote.id).delete():
            raise NotFound("你没有为该痛点投票", code="vote_not_found")
        await Participant.filter(campaign_id=campaign.id, user_id=voter_pk, votes__gt=0).update(
            votes=F("votes") - 1
        )
    counts = await _bump_and_count(
        ctx=ctx, campaign=campaign, item=item, audience=vote.audience, amount=-1
    )
    return vote_out(item.public_id, vote.audience, counts)


# -- reconciliation and tallies ---------------------------------------------------------


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
    async with unit_of_work():
        await Participant.filter(campaign_id=campaign.id).delete()
        await Participant.bulk_create(
            [
                Participant(campaign_id=campaign.id, user_id=user, submissions=s, votes=v)
                for user, (s, v) in tally.items()
            ],
            batch_size=1000,
        )
    return len(tally)
