"""Live vote counters and the ranking in the key-value store, rebuilt from the database.

The database stores every vote (``crowdsource_vote``) and is the truth. Per campaign the KV holds
four sorted sets, member = pain point public id, score = votes:

* ``cs:<campaign>:votes`` — all votes (the ranking),
* ``cs:<campaign>:votes:<audience>`` — votes per audience (resident, enterprise, department),

and a marker ``cs:<campaign>:built`` saying the sets were rebuilt from the database since the
store was last emptied. A vote or withdrawal first makes sure the marker exists (rebuilding under
a lock if not), then commits in the database, then adds ±1 to the sets: the votes of one batch
(:mod:`crowdsource.ballots`) in one pipeline, which also reads back the counts they answer with.
When the store is unreachable the vote still stands: the ±1 is dropped
(``backend.kv_resilience``), counts are read from the database meanwhile, and the reconciliation
job repairs the sets afterwards. :func:`rebuild` (the reconciliation job, and the first use after
the store was emptied) writes the exact database counts back. A rebuild that races live votes can
be off by the votes committed during it. The next reconciliation repairs that, so the
counts equal the database's once reconciliation has run in a quiet moment.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from redis.exceptions import RedisError
from tortoise.functions import Count

from backend.context import AppContext
from backend.kv import LockNotAcquired
from backend.kv_resilience import KeyValueUnavailable
from crowdsource.models import Audience, Campaign, PainPoint, Vote

log = logging.getLogger("smartcircle.crowdsource")
AUDIENCES = tuple(Audience)
KV_ERRORS = (RedisError, OSError, ConnectionError, LockNotAcquired)
Counts = dict[str, dict[str, int]]  # pain point public id -> {"total"|audience: votes}


def total_key(campaign: Campaign) -> str:
    return f"cs:{campaign.public_id}:votes"


def audience_key(campaign: Campaign, audience: Audience | str) -> str:
    return f"cs:{campaign.public_id}:votes:{audience}"


def built_key(campaign: Campaign) -> str:
    return f"cs:{campaign.public_id}:built"


async def database_counts(*, campaign: Campaign) -> Counts:
    """Votes per pain point and audience, counted in the database."""
    rows = (
        await Vote.filter(campaign_id=campaign.id)
        .annotate(n=Count("id"))
        .group_by("pain_point_id", "audience")
        .values("pain_point_id", "audience", "n")
    )
    ids = dict(
        await PainPoint.filter(campaign_id=campaign.id).values_list("id", "public_id")  # type: ignore[arg-type]
    )
    counts: Counts = {}
    for row in rows:
        entry = counts.setdefault(str(ids[row["pain_point_id"]]), _empty())
        entry[str(row["audience"])] += int(row["n"])
        entry["total"] += int(row["n"])
    return counts


def _empty() -> dict[str, int]:
    return {"total": 0, **{a.value: 0 for a in AUDIENCES}}


async def rebuild(*, ctx: AppContext, campaign: Campaign) -> int:
    """Write the database's counts into the KV sets; the number of members corrected."""
    kv = ctx.kv
    keys = {"total": total_key(campaign)} | {a.value: audience_key(campaign, a) for a in AUDIENCES}
    # Read the sets first: an unreachable store fails here, before any counting in the database.
    stored = {part: dict(await kv.ztop(key, 0, -1)) for part, key in keys.items()}
    counts = await database_counts(campaign=campaign)
    corrected = 0
    for part, key in keys.items():
        wanted = {pid: float(c[part]) for pid, c in counts.items() if c[part]}
        current = stored[part]
        stale = [m for m in current if m not in wanted]
        if stale:
            await kv.zrem(key, *stale)
        wrong = {m: s for m, s in wanted.items() if current.get(m) != s}
        if wrong:
            await kv.zadd(key, wrong)
        corrected += len(stale) + len(wrong)
    await kv.set(built_key(campaign), "1")
    return corrected


async def ensure_built(*, ctx: AppContext, campaign: Campaign) -> None:
    """Rebuild the campaign's sets from the database if the store lost them."""
    kv = ctx.kv
    if kv.degraded:  # the sets cannot be read or written: callers count in the database
        raise KeyValueUnavailable("vote counters unreachable")
    if await kv.exists(built_key(campaign)):
        return
    async with kv.hold(f"cs:{campaign.public_id}:rebuild", ttl=60, wait=15):
        if not await kv.exists(built_key(campaign)):
            fixed = await rebuild(ctx=ctx, campaign=campaign)
            log.info(
                "vote counters rebuilt", extra={"campaign": campaign.public_id, "fixed": fixed}
            )


Move = tuple[Campaign, str, Audience, int]  # campaign, pain point public id, audience, amount


async def bump(
    *, ctx: AppContext, moves: list[Move], items: dict[tuple[int, str], Campaign]
) -> dict[tuple[int, str], dict[str, int]]:
    """Add each move's votes to the live counters, then read the counts of ``items`` ((campaign
    id, pain point public id) -> campaign): one round trip for a whole batch of votes."""
    amounts: dict[tuple[str, str], int] = {}
    for campaign, pain_point, audience, amount in moves:
        for key in (total_key(campaign), audience_key(campaign, audience)):
            amounts[(key, pain_point)] = amounts.get((key, pain_point), 0) + amount
    increments = [(key, member, float(n)) for (key, member), n in amounts.items() if n]
    reads = [
        (key, pain_point)
        for (_, pain_point), campaign in items.items()
        for key in _count_keys(campaign)
    ]
    scores = iter(await ctx.kv.zpipeline(increments, reads))
    return {item: _entry(scores) for item in items}


def _count_keys(campaign: Campaign) -> list[str]:
    """The keys of one item's counts, in the order :func:`_entry` reads them."""
    return [total_key(campaign)] + [audience_key(campaign, a) for a in AUDIENCES]


def _entry(scores: Iterator[float | None]) -> dict[str, int]:
    entry = _empty()
    for part in ("total", *(a.value for a in AUDIENCES)):
        entry[part] = int(next(scores) or 0)
    return entry


async def read_all(*, ctx: AppContext, campaign: Campaign) -> Counts:
    """Live counts of every pain point of the campaign that has votes."""
    counts: Counts = {}
    for pid, score in await ctx.kv.ztop(total_key(campaign), 0, -1):
        counts.setdefault(pid, _empty())["total"] = int(score)
    for audience in AUDIENCES:
        for pid, score in await ctx.kv.ztop(audience_key(campaign, audience), 0, -1):
            counts.setdefault(pid, _empty())[audience.value] = int(score)
    return counts


async def read_one(*, ctx: AppContext, campaign: Campaign, pain_point: str) -> dict[str, int]:
    """Live counts of one pain point (one round trip)."""
    reads = [(key, pain_point) for key in _count_keys(campaign)]
    return _entry(iter(await ctx.kv.zpipeline([], reads)))


async def database_by_pk(pain_point_pks: list[int]) -> dict[int, dict[str, int]]:
    """Counts ("total" and per audience) of these pain points, from the database."""
    counts = {pk: _empty() for pk in pain_point_pks}
    if not pain_point_pks:
        return counts
    rows = (
        await Vote.filter(pain_point_id__in=pain_point_pks)
        .annotate(n=Count("id"))
        .group_by("pain_point_id", "audience")
        .values("pain_point_id", "audience", "n")
    )
    for row in rows:
        entry = counts[int(row["pain_point_id"])]
        entry[str(row["audience"])] += int(row["n"])
        entry["total"] += int(row["n"])
    return counts


async def database_one(*, pain_point_pk: int) -> dict[str, int]:
    """Counts of one pain point from the database (when the store is unreachable)."""
    return (await database_by_pk([pain_point_pk]))[pain_point_pk]
