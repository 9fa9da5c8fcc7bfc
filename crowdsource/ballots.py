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
   public id, in its transaction: the request itself reads no user row);
2. ``already_voted``: the UNIQUE (pain point, person) pair — ``INSERT … ON CONFLICT DO NOTHING
   RETURNING``, what it did not insert was there already. On PostgreSQL steps 1 and 2 are one
   statement (the voters in a CTE the insert joins); SQLite runs them one after the other;
3. ``vote_budget_exhausted``: the person's tally (``crowdsource_participant``) is locked and
   counted in one upsert, ``INSERT … ON CONFLICT DO UPDATE SET votes = votes + 1 WHERE votes <
   budget RETURNING`` (a new tally starts at 1, at 0 if the budget is 0); the votes of those it
   did not count are deleted again before COMMIT.

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


_VOTE_COLUMNS = (
    "pain_point_id, campaign_id, user_id, audience, created_at, ip_hash, net_hash, device_hash"
)
_VOTE_CONFLICT = (
    " ON CONFLICT (pain_point_id, user_id) DO NOTHING RETURNING id, pain_point_id, user_id"
)
_BUDGET = "(SELECT b.vote_budget FROM crowdsource_campaign b WHERE b.id = {campaign})"
# A new tally starts counted (1) unless the budget is 0; an existing one counts the vote only
# while under the budget (no budget: always). The conflicting row is locked either way.
_TALLY = (
    "INSERT INTO crowdsource_participant (campaign_id, user_id, submissions, votes)"  # noqa: S608
    " SELECT {c}, {u}, 0, CASE WHEN COALESCE(" + _BUDGET.format(campaign="{c}") + ", 1) > 0"
    " THEN 1 ELSE 0 END FROM {source} WHERE true"
    " ON CONFLICT (campaign_id, user_id) DO UPDATE SET votes = crowdsource_participant.votes + 1"
    " WHERE crowdsource_participant.votes < COALESCE("
    + _BUDGET.format(campaign="crowdsource_participant.campaign_id")
    + ", crowdsource_participant.votes + 1) RETURNING id, campaign_id, user_id, votes"
)


class _Sql:
    """The statements of :func:`record_votes`. PostgreSQL gets one text per statement whatever
    the batch size (the values travel as arrays), so each pooled connection prepares it once:
    with a text per size, a burst's sizes outgrew asyncpg's statement cache and most statements
    paid an extra round trip to be prepared again. SQLite gets placeholder lists."""

    def __init__(self, conn: BaseDBAsyncClient) -> None:
        self.pg = conn.capabilities.dialect == "postgres"

    def users(self, public_ids: list[str]) -> tuple[str, list[Any]]:
        """SQLite: the active voters (PostgreSQL reads them in :meth:`users_and_votes`)."""
        query = (
            "SELECT id, public_id FROM core_user WHERE is_active"  # noqa: S608 - bound values
            f" AND public_id IN ({_in(len(public_ids))})"
        )
        return query, public_ids

    def insert_votes(self, rows: list[tuple[Any, ...]]) -> tuple[str, list[Any]]:
        """SQLite: the votes, in the order given, with the voter's id."""
        params = [x for row in rows for x in row]
        return (
            f"INSERT INTO crowdsource_vote ({_VOTE_COLUMNS}) VALUES {_marks(len(rows), 8)}"  # noqa: S608
            + _VOTE_CONFLICT
        ), params

    def users_and_votes(
        self, public_ids: list[str], rows: list[tuple[Any, ...]]
    ) -> tuple[str, list[Any]]:
        """PostgreSQL, one statement: the active voters among ``public_ids``, and the votes of
        ``rows`` (the voter's public id third) inserted for those voters in (pain point, voter)
        order. Rows of the first kind have no ``pain_point_id``."""
        query = (
            "WITH voter AS (SELECT id, public_id FROM core_user"  # noqa: S608 - fixed text
            " WHERE is_active AND public_id = ANY($1::text[])),"
            f" inserted AS (INSERT INTO crowdsource_vote ({_VOTE_COLUMNS})"
            " SELECT t.pp, t.c, v.id, t.aud, t.at, t.ip, t.net, t.dev"
            " FROM unnest($2::int[], $3::int[], $4::text[], $5::text[], $6::timestamptz[],"
            " $7::text[], $8::text[], $9::text[]) AS t(pp, c, pid, aud, at, ip, net, dev)"
            " JOIN voter v ON v.public_id = t.pid ORDER BY t.pp, v.id"
            f"{_VOTE_CONFLICT})"
            " SELECT NULL::bigint AS id, NULL::int AS pain_point_id, id AS user_id, public_id"
            " FROM voter UNION ALL"
            " SELECT id, pain_point_id, user_id, NULL FROM inserted"
        )
        return query, [public_ids, *[list(column) for column in zip(*rows, strict=True)]]

    def count_tallies(self, tallies: list[tuple[int, int]]) -> tuple[str, list[Any]]:
        """Lock each (campaign, voter) tally in the order given, creating it if new, and count
        the vote where it fits the budget: the rows returned with ``votes > 0`` counted it."""
        if self.pg:
            source = "unnest($1::int[], $2::int[]) AS t(c, u)"
            params: list[Any] = [[c for c, _ in tallies], [u for _, u in tallies]]
            return _TALLY.format(c="t.c", u="t.u", source=source), params
        source = f"(VALUES {_marks(len(tallies), 2)})"
        params = [x for pair in tallies for x in pair]
        return _TALLY.format(c="column1", u="column2", source=source), params

    def delete_votes(self, ids: list[int]) -> tuple[str, list[Any]]:
        if self.pg:
            return "DELETE FROM crowdsource_vote WHERE id = ANY($1::bigint[])", [ids]
        return f"DELETE FROM crowdsource_vote WHERE id IN ({_in(len(ids))})", list(ids)  # noqa: S608


async def _insert_votes(
    conn: BaseDBAsyncClient, sql: _Sql, ballots: Sequence[Ballot]
) -> tuple[dict[str, int], dict[tuple[int, int], int]]:
    """The active voters' ids by public id, and the ids of the votes inserted (by pain point
    and voter id): votes of inactive or unknown voters are not inserted, nor pairs that exist.
    Inserted in (pain point, voter) order: the row-lock order."""
    public_ids = sorted({b.user_public_id for b in ballots})
    rows = [
        (
            b.pain_point_id,
            b.campaign_id,
            b.user_public_id,
            b.audience.value,
            b.created_at,
            b.ip_hash,
            b.net_hash,
            b.device_hash,
        )
        for b in ballots
    ]
    if sql.pg:  # one round trip
        found = await conn.execute_query_dict(*sql.users_and_votes(public_ids, rows))
        user = {str(r["public_id"]): int(r["user_id"]) for r in found if r["pain_point_id"] is None}
        inserted = [r for r in found if r["pain_point_id"] is not None]
    else:
        found = await conn.execute_query_dict(*sql.users(public_ids))
        user = {str(r["public_id"]): int(r["id"]) for r in found}
        wanted = sorted(
            ((*row[:2], user[row[2]], *row[3:]) for row in rows if row[2] in user),
            key=lambda row: (row[0], row[2]),
        )
        inserted = await conn.execute_query_dict(*sql.insert_votes(wanted)) if wanted else []
    vote_id = {(int(r["pain_point_id"]), int(r["user_id"])): int(r["id"]) for r in inserted}
    return user, vote_id


async def record_votes(ballots: Sequence[Ballot]) -> list[str]:
    """Record a batch of votes inside the caller's transaction; each one's outcome (in order).

    At most one ballot per (campaign, person). The transaction must commit for ``ACCEPTED`` to
    hold; anything else stored nothing for that ballot.
    """
    if len({(b.campaign_id, b.user_public_id) for b in ballots}) != len(ballots):
        raise ValueError("at most one vote per person and campaign in a batch")
    conn = connections.get("default")
    sql = _Sql(conn)
    # 1. The voters (active accounts only) and 2. the UNIQUE pair: what is not inserted for an
    # active voter was there already.
    user, vote_id = await _insert_votes(conn, sql, ballots)
    outcome = []
    for b in ballots:
        if b.user_public_id not in user:
            outcome.append(ACCOUNT_DISABLED)
        elif (b.pain_point_id, user[b.user_public_id]) not in vote_id:
            outcome.append(ALREADY_VOTED)
        else:
            outcome.append(ACCEPTED)
    counted = [i for i, o in enumerate(outcome) if o == ACCEPTED]
    if not counted:
        return outcome
    # 3. The budget: each tally locked (created if new) in one order, counting what fits.
    tallies = sorted({(ballots[i].campaign_id, user[ballots[i].user_public_id]) for i in counted})
    rows = await conn.execute_query_dict(*sql.count_tallies(tallies))
    within = {(int(r["campaign_id"]), int(r["user_id"])) for r in rows if int(r["votes"]) > 0}
    over = []
    for i in counted:
        b, pk = ballots[i], user[ballots[i].user_public_id]
        if (b.campaign_id, pk) not in within:
            outcome[i] = BUDGET_EXHAUSTED
            over.append(vote_id[(b.pain_point_id, pk)])
    if over:
        await conn.execute_query(*sql.delete_votes(over))
    return outcome


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
