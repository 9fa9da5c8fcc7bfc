"""Group commit for votes: the one-vote and budget rule, applied to a batch in one transaction.

Every vote goes through :func:`submit`. Concurrent votes of one worker (one event loop) queue up;
a single flusher takes what is queued — at most one vote per person and campaign, later ones of
the same person wait for the next batch — and :func:`record_votes` writes the batch with a few
set-based statements in ONE transaction. Only after COMMIT is each waiter answered, with its own
outcome; then the live counters of the whole batch move in one key-value round trip, which also
reads back the counts the answers show. While a batch is being written the next one gathers, so
a lone vote waits for nothing and a burst shares commits.

:func:`record_votes` is the rule, for PostgreSQL and SQLite alike (both speak ``RETURNING`` and
``ON CONFLICT``), in the order the checks always had:

1. ``account_disabled``: the person's account is not active (the batch looks every voter up by
   public id in one statement, in its transaction: the request itself reads no user row);
2. ``already_voted``: the UNIQUE (pain point, person) pair — ``INSERT … ON CONFLICT DO NOTHING
   RETURNING``, what it did not insert was there already;
3. ``vote_budget_exhausted``: the person's tally (``crowdsource_participant``) is locked and
   ``UPDATE … SET votes = votes + 1 WHERE votes < budget RETURNING``; the votes of those it did
   not count are deleted again before COMMIT.

Rows are written in one order (pairs sorted, tallies sorted) so that two workers' batches, and a
withdrawal (which deletes its vote, then decrements the tally under the same row lock), wait for
each other instead of deadlocking; a batch that PostgreSQL still picks as a deadlock victim is
written once more. A batch that fails (the database went away) fails every one of
its waiters with the error and stores nothing: it was one transaction.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from asyncpg.exceptions import DeadlockDetectedError
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient

from backend.context import AppContext
from backend.uow import current_unit, unit_of_work
from crowdsource import counters
from crowdsource.models import Audience, Campaign

log = logging.getLogger("smartcircle.crowdsource")

ACCEPTED = "accepted"
ACCOUNT_DISABLED = "account_disabled"
ALREADY_VOTED = "already_voted"
BUDGET_EXHAUSTED = "vote_budget_exhausted"
MAX_BATCH = 256  # 8 values per vote: far below either database's limit on parameters


@dataclass(frozen=True, slots=True)
class Ballot:
    """One vote to record: who, for what, as which audience, from where."""

    campaign_id: int
    pain_point_id: int
    user_public_id: str
    audience: Audience
    created_at: datetime
    ip_hash: str | None
    net_hash: str | None
    device_hash: str | None


class VoteNotRecorded(Exception):
    """The batch holding this vote failed; ``__cause__`` is why (a database outage: 503)."""


# -- the rule ---------------------------------------------------------------------------


def _marks(rows: int, width: int) -> str:
    """``(?, ?), (?, ?)``: placeholders for ``rows`` tuples (SQLite)."""
    return ", ".join("(" + ", ".join("?" * width) + ")" for _ in range(rows))


def _in(count: int) -> str:
    """``?, ?``: an IN list (SQLite)."""
    return ", ".join("?" * count)


class _Sql:
    """The statements of :func:`record_votes`. PostgreSQL gets one text per statement whatever
    the batch size (the values travel as arrays), so each pooled connection prepares it once:
    with a text per size, a burst's sizes outgrew asyncpg's statement cache and most statements
    paid an extra round trip to be prepared again. SQLite gets placeholder lists."""

    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.pg = conn.capabilities.dialect == "postgres"

    def users(self, public_ids: list[str]) -> tuple[str, list[Any]]:
        where = "= ANY($1::text[])" if self.pg else f"IN ({_in(len(public_ids))})"
        query = f"SELECT id, public_id FROM core_user WHERE is_active AND public_id {where}"  # noqa: S608
        return query, [public_ids] if self.pg else public_ids

    def insert_votes(self, rows: list[tuple[Any, ...]]) -> tuple[str, list[Any]]:
        columns = (
            "pain_point_id, campaign_id, user_id, audience, created_at, ip_hash, net_hash,"
            " device_hash"
        )
        if self.pg:
            values = (
                "SELECT * FROM unnest($1::int[], $2::int[], $3::int[], $4::text[],"
                " $5::timestamptz[], $6::text[], $7::text[], $8::text[])"
            )
            params: list[Any] = [list(column) for column in zip(*rows, strict=True)]
        else:
            values = f"VALUES {_marks(len(rows), 8)}"
            params = [x for row in rows for x in row]
        return (
            f"INSERT INTO crowdsource_vote ({columns}) {values}"
            " ON CONFLICT (pain_point_id, user_id) DO NOTHING RETURNING id, pain_point_id, user_id"
        ), params

    def lock_tallies(self, tallies: list[tuple[int, int]]) -> tuple[str, list[Any]]:
        if self.pg:
            values = "SELECT c, u, 0, 0 FROM unnest($1::int[], $2::int[]) AS t(c, u)"
            params: list[Any] = [[c for c, _ in tallies], [u for _, u in tallies]]
        else:
            values = f"VALUES {_marks(len(tallies), 4)}"
            params = [x for pair in tallies for x in (*pair, 0, 0)]
        return (
            "INSERT INTO crowdsource_participant (campaign_id, user_id, submissions, votes)"  # noqa: S608
            f" {values} ON CONFLICT (campaign_id, user_id) DO UPDATE"
            " SET votes = crowdsource_participant.votes RETURNING id, campaign_id, user_id"
        ), params

    def _ids(self, ids: list[int], kind: str) -> tuple[str, list[Any]]:
        if self.pg:
            return f"= ANY($1::{kind}[])", [ids]
        return f"IN ({_in(len(ids))})", list(ids)

    def count_within_budget(self, ids: list[int]) -> tuple[str, list[Any]]:
        where, params = self._ids(ids, "int")
        return (
            f"UPDATE crowdsource_participant SET votes = votes + 1 WHERE id {where}"  # noqa: S608
            " AND votes < COALESCE((SELECT c.vote_budget FROM crowdsource_campaign c"
            " WHERE c.id = crowdsource_participant.campaign_id), votes + 1) RETURNING id"
        ), params

    def delete_votes(self, ids: list[int]) -> tuple[str, list[Any]]:
        where, params = self._ids(ids, "bigint")
        return f"DELETE FROM crowdsource_vote WHERE id {where}", params  # noqa: S608


async def record_votes(ballots: Sequence[Ballot]) -> list[str]:
    """Record a batch of votes inside the caller's transaction; each one's outcome (in order).

    At most one ballot per (campaign, person). The transaction must commit for ``ACCEPTED`` to
    hold; anything else stored nothing for that ballot.
    """
    if len({(b.campaign_id, b.user_public_id) for b in ballots}) != len(ballots):
        raise ValueError("at most one vote per person and campaign in a batch")
    conn = connections.get("default")
    sql = _Sql(conn)
    outcome = dict.fromkeys(range(len(ballots)), ACCEPTED)
    # 1. The voters' ids, active accounts only.
    rows = await conn.execute_query_dict(*sql.users(sorted({b.user_public_id for b in ballots})))
    user = {str(r["public_id"]): int(r["id"]) for r in rows}
    for i, b in enumerate(ballots):
        if b.user_public_id not in user:
            outcome[i] = ACCOUNT_DISABLED
    # 2. The UNIQUE pair: what is not inserted was there already.
    wanted = sorted(
        (i for i in outcome if outcome[i] == ACCEPTED),
        key=lambda i: (ballots[i].pain_point_id, user[ballots[i].user_public_id]),
    )
    if not wanted:
        return [outcome[i] for i in range(len(ballots))]
    inserted = await conn.execute_query_dict(
        *sql.insert_votes(
            [
                (
                    b.pain_point_id,
                    b.campaign_id,
                    user[b.user_public_id],
                    b.audience.value,
                    b.created_at,
                    b.ip_hash,
                    b.net_hash,
                    b.device_hash,
                )
                for b in (ballots[i] for i in wanted)
            ]
        )
    )
    vote_id = {(int(r["pain_point_id"]), int(r["user_id"])): int(r["id"]) for r in inserted}
    for i in wanted:
        if (ballots[i].pain_point_id, user[ballots[i].user_public_id]) not in vote_id:
            outcome[i] = ALREADY_VOTED
    counted = [i for i in wanted if outcome[i] == ACCEPTED]
    if not counted:
        return [outcome[i] for i in range(len(ballots))]
    # 3. The budget: lock each tally (creating it if new) in one order, then one conditional
    # UPDATE counts what fits.
    tallies = sorted({(ballots[i].campaign_id, user[ballots[i].user_public_id]) for i in counted})
    locked = await conn.execute_query_dict(*sql.lock_tallies(tallies))
    tally_id = {(int(r["campaign_id"]), int(r["user_id"])): int(r["id"]) for r in locked}
    bumped = await conn.execute_query_dict(*sql.count_within_budget(sorted(tally_id.values())))
    within = {int(r["id"]) for r in bumped}
    over = []
    for i in counted:
        b, pk = ballots[i], user[ballots[i].user_public_id]
        if tally_id[(b.campaign_id, pk)] not in within:
            outcome[i] = BUDGET_EXHAUSTED
            over.append(vote_id[(b.pain_point_id, pk)])
    if over:
        await conn.execute_query(*sql.delete_votes(over))
    return [outcome[i] for i in range(len(ballots))]


# -- the batcher ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Counted:
    """A waiter's answer: its outcome and, if accepted, its item's live counts (None when the
    store could not tell: the caller counts in the database)."""

    outcome: str
    counts: dict[str, int] | None = None


@dataclass(slots=True)
class _Waiter:
    ctx: AppContext
    campaign: Campaign
    item_public_id: str
    ballot: Ballot
    future: asyncio.Future[Counted] = field(repr=False)


class _Batcher:
    """The queue and the single flusher of one event loop."""

    def __init__(self) -> None:
        self.queue: list[_Waiter] = []
        self.flusher: asyncio.Task[None] | None = None

    def take(self) -> list[_Waiter]:
        """The next batch: the oldest vote of each person and campaign, up to MAX_BATCH."""
        batch: list[_Waiter] = []
        rest: list[_Waiter] = []
        people: set[tuple[int, str]] = set()
        for waiter in self.queue:
            if waiter.future.done():  # the caller went away before its vote was written
                continue
            person = (waiter.ballot.campaign_id, waiter.ballot.user_public_id)
            if person in people or len(batch) >= MAX_BATCH:
                rest.append(waiter)
            else:
                people.add(person)
                batch.append(waiter)
        self.queue = rest
        return batch

    async def run(self) -> None:
        while self.queue:
            batch = self.take()
            try:
                await _flush(batch)
            except Exception as exc:  # before the transaction: nothing was written
                _fail(batch, exc)
            except BaseException:  # the loop is shutting down
                for waiter in batch + self.queue:
                    waiter.future.cancel()
                raise


_batchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Batcher] = (
    weakref.WeakKeyDictionary()
)


async def submit(
    *, ctx: AppContext, campaign: Campaign, item_public_id: str, ballot: Ballot
) -> Counted:
    """Queue one vote and wait until the batch holding it has committed (or failed)."""
    if current_unit() is not None:  # a vote commits on its own, never inside another unit
        raise RuntimeError("votes are recorded in a transaction of their own")
    loop = asyncio.get_running_loop()
    batcher = _batchers.get(loop)
    if batcher is None:
        batcher = _batchers[loop] = _Batcher()
    future: asyncio.Future[Counted] = loop.create_future()
    batcher.queue.append(_Waiter(ctx, campaign, item_public_id, ballot, future))
    if batcher.flusher is None or batcher.flusher.done():
        batcher.flusher = loop.create_task(batcher.run(), name="vote-batcher")
    return await future


async def _flush(batch: list[_Waiter]) -> None:
    """Write one batch, then answer its waiters (never raises: failures go to the waiters)."""
    ctx = batch[0].ctx
    campaigns = {w.campaign.id: w.campaign for w in batch}
    for campaign in campaigns.values():
        # Before the votes commit: a rebuild after them would count them twice.
        try:
            await counters.ensure_built(ctx=ctx, campaign=campaign)
        except counters.KV_ERRORS:
            log.warning("vote counters unreachable, reconciliation will catch up")
    for attempt in range(2):
        try:
            async with unit_of_work():
                outcomes = await record_votes([w.ballot for w in batch])
            break
        except Exception as exc:
            if attempt == 0 and _deadlocked(exc):  # rolled back: writing it again is safe
                log.warning("vote batch chosen as a deadlock victim, written again")
                continue
            _fail(batch, exc)
            return
    accepted = [w for w, o in zip(batch, outcomes, strict=True) if o == ACCEPTED]
    try:
        counts = await _move_counters(ctx, accepted)
    except Exception:  # the votes stand: the counters are rebuilt by reconciliation
        log.exception("vote counters not moved")
        counts = {}
    for waiter, outcome in zip(batch, outcomes, strict=True):
        if not waiter.future.done():
            key = (waiter.campaign.id, waiter.item_public_id)
            found = counts.get(key) if outcome == ACCEPTED else None
            waiter.future.set_result(Counted(outcome, found))


def _deadlocked(exc: BaseException) -> bool:
    """Whether PostgreSQL aborted the transaction to break a deadlock (with a rare set-based
    admin write — a merge, a discarded flag — that locks tallies in another order)."""
    current: BaseException | None = exc
    for _ in range(5):
        if current is None:
            return False
        if isinstance(current, DeadlockDetectedError):
            return True
        first = current.args[0] if current.args else None
        current = current.__cause__ or (first if isinstance(first, BaseException) else None)
    return False


def _fail(batch: list[_Waiter], exc: Exception) -> None:
    for waiter in batch:
        if not waiter.future.done():
            failed = VoteNotRecorded("the vote's batch was not recorded")
            failed.__cause__ = exc
            waiter.future.set_exception(failed)


async def _move_counters(
    ctx: AppContext, accepted: list[_Waiter]
) -> dict[tuple[int, str], dict[str, int]]:
    """+1 on the live counters for every accepted vote and the counts of their items, in one
    round trip; empty if the store is unreachable (the counts then come from the database)."""
    if not accepted:
        return {}
    moves = [(w.campaign, w.item_public_id, w.ballot.audience, 1) for w in accepted]
    items = {(w.campaign.id, w.item_public_id): w.campaign for w in accepted}
    try:
        return await counters.bump(ctx=ctx, moves=moves, items=items)
    except counters.KV_ERRORS:
        log.warning("vote counters unreachable, reconciliation will catch up")
        return {}
