"""Revoked sessions reach every worker's mirror within the sync interval, and a valid token is
checked without a round trip to the store or the database while the mirror is fresh."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from backend.auth import revocations
from backend.auth.revocations import session_revoked
from backend.context import AppContext
from backend.kv import KeyValue
from backend.kv_memory import MemoryKeyValue
from backend.kv_redis import create_kv
from backend.kv_resilience import ResilientKeyValue


def _bare(kv: KeyValue) -> KeyValue:
    return kv.primary if isinstance(kv, ResilientKeyValue) else kv


@pytest.fixture
async def other_worker(ctx: AppContext) -> AsyncIterator[AppContext]:
    """A second worker's context: its own client (and mirror) over the same store."""
    bare = _bare(ctx.kv)
    if isinstance(bare, MemoryKeyValue):  # embedded: one process, share the data
        kv: KeyValue = MemoryKeyValue(prefix=bare.prefix)
        kv._store = bare._store  # type: ignore[attr-defined]
    else:
        kv = create_kv(ctx.settings.redis_url, prefix=ctx.settings.kv_prefix)
    yield dataclasses.replace(ctx, kv=kv)
    if not isinstance(kv, MemoryKeyValue):
        await kv.close()


class Counting:
    """Counts the store reads a worker makes."""

    def __init__(self, kv: KeyValue) -> None:
        self.reads = 0
        for name in ("exists", "zsince"):
            original = getattr(kv, name)

            async def counted(*args: object, _original=original) -> object:  # type: ignore[no-untyped-def]
                self.reads += 1
                return await _original(*args)

            setattr(kv, name, counted)


async def test_a_revocation_reaches_another_worker_within_the_interval(
    ctx: AppContext, other_worker: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(revocations, "SYNC_SECONDS", 0.3)

    async def no_database(family: str) -> bool:
        raise AssertionError("the database was asked")

    monkeypatch.setattr(revocations, "_revoked_in_database", no_database)
    await revocations.republish(ctx)  # the store is complete (the marker is set)
    family = "family-revoked-elsewhere"
    assert not await session_revoked(other_worker, family)  # its mirror read just now
    counting = Counting(other_worker.kv)
    await revocations.publish(ctx=ctx, family=family)
    assert await session_revoked(ctx, family)  # the worker that revoked knows at once
    for _ in range(50):  # fresh mirror: answered without asking the store (nor the database)
        assert not await session_revoked(other_worker, "a-valid-session")
    assert counting.reads == 0
    await asyncio.sleep(0.35)
    assert await session_revoked(other_worker, family)
    assert counting.reads == 2  # one read: the marker and the feed
    assert not await session_revoked(other_worker, "a-valid-session")


async def test_concurrent_checks_on_a_stale_mirror_share_one_read(
    ctx: AppContext, other_worker: AppContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(revocations, "SYNC_SECONDS", 60.0)
    await revocations.republish(ctx)
    counting = Counting(other_worker.kv)
    await revocations.publish(ctx=ctx, family="gone")
    answers = await asyncio.gather(
        *(session_revoked(other_worker, f) for f in ["gone", "kept"] * 20)
    )
    assert answers == [True, False] * 20
    assert counting.reads == 2


async def test_revocations_older_than_a_token_lifetime_are_trimmed(ctx: AppContext) -> None:
    await revocations.publish(ctx=ctx, family="old")
    lifetime = ctx.settings.access_token_ttl + 60
    stale = ctx.clock.time() - lifetime - 5
    await ctx.kv.zadd(revocations.FEED, {"older": stale})
    await revocations.publish(ctx=ctx, family="new")
    members = [m for m, _ in await ctx.kv.zsince(revocations.FEED, 0)]
    assert "older" not in members and {"old", "new"} <= set(members)
