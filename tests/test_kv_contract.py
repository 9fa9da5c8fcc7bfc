"""Contract tests for backend.kv: the same suite runs against every KeyValue implementation.

``memory`` always runs. With ``SMARTCIRCLE_PROFILE=services`` the suite also runs against a
real Redis at ``REDIS_URL`` (which must then be set: a missing URL fails, never skips).
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import AsyncIterator

import pytest

from backend.kv import (
    KeyValue,
    Lock,
    LockNotAcquired,
    RateLimit,
)
from backend.kv_memory import MemoryKeyValue
from backend.kv_redis import RedisKeyValue, create_kv
from backend.kv_resilience import ResilientKeyValue

SERVICES = os.environ.get("SMARTCIRCLE_PROFILE") == "services"
# "resilient-*": the app's wrapper (backend/kv_resilience.py) over each store keeps the contract.
IMPLEMENTATIONS = (
    ["memory", "resilient-memory", "redis", "resilient-redis"]
    if SERVICES
    else ["memory", "resilient-memory"]
)


def _redis_url() -> str:
    url = os.environ.get("REDIS_URL")
    if not url:
        pytest.fail(
            "SMARTCIRCLE_PROFILE=services requires REDIS_URL for the Redis KV contract tests",
            pytrace=False,
        )
    return url


def _unique_prefix() -> str:
    return f"test:{uuid.uuid4().hex}:"


async def _make(kind: str, prefix: str) -> KeyValue:
    if kind.startswith("resilient-"):
        return ResilientKeyValue(await _make(kind.removeprefix("resilient-"), prefix))
    if kind == "redis":
        store: KeyValue = RedisKeyValue.from_url(_redis_url(), prefix=prefix)
        if not await store.ping():
            await store.close()
            pytest.fail(f"Redis at {os.environ.get('REDIS_URL')} is not reachable", pytrace=False)
        return store
    return MemoryKeyValue(prefix=prefix)


@pytest.fixture(params=IMPLEMENTATIONS)
async def kv(request: pytest.FixtureRequest) -> AsyncIterator[KeyValue]:
    store = await _make(request.param, _unique_prefix())
    try:
        yield store
    finally:
        await store.clear_namespace()
        await store.close()


def redis_desc(items: dict[str, float]) -> list[tuple[str, float]]:
    """Expected ZREVRANGE order: score desc, ties by member bytes desc."""
    return sorted(items.items(), key=lambda kv: (kv[1], kv[0].encode()), reverse=True)


# -- plain values -------------------------------------------------------------------------


async def test_get_set_roundtrip(kv: KeyValue) -> None:
    assert await kv.get("missing") is None
    assert await kv.set("s", "héllo 你好") is True
    assert await kv.get("s") == "héllo 你好"
    assert await kv.set("i", 42) is True
    assert await kv.get("i") == "42"
    assert await kv.set("f", 1.5) is True
    assert await kv.get("f") == "1.5"
    await kv.set("s", "overwritten")
    assert await kv.get("s") == "overwritten"
    with pytest.raises(TypeError):
        await kv.set("b", True)
    with pytest.raises(ValueError):
        await kv.set("bad-ttl", "x", ttl=0)


async def test_ttl_and_expiry(kv: KeyValue) -> None:
    await kv.set("short", "v", ttl=0.25)
    await kv.set("forever", "v")
    left = await kv.ttl("short")
    assert left is not None and 0 < left <= 0.25
    assert await kv.ttl("forever") is None
    assert await kv.ttl("missing") is None
    assert await kv.exists("short")
    # A plain set clears a previous expiry, like Redis SET.
    await kv.set("reset", "v", ttl=0.25)
    await kv.set("reset", "v2")
    assert await kv.ttl("reset") is None

    await asyncio.sleep(0.35)
    assert await kv.get("short") is None
    assert not await kv.exists("short")
    assert await kv.ttl("short") is None
    assert await kv.get("forever") == "v"
    assert await kv.get("reset") == "v2"


async def test_only_if_absent(kv: KeyValue) -> None:
    assert await kv.set("k", "first", only_if_absent=True) is True
    assert await kv.set("k", "second", only_if_absent=True) is False
    assert await kv.get("k") == "first"
    assert await kv.set("k", "third") is True
    assert await kv.get("k") == "third"
    await kv.delete("k")
    assert await kv.set("k", "again", only_if_absent=True, ttl=5) is True
    left = await kv.ttl("k")
    assert left is not None and 4 < left <= 5


async def test_delete_and_exists(kv: KeyValue) -> None:
    await kv.set("a", "1")
    await kv.set("b", "2")
    await kv.zadd("z", {"m": 1})
    assert await kv.exists("a") and await kv.exists("z")
    assert await kv.delete("a", "b", "z", "nope") == 3
    assert not await kv.exists("a")
    assert not await kv.exists("z")
    assert await kv.delete("a") == 0
    assert await kv.delete() == 0


# -- counters -----------------------------------------------------------------------------


async def test_incr_and_get_int(kv: KeyValue) -> None:
    assert await kv.get_int("c") == 0
    assert await kv.incr("c") == 1
    assert await kv.incr("c", 5) == 6
    assert await kv.incr("c", -10) == -4
    assert await kv.get_int("c") == -4
    assert await kv.get("c") == "-4"
    await kv.set("preset", 10)
    assert await kv.incr("preset") == 11
    assert await kv.ttl("c") is None


async def test_incr_ttl_only_on_creation(kv: KeyValue) -> None:
    assert await kv.incr("win", ttl=0.3) == 1
    first = await kv.ttl("win")
    assert first is not None and 0 < first <= 0.3
    await asyncio.sleep(0.1)
    # A later ttl does not reset or extend the window.
    assert await kv.incr("win", ttl=60) == 2
    later = await kv.ttl("win")
    assert later is not None and later <= 0.2 + 0.01

    # An existing key without expiry does not get one from incr.
    await kv.incr("plain")
    assert await kv.incr("plain", ttl=60) == 2
    assert await kv.ttl("plain") is None

    await asyncio.sleep(0.3)
    assert await kv.get_int("win") == 0
    assert await kv.incr("win", ttl=60) == 1
    fresh = await kv.ttl("win")
    assert fresh is not None and 59 < fresh <= 60


# -- sorted sets --------------------------------------------------------------------------


async def test_ztop_ties_follow_redis_order(kv: KeyValue) -> None:
    await kv.zadd("r", {"a": 1, "b": 1, "c": 1})
    assert await kv.ztop("r", 0, -1) == [("c", 1.0), ("b", 1.0), ("a", 1.0)]

    # Byte order, not locale/casefold order: uppercase < lowercase < non-ASCII.
    members = ["a", "B", "é", "ab", "Z", "中", ""]
    await kv.zadd("u", dict.fromkeys(members, 7.0))
    await kv.zadd("u", {"top": 8.0, "bottom": -1.0})
    got = [m for m, _ in await kv.ztop("u", 0, -1)]
    assert got == ["top", "中", "é", "ab", "a", "Z", "B", "", "bottom"]


async def test_ztop_ranges_and_negative_indexes(kv: KeyValue) -> None:
    scores = {"p": 50.0, "q": 40.0, "r": 30.0, "s": 20.0, "t": 10.0}
    assert await kv.zadd("board", scores) == 5
    assert await kv.zadd("board", {"p": 55.0, "new": 0.5}) == 1
    full = [("p", 55.0), ("q", 40.0), ("r", 30.0), ("s", 20.0), ("t", 10.0), ("new", 0.5)]
    assert await kv.ztop("board", 0, -1) == full
    assert await kv.ztop("board", 0, 2) == full[:3]
    assert await kv.ztop("board", 1, 1) == full[1:2]
    assert await kv.ztop("board", -2, -1) == full[-2:]
    assert await kv.ztop("board", -100, 1) == full[:2]
    assert await kv.ztop("board", 2, 100) == full[2:]
    assert await kv.ztop("board", 3, 1) == []
    assert await kv.ztop("board", 6, 10) == []
    assert await kv.ztop("board", -1, -2) == []
    assert await kv.ztop("board", 0, -7) == []
    assert await kv.ztop("missing", 0, -1) == []
    assert await kv.zadd("board", {}) == 0


async def test_ztop_matches_redis_order_randomized(kv: KeyValue) -> None:
    rng = random.Random(20240611)
    alphabet = "aAbBzZ09_-é中ß"
    items: dict[str, float] = {}
    while len(items) < 120:
        name = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 4)))
        items[name] = float(rng.randint(-3, 3)) + rng.choice([0.0, 0.0, 0.25])
    await kv.zadd("rand", items)
    expected = redis_desc(items)
    assert await kv.ztop("rand", 0, -1) == expected
    assert await kv.ztop("rand", 0, 9) == expected[:10]
    assert await kv.ztop("rand", 30, 44) == expected[30:45]
    assert await kv.ztop("rand", -15, -1) == expected[-15:]


async def test_zincrby_zscore(kv: KeyValue) -> None:
    assert await kv.zscore("z", "m") is None
    assert await kv.zincrby("z", "m", 2.5) == 2.5
    assert await kv.zincrby("z", "m", 1) == 3.5
    assert await kv.zincrby("z", "other", -1) == -1.0
    assert await kv.zincrby("z", "m", 0.1) == 3.5 + 0.1
    assert await kv.zscore("z", "m") == 3.5 + 0.1
    assert await kv.zscore("z", "other") == -1.0
    assert await kv.ztop("z", 0, -1) == [("m", 3.6), ("other", -1.0)]


async def test_zrem(kv: KeyValue) -> None:
    await kv.zadd("z", {"a": 1, "b": 2, "c": 3})
    assert await kv.zrem("z", "a", "nope") == 1
    assert await kv.ztop("z", 0, -1) == [("c", 3.0), ("b", 2.0)]
    assert await kv.zscore("z", "a") is None
    assert await kv.zrem("z") == 0
    assert await kv.zrem("z", "b", "c") == 2
    assert await kv.ztop("z", 0, -1) == []
    assert not await kv.exists("z")
    assert await kv.zrem("missing", "a") == 0


# -- locks --------------------------------------------------------------------------------


async def test_lock_exclusive_and_release(kv: KeyValue) -> None:
    first = await kv.lock("job", ttl=5)
    assert isinstance(first, Lock)
    assert first.token
    assert await kv.lock("job", ttl=5) is None
    assert await kv.lock("other-job", ttl=5) is not None
    assert await first.release() is True
    assert await first.release() is False
    second = await kv.lock("job", ttl=5)
    assert second is not None
    assert second.token != first.token
    await second.release()


async def test_lock_release_and_extend_only_by_owner(kv: KeyValue) -> None:
    owner = await kv.lock("res", ttl=0.5)
    assert owner is not None
    intruder = Lock(kv, "res", token="not-the-owner")
    assert await intruder.release() is False
    assert await intruder.extend(30) is False
    assert await kv.lock("res", ttl=5) is None
    left = await kv.ttl("lock:res")
    assert left is not None and left <= 0.5

    assert await owner.extend(30) is True
    left = await kv.ttl("lock:res")
    assert left is not None and 29 < left <= 30
    assert await owner.release() is True


async def test_lock_expiry_frees_it(kv: KeyValue) -> None:
    old = await kv.lock("res", ttl=0.2)
    assert old is not None
    await asyncio.sleep(0.3)
    new = await kv.lock("res", ttl=5)
    assert new is not None
    # The previous owner must not be able to touch the new owner's lock.
    assert await old.release() is False
    assert await old.extend(5) is False
    assert await kv.lock("res", ttl=5) is None
    assert await new.release() is True


async def test_hold(kv: KeyValue) -> None:
    async with kv.hold("h", ttl=5) as held:
        assert isinstance(held, Lock)
        with pytest.raises(LockNotAcquired):
            async with kv.hold("h", ttl=5):
                pytest.fail("must not enter")
        started = time.monotonic()
        with pytest.raises(LockNotAcquired):
            async with kv.hold("h", ttl=5, wait=0.1):
                pytest.fail("must not enter")
        assert time.monotonic() - started >= 0.09
    # Released on exit.
    relock = await kv.lock("h", ttl=5)
    assert relock is not None

    async def release_later() -> None:
        await asyncio.sleep(0.1)
        await relock.release()

    releaser = asyncio.create_task(release_later())
    async with kv.hold("h", ttl=5, wait=2) as waited:
        assert waited.token != relock.token
        assert releaser.done()
    await releaser
    assert await kv.exists("lock:h") is False


# -- rate limits --------------------------------------------------------------------------


async def test_rate_limit_fixed_window(kv: KeyValue) -> None:
    window = 0.3
    results = [await kv.hit("login:1.2.3.4", limit=3, window=window) for _ in range(3)]
    assert results == [
        RateLimit(True, 2, 0.0),
        RateLimit(True, 1, 0.0),
        RateLimit(True, 0, 0.0),
    ]
    refused = await kv.hit("login:1.2.3.4", limit=3, window=window)
    assert refused.allowed is False
    assert refused.remaining == 0
    assert 0 < refused.retry_after <= window
    # Other keys have their own window.
    assert (await kv.hit("login:5.6.7.8", limit=3, window=window)).allowed
    # Refused hits don't extend the window.
    again = await kv.hit("login:1.2.3.4", limit=3, window=window)
    assert not again.allowed and again.retry_after <= refused.retry_after

    await asyncio.sleep(refused.retry_after + 0.05)
    assert await kv.hit("login:1.2.3.4", limit=3, window=window) == RateLimit(True, 2, 0.0)


async def test_rate_limit_zero_limit(kv: KeyValue) -> None:
    result = await kv.hit("blocked", limit=0, window=10)
    assert not result.allowed and 9 < result.retry_after <= 10


async def test_hit_all_counts_in_order_and_stops_at_the_first_refusal(kv: KeyValue) -> None:
    limits = [("person:1", 2, 10.0), ("ip:1", 3, 10.0)]
    assert await kv.hit_all(limits) == [RateLimit(True, 1, 0.0), RateLimit(True, 2, 0.0)]
    assert await kv.hit_all(limits) == [RateLimit(True, 0, 0.0), RateLimit(True, 1, 0.0)]
    refused = await kv.hit_all(limits)
    assert len(refused) == 1 and not refused[0].allowed and 9 < refused[0].retry_after <= 10
    # The second limit was not counted for the refused call: as if hit() had stopped there.
    assert await kv.hit("ip:1", limit=3, window=10) == RateLimit(True, 0, 0.0)
    assert await kv.hit_all([]) == []
    # Each limit keeps its own window, as single hits do.
    assert (await kv.hit_all([("other", 1, 0.2)]))[0].allowed


async def test_concurrent_hit_all_calls_each_count_exactly(kv: KeyValue) -> None:
    # 60 callers at once (Redis answers them in shared pipelines): every hit counted once,
    # each caller gets its own answers, the refusals are exactly the calls over the limit.
    calls = [[(f"person:{n % 6}", 7, 10.0), ("ip:shared", 50, 10.0)] for n in range(60)]
    answers = await asyncio.gather(*(kv.hit_all(limits) for limits in calls))
    assert all(a[0].allowed for a in answers if len(a) == 2)
    allowed = [a for a in answers if all(r.allowed for r in a)]
    assert len(allowed) == 42  # 7 per person; the 18 refused stop before the shared limit
    assert sum(1 for a in answers if len(a) == 1 and not a[0].allowed) == 18
    assert sorted(a[1].remaining for a in allowed) == list(range(8, 50))


async def test_redis_hit_all_is_one_round_trip_and_survives_a_lost_script_cache(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if not SERVICES:
        # The embedded profile's store keeps its limits in the process: no script, no cache.
        assert os.environ.get("REDIS_URL") is None
        return
    from redis.asyncio.client import Pipeline  # noqa: PLC0415

    store = RedisKeyValue.from_url(_redis_url(), prefix=_unique_prefix())
    asked: list[object] = []
    real = Pipeline.immediate_execute_command

    async def spy(self: Pipeline, *args: object, **options: object) -> object:
        asked.append(args[0])  # SCRIPT EXISTS / SCRIPT LOAD: a round trip before the pipeline
        return await real(self, *args, **options)

    monkeypatch.setattr(Pipeline, "immediate_execute_command", spy)
    try:
        limits = [("person:1", 3, 10.0), ("ip:1", 5, 10.0)]
        assert await store.hit_all(limits) == [RateLimit(True, 2, 0.0), RateLimit(True, 4, 0.0)]
        assert asked == []
        # The server no longer knows the script (as after a restart): loaded, sent again, and
        # every limit still counted exactly once.
        store._hit_all.sha = "0" * 40
        answers = await asyncio.gather(*(store.hit_all(limits) for _ in range(2)))
        assert sorted(a[0].remaining for a in answers) == [0, 1]
        assert sorted(a[1].remaining for a in answers) == [2, 3]
        assert store._hit_all.sha != "0" * 40
        # Three calls counted on each key, none twice.
        assert not (await store.hit("person:1", limit=3, window=10)).allowed
        assert await store.hit("ip:1", limit=5, window=10) == RateLimit(True, 1, 0.0)
    finally:
        await store.clear_namespace()
        await store.close()


async def test_zpipeline_increments_then_reads(kv: KeyValue) -> None:
    await kv.zadd("z", {"a": 1})
    scores = await kv.zpipeline(
        [("z", "a", 2), ("z", "b", 1), ("y", "a", -1), ("z", "a", 1)],
        [("z", "a"), ("z", "b"), ("y", "a"), ("z", "missing"), ("nothing", "a")],
    )
    assert scores == [4.0, 1.0, -1.0, None, None]
    assert await kv.zpipeline([("z", "b", 5)]) == []
    assert await kv.zscore("z", "b") == 6.0
    assert await kv.zpipeline([], []) == []


# -- concurrency --------------------------------------------------------------------------


async def test_concurrent_incr(kv: KeyValue) -> None:
    results = await asyncio.gather(*(kv.incr("hits") for _ in range(200)))
    assert sorted(results) == list(range(1, 201))
    assert await kv.get_int("hits") == 200


async def test_concurrent_lock_single_winner(kv: KeyValue) -> None:
    locks = await asyncio.gather(*(kv.lock("race", ttl=5) for _ in range(50)))
    winners = [lock for lock in locks if lock is not None]
    assert len(winners) == 1
    assert await winners[0].release() is True


# -- namespacing / lifecycle --------------------------------------------------------------


def _neighbour(kv: KeyValue) -> KeyValue:
    """Another namespace, on the same storage where storage is shared (one Redis)."""
    if isinstance(kv, ResilientKeyValue):
        return ResilientKeyValue(_neighbour(kv.primary))
    if isinstance(kv, RedisKeyValue):
        return RedisKeyValue(kv.client, _unique_prefix())
    return MemoryKeyValue(prefix=_unique_prefix())


async def test_namespacing(kv: KeyValue) -> None:
    other = _neighbour(kv)
    try:
        await kv.set("shared", "mine")
        await other.set("shared", "theirs")
        await kv.zadd("board", {"a": 1})
        await kv.incr("count")
        await kv.lock("l", ttl=5)
        await kv.hit("rl", limit=1, window=5)
        assert not await other.exists("board")
        assert await other.get_int("count") == 0
        assert await other.lock("l", ttl=5) is not None
        assert (await other.hit("rl", limit=1, window=5)).allowed
        assert await kv.get("shared") == "mine"
        assert await other.get("shared") == "theirs"

        assert await kv.clear_namespace() == 5
        assert await kv.get("shared") is None
        assert not await kv.exists("board")
        assert await kv.lock("l", ttl=5) is not None
        assert await other.get("shared") == "theirs"
        assert await other.exists("lock:l")
        assert await kv.clear_namespace() == 1  # only the lock just taken
    finally:
        await other.clear_namespace()
        await other.close()
    assert await other.get("shared") is None
    assert await kv.ping() is True


async def test_create_kv_factory() -> None:
    memory = create_kv(None, prefix="x:")
    assert isinstance(memory, MemoryKeyValue) and memory.prefix == "x:"
    await memory.close()
    # from_url does not connect until the first command.
    redis_kv = create_kv("redis://127.0.0.1:1/0", prefix="y:")
    assert isinstance(redis_kv, RedisKeyValue) and redis_kv.prefix == "y:"
    assert await redis_kv.ping() is False
    await redis_kv.close()


# -- memory implementation details --------------------------------------------------------


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_memory_expiry_sweep_with_injected_clock() -> None:
    clock = FakeClock()
    kv = MemoryKeyValue(prefix="m:", clock=clock, sweep_interval=10)
    for i in range(100):
        await kv.set(f"tmp:{i}", "x", ttl=5)
    await kv.set("keep", "x")
    await kv.hit("rl", limit=1, window=5)
    assert await kv.ttl("tmp:0") == 5.0
    clock.now += 6
    # Lazy expiry on access, before any sweep.
    assert await kv.get("tmp:0") is None
    assert len(kv._store.data) == 101
    clock.now += 5  # past the sweep interval: the next operation sweeps everything expired
    assert await kv.get("keep") == "x"
    assert set(kv._store.data) == {"m:keep"}
    assert set(kv._store.deadlines) == set()


async def test_memory_rate_limit_retry_after_with_injected_clock() -> None:
    clock = FakeClock()
    kv = MemoryKeyValue(prefix="m:", clock=clock)
    assert (await kv.hit("k", limit=1, window=60)).allowed
    clock.now += 45
    refused = await kv.hit("k", limit=1, window=60)
    assert refused == RateLimit(False, 0, 15.0)
    clock.now += 15
    assert await kv.hit("k", limit=1, window=60) == RateLimit(True, 0, 0.0)


async def test_zsince_and_ztrim_below(kv: KeyValue) -> None:
    await kv.zadd("feed", {"b": 20.0, "a": 20.0, "c": 10.0, "d": 30.5})
    assert await kv.zsince("feed", 20.0) == [("a", 20.0), ("b", 20.0), ("d", 30.5)]
    assert await kv.zsince("feed", 0) == [("c", 10.0), ("a", 20.0), ("b", 20.0), ("d", 30.5)]
    assert await kv.zsince("feed", 31) == []
    assert await kv.zsince("missing", 0) == []
    assert await kv.ztrim_below("feed", 20.0) == 1  # strictly below
    assert await kv.zsince("feed", 0) == [("a", 20.0), ("b", 20.0), ("d", 30.5)]
    assert await kv.ztrim_below("feed", 100) == 3
    assert await kv.zsince("feed", 0) == [] and await kv.ztrim_below("feed", 100) == 0
