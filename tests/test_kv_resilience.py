"""The key-value store when Redis is unreachable: each kind of operation degrades as
``backend/kv_resilience.py`` says, a breaker spares the dead server, and nothing raises that a
request could turn into a 500. The primary here is the in-process store made to fail exactly as
redis-py does (``redis.exceptions.ConnectionError``); tests/test_faults.py kills a real Redis."""

from __future__ import annotations

import asyncio
from functools import partial

import pytest
from redis.exceptions import ResponseError

from backend.auth import revocations
from backend.auth.revocations import FEED, republish, session_revoked
from backend.kv_memory import MemoryKeyValue
from backend.kv_resilience import CircuitBreaker, KeyValueUnavailable, ResilientKeyValue
from backend.models import RefreshToken, Role
from tests.factories import make_user, sign_in
from tests.fault_helpers import KillableMemory


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def wrapped(retry_after: float = 5.0) -> tuple[ResilientKeyValue, KillableMemory, FakeClock]:
    primary = KillableMemory("t:")
    clock = FakeClock()
    return ResilientKeyValue(primary, retry_after=retry_after, clock=clock), primary, clock


async def test_healthy_store_is_used_as_it_is():
    kv, primary, _ = wrapped()
    await kv.set("a", "1")
    assert await primary.get("a") == "1"
    assert await kv.zincrby("z", "m", 2) == 2.0
    assert await kv.ztop("z", 0, -1) == [("m", 2.0)]
    assert not kv.degraded


async def test_each_kind_of_operation_degrades_its_own_way():
    kv, primary, _ = wrapped()
    await kv.zadd("rank", {"a": 3})
    primary.kill()
    # values and counters: the per-worker store
    assert await kv.get("cache") is None
    assert await kv.set("cache", "v", ttl=60)
    assert await kv.get("cache") == "v"
    assert await kv.incr("n") == 1 and await kv.incr("n") == 2
    assert await kv.get_int("n") == 2
    assert kv.degraded
    # rate limits: per worker
    assert (await kv.hit("r", limit=1, window=60)).allowed
    assert not (await kv.hit("r", limit=1, window=60)).allowed
    # locks: per worker, and they still exclude within it
    held = await kv.lock("job", 30)
    assert held is not None and await kv.lock("job", 30) is None
    assert await held.release()
    # ranking writes are dropped, reads refuse (callers count in the database)
    assert await kv.zincrby("rank", "a", 1) == 1.0
    assert await kv.zadd("rank", {"b": 1}) == 0
    assert kv.dropped_writes == 2
    with pytest.raises(KeyValueUnavailable):
        await kv.ztop("rank", 0, -1)
    with pytest.raises(ConnectionError):  # what crowdsource.counters.KV_ERRORS catches
        await kv.zscore("rank", "a")
    assert not await kv.ping()


async def test_the_breaker_spares_a_dead_server_then_probes_once():
    kv, primary, clock = wrapped(retry_after=5)
    primary.kill()
    await kv.get("x")
    tried = primary.calls
    for _ in range(50):
        await kv.get("x")
        await kv.incr("y")
    assert primary.calls == tried  # open: nobody waits for the dead server
    clock.now += 5.1
    await kv.get("x")
    assert primary.calls == tried + 1  # one probe, failed: open again
    await kv.get("x")
    assert primary.calls == tried + 1
    primary.restart()
    clock.now += 5.1
    assert await kv.get("x") is None  # the probe succeeds: closed
    assert not kv.degraded
    await kv.set("x", "back")
    assert await primary.get("x") == "back"


async def test_recovery_runs_the_hooks_once_per_outage():
    kv, primary, clock = wrapped(retry_after=1)
    recovered = []

    async def hook() -> None:
        recovered.append(clock.now)

    kv.on_recovery(hook)
    await kv.get("a")
    assert recovered == []
    primary.kill()
    await kv.get("a")
    primary.restart()
    clock.now += 2
    await kv.get("a")
    await kv.get("a")
    assert len(recovered) == 1


async def test_a_lock_held_in_redis_released_during_an_outage_answers_false():
    kv, primary, _ = wrapped()
    held = await kv.lock("drain", 30)
    assert held is not None
    primary.kill()
    assert await held.release() is False  # not an exception out of ``async with``
    async with kv.hold("drain", ttl=30):  # the per-worker lock
        pass


async def test_bugs_are_not_mistaken_for_outages():
    class Broken(MemoryKeyValue):
        async def get(self, key: str) -> str | None:
            raise ResponseError("WRONGTYPE Operation against a key holding the wrong kind")

    kv = ResilientKeyValue(Broken(prefix="t:"))
    with pytest.raises(ResponseError):
        await kv.get("k")
    assert not kv.degraded
    with pytest.raises(ValueError):
        await ResilientKeyValue(MemoryKeyValue(prefix="t:")).set("k", "v", ttl=0)


async def test_a_cancelled_probe_does_not_keep_the_breaker_open_forever():
    kv, primary, clock = wrapped(retry_after=1)
    primary.kill()
    await kv.get("x")
    primary.restart()
    clock.now += 2
    started = asyncio.Event()

    async def slow_get(key: str) -> str | None:
        started.set()
        await asyncio.sleep(10)
        return None

    primary.get = slow_get  # type: ignore[method-assign]
    probe = asyncio.create_task(kv.get("x"))
    await started.wait()
    probe.cancel()  # the client went away mid-probe
    with pytest.raises(asyncio.CancelledError):
        await probe
    del primary.get
    assert await kv.get("x") is None and not kv.degraded  # the next call probed and closed it


def test_circuit_breaker_states():
    clock = FakeClock()
    breaker = CircuitBreaker(2, clock=clock)
    assert breaker.allows() and not breaker.is_open
    assert breaker.failed() is True
    assert breaker.failed() is False  # already open: reported once
    assert not breaker.allows()
    clock.now += 2
    assert breaker.allows()  # the probe
    assert not breaker.allows()  # only one
    assert breaker.succeeded() is True
    assert breaker.succeeded() is False
    assert breaker.allows()


# -- revoked sessions ------------------------------------------------------------------------


@pytest.fixture
async def outage(ctx):
    """The app's store swapped for a wrapper over a store the test can kill."""
    original = ctx.kv
    primary = KillableMemory(ctx.settings.kv_prefix)
    kv = ResilientKeyValue(primary, retry_after=0.2)
    kv.on_recovery(partial(republish, ctx))
    ctx.kv = kv
    try:
        yield primary
    finally:
        ctx.kv = original


async def test_a_session_revoked_during_an_outage_stays_revoked(client, ctx, outage):
    user = await make_user(Role.CURATOR)
    kept = await sign_in(client, user)
    ended = await sign_in(client, user)
    outage.kill()
    assert (await client.post("/api/v1/auth/logout", headers=ended, json={})).status_code == 204
    # The store could not record it, the database did: this worker asks the database.
    assert (await client.get("/api/v1/me", headers=ended)).status_code == 401
    assert (await client.get("/api/v1/me", headers=kept)).status_code == 200
    outage.restart()  # back, and empty (a restarted Redis keeps nothing)
    await asyncio.sleep(0.25)
    assert (await client.get("/api/v1/me", headers=kept)).status_code == 200
    assert not ctx.kv.degraded
    assert (await client.get("/api/v1/me", headers=ended)).status_code == 401
    family = (await RefreshToken.filter(revoked_at__isnull=False).first()).family
    assert await outage.zscore(FEED, family) is not None  # written back on recovery


async def test_revocations_lost_with_the_store_are_written_back(client, ctx, monkeypatch):
    monkeypatch.setattr(revocations, "SYNC_SECONDS", 0.0)  # read the store every time
    user = await make_user(Role.CURATOR)
    headers = await sign_in(client, user)
    assert (await client.post("/api/v1/auth/logout", headers=headers, json={})).status_code == 204
    family = (await RefreshToken.filter(revoked_at__isnull=False).first()).family
    await ctx.kv.clear_namespace()  # Redis restarted, or the embedded server did
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 401
    assert await session_revoked(ctx, family)
    assert await ctx.kv.zscore(FEED, family) is not None
