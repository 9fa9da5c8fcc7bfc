"""Key-value layer: one small async interface, a Redis and an in-process implementation.

Features depend only on :class:`KeyValue`; :func:`create_kv` picks the implementation
(:class:`RedisKeyValue` when a Redis URL is configured, otherwise :class:`MemoryKeyValue`
for the single-worker embedded profile). Both implementations pass the same contract
test suite (``tests/test_kv_contract.py``).

Conventions
-----------
* Every key is stored as ``prefix + key``; the prefix is fixed per instance, and
  :meth:`KeyValue.clear_namespace` deletes everything under it.
* Locks live under ``prefix + "lock:" + name`` and rate-limit counters under
  ``prefix + "rate:" + key``.
* Values are ``str``, ``int`` or ``float`` and are read back as ``str`` (floats are
  encoded with ``repr`` exactly like redis-py does). ``bool`` is rejected.
* TTLs are seconds (``float``, must be > 0) with millisecond precision (``PX``/``PEXPIRE``).

Sorted sets
-----------
:meth:`KeyValue.ztop` follows ``ZREVRANGE``:
descending by score, ties by member in descending byte order (UTF-8 byte order equals
code point order, so plain ``str`` comparison matches Redis), inclusive ``stop`` and
Redis-style negative indexes.

Locks
-----
:meth:`KeyValue.lock` is a non-blocking ``SET NX PX`` with a random token. Releasing and
extending compare the token first (atomically), so only the owner can do it and an expired
lock taken over by someone else is never released by the previous owner. In Redis this is
redis-py's own :class:`redis.asyncio.lock.Lock`; :meth:`KeyValue.hold` polls
:meth:`KeyValue.lock` until ``wait`` runs out, then raises :class:`LockNotAcquired`.

Rate limiting (fixed window)
----------------------------
:meth:`KeyValue.hit` counts hits in a fixed window that starts at the first hit: the
counter is incremented atomically and, if the increment created it, given an expiry of
``window`` seconds (one Lua script in Redis; a counter found without expiry gets one too,
so a window can never become permanent). A hit is allowed while the count is
``<= limit``; ``remaining = max(0, limit - count)``. Refused hits still count but do not
extend the window; ``retry_after`` is the time left until the counter expires (``0`` when
allowed). Bursts of up to ``2 * limit`` across a window boundary are possible, which is
the usual trade-off of fixed windows.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import heapq
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as redis_async
from redis.asyncio.lock import Lock as RedisLock
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import LockNotOwnedError, RedisError

__all__ = [
    "KeyValue",
    "Lock",
    "LockNotAcquired",
    "MemoryKeyValue",
    "RateLimit",
    "RedisKeyValue",
    "Value",
    "create_kv",
]

Value = str | int | float

LOCK_PREFIX = "lock:"
RATE_PREFIX = "rate:"
_LOCK_POLL_INTERVAL = 0.02
_SCAN_BATCH = 500
_DEFAULT_MAX_CONNECTIONS = 50
_DEFAULT_POOL_TIMEOUT = 10.0
# A dead or hung Redis must fail fast (the caller degrades, see ``backend.kv_resilience``):
# redis-py's defaults are a 5 s socket timeout and 10 retries with backoff.
_DEFAULT_SOCKET_TIMEOUT = 1.0
_DEFAULT_RETRIES = 1


class LockNotAcquired(Exception):
    """Raised by :meth:`KeyValue.hold` when the lock could not be taken in time."""

    def __init__(self, name: str, wait: float) -> None:
        super().__init__(f"lock {name!r} not acquired within {wait:g}s")
        self.name = name
        self.wait = wait


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Outcome of one :meth:`KeyValue.hit`."""

    allowed: bool
    remaining: int
    retry_after: float


class Lock:
    """A held (or once-held) lock: ``name`` plus the random ``token`` that proves ownership."""

    __slots__ = ("kv", "name", "token")

    def __init__(self, kv: KeyValue, name: str, token: str) -> None:
        self.kv = kv
        self.name = name
        self.token = token

    async def release(self) -> bool:
        """Release the lock if still owned; False if expired or owned by someone else."""
        return await self.kv.release_lock(self.name, self.token)

    async def extend(self, ttl: float) -> bool:
        """Reset the lock's expiry to ``ttl`` seconds from now, only if still owned."""
        return await self.kv.extend_lock(self.name, self.token, ttl)

    async def __aenter__(self) -> Lock:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.release()

    def __repr__(self) -> str:
        return f"Lock(name={self.name!r})"


def _encode(value: Value) -> str:
    """Encode a value the way redis-py does (floats via ``repr``); reject bools."""
    if isinstance(value, bool):
        raise TypeError("bool values are not supported; store an int or str")
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return repr(value)
    raise TypeError(f"unsupported value type: {type(value).__name__}")


def _ttl_ms(ttl: float) -> int:
    """Seconds to positive whole milliseconds (rounded up)."""
    if not ttl > 0 or math.isinf(ttl):
        raise ValueError(f"ttl must be a positive finite number of seconds, got {ttl!r}")
    return max(1, math.ceil(ttl * 1000))


def _check_limit(limit: int, window: float) -> int:
    if limit < 0:
        raise ValueError("limit must be >= 0")
    return _ttl_ms(window)


class KeyValue(abc.ABC):
    """Async key-value interface used by features. All keys are namespaced by ``prefix``."""

    prefix: str

    # -- plain values -------------------------------------------------------------------
    @abc.abstractmethod
    async def get(self, key: str) -> str | None:
        """Value of ``key`` or None if missing/expired."""

    @abc.abstractmethod
    async def set(
        self, key: str, value: Value, *, ttl: float | None = None, only_if_absent: bool = False
    ) -> bool:
        """Store ``value`` (clearing any previous expiry); False only if ``only_if_absent``
        and the key exists."""

    @abc.abstractmethod
    async def delete(self, *keys: str) -> int:
        """Delete keys; returns how many existed."""

    @abc.abstractmethod
    async def exists(self, key: str) -> bool:
        """Whether ``key`` exists (any type)."""

    @abc.abstractmethod
    async def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires; None if it has no expiry or is missing."""

    # -- counters -----------------------------------------------------------------------
    @abc.abstractmethod
    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        """Atomically add ``amount``; ``ttl`` is applied only when this call creates the key."""

    @abc.abstractmethod
    async def get_int(self, key: str) -> int:
        """Integer value of ``key``, 0 if missing."""

    # -- sorted sets --------------------------------------------------------------------
    @abc.abstractmethod
    async def zadd(self, key: str, mapping: dict[str, float]) -> int:
        """Add/update members; returns the number of new members."""

    @abc.abstractmethod
    async def zincrby(self, key: str, member: str, amount: float) -> float:
        """Add ``amount`` to the member's score (missing counts as 0); returns the new score."""

    @abc.abstractmethod
    async def zscore(self, key: str, member: str) -> float | None:
        """Score of ``member`` or None."""

    @abc.abstractmethod
    async def zrem(self, key: str, *members: str) -> int:
        """Remove members; returns how many were present."""

    @abc.abstractmethod
    async def ztop(self, key: str, start: int, stop: int) -> list[tuple[str, float]]:
        """Members ranked ``start..stop`` (inclusive, negatives allowed) like ZREVRANGE."""

    # -- locks --------------------------------------------------------------------------
    @abc.abstractmethod
    async def lock(self, name: str, ttl: float) -> Lock | None:
        """Try once to take lock ``name`` for ``ttl`` seconds; None if held by someone."""

    @abc.abstractmethod
    async def release_lock(self, name: str, token: str) -> bool:
        """Delete lock ``name`` only if it is held with ``token``."""

    @abc.abstractmethod
    async def extend_lock(self, name: str, token: str, ttl: float) -> bool:
        """Reset lock expiry to ``ttl`` only if it is held with ``token``."""

    @contextlib.asynccontextmanager
    async def hold(self, name: str, ttl: float, wait: float = 0) -> AsyncIterator[Lock]:
        """Hold lock ``name`` for the block, polling up to ``wait`` seconds to acquire it.

        Raises :class:`LockNotAcquired` if it is not free in time. Released on exit.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, wait)
        while True:
            acquired = await self.lock(name, ttl)
            if acquired is not None:
                break
            left = deadline - loop.time()
            if left <= 0:
                raise LockNotAcquired(name, wait)
            await asyncio.sleep(min(_LOCK_POLL_INTERVAL, left))
        try:
            yield acquired
        finally:
            await acquired.release()

    # -- rate limits --------------------------------------------------------------------
    @abc.abstractmethod
    async def hit(self, key: str, *, limit: int, window: float) -> RateLimit:
        """Count one hit in a fixed window (see module docstring)."""

    # -- lifecycle ----------------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        """True while the store answers from a per-worker fallback (``backend.kv_resilience``)."""
        return False

    def on_recovery(self, hook: Callable[[], Awaitable[object]]) -> None:
        """Run ``hook`` whenever the store answers again after an outage (a store that cannot
        be unreachable never calls it)."""
        return None

    @abc.abstractmethod
    async def ping(self) -> bool:
        """Whether the backend is reachable."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Release resources (connections)."""

    @abc.abstractmethod
    async def clear_namespace(self) -> int:
        """Delete every key under this instance's prefix; returns how many were deleted."""

    @staticmethod
    def _new_token() -> str:
        return secrets.token_hex(16)


# ======================================================================================
# Redis
# ======================================================================================

_INCR_CREATE_TTL = """
local existed = redis.call('EXISTS', KEYS[1])
local n = redis.call('INCRBY', KEYS[1], ARGV[1])
if existed == 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return n
"""

_HIT = """
local n = redis.call('INCR', KEYS[1])
if n == 1 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
    redis.call('PEXPIRE', KEYS[1], ARGV[1])
    left = tonumber(ARGV[1])
end
return {n, left}
"""


def _glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters so ``text`` matches literally in SCAN MATCH."""
    return "".join("\\" + ch if ch in "*?[]\\" else ch for ch in text)


class RedisKeyValue(KeyValue):
    """:class:`KeyValue` backed by Redis: atomic multi-step operations are Lua scripts, locks
    are redis-py's :class:`redis.asyncio.lock.Lock`.

    The client must be created with ``decode_responses=True``. ``close()`` closes the
    client only when ``owns_client`` is true (as for :meth:`from_url`).
    """

    def __init__(
        self, client: redis_async.Redis, prefix: str = "sc:", *, owns_client: bool = False
    ) -> None:
        if not client.connection_pool.connection_kwargs.get("decode_responses", False):
            raise ValueError("RedisKeyValue needs a client with decode_responses=True")
        self.client = client
        self.prefix = prefix
        self._owns_client = owns_client
        self._incr_create_ttl = client.register_script(_INCR_CREATE_TTL)
        self._hit = client.register_script(_HIT)

    @classmethod
    def from_url(
        cls, url: str, prefix: str = "sc:", *, blocking: bool = True, **pool_opts: Any
    ) -> RedisKeyValue:
        """Create a client (and its pool) from ``url``; the instance owns and closes it.

        redis-py 8 caps a plain pool at 100 connections and raises ``MaxConnectionsError``
        beyond that, so by default a ``BlockingConnectionPool`` is used instead: a burst of
        concurrent commands waits (up to ``timeout`` seconds) for a free connection.
        ``blocking=False`` gives plain ``redis.asyncio.from_url`` behaviour.

        Commands time out after ``socket_timeout`` seconds (connecting too) and are retried
        once (a pooled connection that died with a restarted server reconnects), so an
        unreachable server costs about two timeouts, not redis-py's default ten retries.
        """
        timeout = float(pool_opts.pop("socket_timeout", _DEFAULT_SOCKET_TIMEOUT))
        pool_opts.setdefault("socket_timeout", timeout)
        pool_opts.setdefault("socket_connect_timeout", timeout)
        pool_opts.setdefault(
            "retry", Retry(ExponentialBackoff(cap=0.1, base=0.01), _DEFAULT_RETRIES)
        )
        if blocking:
            pool_opts.setdefault("max_connections", _DEFAULT_MAX_CONNECTIONS)
            pool_opts.setdefault("timeout", _DEFAULT_POOL_TIMEOUT)
            pool = redis_async.BlockingConnectionPool.from_url(
                url, decode_responses=True, **pool_opts
            )
            client = redis_async.Redis.from_pool(pool)
        else:
            client = redis_async.from_url(url, decode_responses=True, **pool_opts)
        return cls(client, prefix, owns_client=True)

    def _k(self, key: str) -> str:
        return self.prefix + key

    # -- plain values -------------------------------------------------------------------
    async def get(self, key: str) -> str | None:
        return cast("str | None", await self.client.get(self._k(key)))

    async def set(
        self, key: str, value: Value, *, ttl: float | None = None, only_if_absent: bool = False
    ) -> bool:
        px = None if ttl is None else _ttl_ms(ttl)
        ok = await self.client.set(self._k(key), _encode(value), px=px, nx=only_if_absent)
        return bool(ok)

    async def delete(self, *keys: str) -> int:
        if not keys:
            return 0
        return int(await self.client.delete(*(self._k(k) for k in keys)))

    async def exists(self, key: str) -> bool:
        return bool(await self.client.exists(self._k(key)))

    async def ttl(self, key: str) -> float | None:
        ms = int(await self.client.pttl(self._k(key)))
        return None if ms < 0 else ms / 1000

    # -- counters -----------------------------------------------------------------------
    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        if ttl is None:
            return int(await self.client.incrby(self._k(key), amount))
        result = await self._incr_create_ttl(keys=[self._k(key)], args=[amount, _ttl_ms(ttl)])
        return int(result)

    async def get_int(self, key: str) -> int:
        raw = await self.client.get(self._k(key))
        return 0 if raw is None else int(raw)

    # -- sorted sets --------------------------------------------------------------------
    async def zadd(self, key: str, mapping: dict[str, float]) -> int:
        if not mapping:
            return 0
        added = await self.client.zadd(self._k(key), dict(mapping))
        return int(added or 0)

    async def zincrby(self, key: str, member: str, amount: float) -> float:
        score = await self.client.zincrby(self._k(key), amount, member)
        return float(cast("float", score))

    async def zscore(self, key: str, member: str) -> float | None:
        score = await self.client.zscore(self._k(key), member)
        return None if score is None else float(score)

    async def zrem(self, key: str, *members: str) -> int:
        if not members:
            return 0
        return int(await self.client.zrem(self._k(key), *members))

    async def ztop(self, key: str, start: int, stop: int) -> list[tuple[str, float]]:
        rows = await self.client.zrevrange(self._k(key), start, stop, withscores=True)
        # withscores=True answers (member, score) pairs; redis-py's type also covers plain lists.
        pairs = cast("list[tuple[str, float]]", rows)
        return [(str(member), float(score)) for member, score in pairs]

    # -- locks --------------------------------------------------------------------------
    def _redis_lock(self, name: str, ttl: float | None = None) -> RedisLock:
        """redis-py's lock on ``name`` (non-blocking: :meth:`KeyValue.hold` does the waiting).

        ``ttl`` is rounded up to whole milliseconds as everywhere else (redis-py truncates
        ``timeout * 1000``, so half a millisecond is added to land on exactly that count); the
        token lives on the object itself, not in thread-local storage: one object serves one call.
        """
        return RedisLock(
            self.client,
            self._k(LOCK_PREFIX + name),
            timeout=None if ttl is None else (_ttl_ms(ttl) + 0.5) / 1000,
            blocking=False,
            thread_local=False,
        )

    def _owned_lock(self, name: str, token: str, ttl: float | None = None) -> RedisLock:
        """redis-py's lock on ``name`` as held with ``token`` (as ``acquire`` would leave it)."""
        held = self._redis_lock(name, ttl)
        held.local.token = token
        return held

    async def lock(self, name: str, ttl: float) -> Lock | None:
        token = self._new_token()
        acquired = await self._redis_lock(name, ttl).acquire(blocking=False, token=token)
        return Lock(self, name, token) if acquired else None

    async def release_lock(self, name: str, token: str) -> bool:
        try:
            await self._owned_lock(name, token).release()
        except LockNotOwnedError:
            return False
        return True

    async def extend_lock(self, name: str, token: str, ttl: float) -> bool:
        try:
            return await self._owned_lock(name, token, ttl).reacquire()
        except LockNotOwnedError:
            return False

    # -- rate limits --------------------------------------------------------------------
    async def hit(self, key: str, *, limit: int, window: float) -> RateLimit:
        window_ms = _check_limit(limit, window)
        count, left_ms = await self._hit(keys=[self._k(RATE_PREFIX + key)], args=[window_ms])
        count = int(count)
        if count <= limit:
            return RateLimit(True, limit - count, 0.0)
        return RateLimit(False, 0, max(int(left_ms), 1) / 1000)

    # -- lifecycle ----------------------------------------------------------------------
    async def ping(self) -> bool:
        try:
            return bool(await self.client.ping())
        except (RedisError, OSError):
            return False

    async def close(self) -> None:
        if self._owns_client:
            await self.client.aclose()

    async def clear_namespace(self) -> int:
        deleted = 0
        batch: list[str] = []
        match = _glob_escape(self.prefix) + "*"
        async for key in self.client.scan_iter(match=match, count=_SCAN_BATCH):
            batch.append(key)
            if len(batch) >= _SCAN_BATCH:
                deleted += int(await self.client.unlink(*batch))
                batch.clear()
        if batch:
            deleted += int(await self.client.unlink(*batch))
        return deleted


# ======================================================================================
# In-process memory
# ======================================================================================

ZSet = dict[str, float]


class _MemoryStore:
    """The storage of one :class:`MemoryKeyValue`: data plus expiry deadlines."""

    def __init__(self, clock: Callable[[], float], sweep_interval: float) -> None:
        self.clock = clock
        self.sweep_interval = sweep_interval
        self.data: dict[str, str | ZSet] = {}
        self.deadlines: dict[str, float] = {}
        self.next_sweep = clock() + sweep_interval

    def now(self) -> float:
        """Current clock; also sweeps all expired keys at most every ``sweep_interval``."""
        now = self.clock()
        if now >= self.next_sweep:
            self.next_sweep = now + self.sweep_interval
            for key in [k for k, d in self.deadlines.items() if d <= now]:
                self.data.pop(key, None)
                del self.deadlines[key]
        return now

    def live(self, key: str, now: float) -> str | ZSet | None:
        """The key's value, deleting it first if it has expired (lazy expiry)."""
        deadline = self.deadlines.get(key)
        if deadline is not None and deadline <= now:
            del self.deadlines[key]
            self.data.pop(key, None)
            return None
        return self.data.get(key)

    def put(self, key: str, value: str | ZSet, deadline: float | None) -> None:
        self.data[key] = value
        if deadline is None:
            self.deadlines.pop(key, None)
        else:
            self.deadlines[key] = deadline

    def remove(self, key: str) -> None:
        self.data.pop(key, None)
        self.deadlines.pop(key, None)


def _as_str(key: str, value: str | ZSet | None) -> str | None:
    if isinstance(value, dict):
        raise TypeError(f"WRONGTYPE: {key!r} holds a sorted set, not a string")
    return value


def _as_zset(key: str, value: str | ZSet | None) -> ZSet | None:
    if isinstance(value, str):
        raise TypeError(f"WRONGTYPE: {key!r} holds a string, not a sorted set")
    return value


def _check_score(score: float) -> float:
    score = float(score)
    if math.isnan(score):
        raise ValueError("score is not a number (NaN)")
    return score


def _redis_range(length: int, start: int, stop: int) -> range:
    """Index range selected by Redis' inclusive ``start``/``stop`` with negative indexes."""
    if start < 0:
        start += length
    if stop < 0:
        stop += length
    start = max(start, 0)
    if start > stop or start >= length:
        return range(0)
    return range(start, min(stop, length - 1) + 1)


def _desc_key(item: tuple[str, float]) -> tuple[float, str]:
    # ZREVRANGE order: score descending, ties by member descending (byte order; for
    # valid UTF-8 this equals Python's code point order).
    return (item[1], item[0])


class MemoryKeyValue(KeyValue):
    """In-process :class:`KeyValue` for the single-worker embedded profile.

    Methods never await between reading and writing, so each call is atomic on the event
    loop. Expired keys are dropped lazily on access and swept at most once per
    ``sweep_interval`` seconds of ``clock`` time.
    """

    def __init__(
        self,
        prefix: str = "sc:",
        *,
        clock: Callable[[], float] = time.monotonic,
        sweep_interval: float = 1.0,
    ) -> None:
        self.prefix = prefix
        self._store = _MemoryStore(clock, sweep_interval)

    def _k(self, key: str) -> str:
        return self.prefix + key

    def _deadline(self, now: float, ttl: float | None) -> float | None:
        return None if ttl is None else now + _ttl_ms(ttl) / 1000

    def _get_str(self, key: str) -> str | None:
        store = self._store
        return _as_str(key, store.live(self._k(key), store.now()))

    def _get_zset(self, key: str) -> ZSet | None:
        store = self._store
        return _as_zset(key, store.live(self._k(key), store.now()))

    # -- plain values -------------------------------------------------------------------
    async def get(self, key: str) -> str | None:
        return self._get_str(key)

    async def set(
        self, key: str, value: Value, *, ttl: float | None = None, only_if_absent: bool = False
    ) -> bool:
        encoded = _encode(value)
        store = self._store
        now = store.now()
        deadline = self._deadline(now, ttl)
        full = self._k(key)
        if only_if_absent and store.live(full, now) is not None:
            return False
        store.put(full, encoded, deadline)
        return True

    async def delete(self, *keys: str) -> int:
        store = self._store
        now = store.now()
        count = 0
        for key in keys:
            full = self._k(key)
            if store.live(full, now) is not None:
                store.remove(full)
                count += 1
        return count

    async def exists(self, key: str) -> bool:
        store = self._store
        return store.live(self._k(key), store.now()) is not None

    async def ttl(self, key: str) -> float | None:
        store = self._store
        now = store.now()
        full = self._k(key)
        if store.live(full, now) is None:
            return None
        deadline = store.deadlines.get(full)
        return None if deadline is None else round(deadline - now, 3)

    # -- counters -----------------------------------------------------------------------
    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        store = self._store
        now = store.now()
        deadline = self._deadline(now, ttl)
        full = self._k(key)
        current = _as_str(key, store.live(full, now))
        if current is None:
            store.put(full, str(amount), deadline)
            return amount
        value = int(current) + amount
        store.data[full] = str(value)
        return value

    async def get_int(self, key: str) -> int:
        raw = self._get_str(key)
        return 0 if raw is None else int(raw)

    # -- sorted sets --------------------------------------------------------------------
    async def zadd(self, key: str, mapping: dict[str, float]) -> int:
        if not mapping:
            return 0
        scores = {str(m): _check_score(s) for m, s in mapping.items()}
        store = self._store
        full = self._k(key)
        zset = _as_zset(key, store.live(full, store.now()))
        if zset is None:
            zset = {}
            store.put(full, zset, None)
        added = sum(1 for m in scores if m not in zset)
        zset.update(scores)
        return added

    async def zincrby(self, key: str, member: str, amount: float) -> float:
        store = self._store
        full = self._k(key)
        zset = _as_zset(key, store.live(full, store.now()))
        score = _check_score((0.0 if zset is None else zset.get(member, 0.0)) + amount)
        if zset is None:
            zset = {}
            store.put(full, zset, None)
        zset[member] = score
        return score

    async def zscore(self, key: str, member: str) -> float | None:
        zset = self._get_zset(key)
        return None if zset is None else zset.get(member)

    async def zrem(self, key: str, *members: str) -> int:
        store = self._store
        full = self._k(key)
        zset = _as_zset(key, store.live(full, store.now()))
        if not zset:
            return 0
        removed = 0
        for member in members:
            if zset.pop(member, None) is not None:
                removed += 1
        if not zset:
            store.remove(full)
        return removed

    async def ztop(self, key: str, start: int, stop: int) -> list[tuple[str, float]]:
        zset = self._get_zset(key)
        if not zset:
            return []
        selected = _redis_range(len(zset), start, stop)
        if not selected:
            return []
        if selected.stop < len(zset) // 4:
            ordered = heapq.nlargest(selected.stop, zset.items(), key=_desc_key)
        else:
            ordered = sorted(zset.items(), key=_desc_key, reverse=True)
        return ordered[selected.start : selected.stop]

    # -- locks --------------------------------------------------------------------------
    async def lock(self, name: str, ttl: float) -> Lock | None:
        store = self._store
        now = store.now()
        deadline = self._deadline(now, ttl)
        full = self._k(LOCK_PREFIX + name)
        if store.live(full, now) is not None:
            return None
        token = self._new_token()
        store.put(full, token, deadline)
        return Lock(self, name, token)

    async def release_lock(self, name: str, token: str) -> bool:
        store = self._store
        full = self._k(LOCK_PREFIX + name)
        if store.live(full, store.now()) != token:
            return False
        store.remove(full)
        return True

    async def extend_lock(self, name: str, token: str, ttl: float) -> bool:
        store = self._store
        now = store.now()
        deadline = now + _ttl_ms(ttl) / 1000
        full = self._k(LOCK_PREFIX + name)
        if store.live(full, now) != token:
            return False
        store.deadlines[full] = deadline
        return True

    # -- rate limits --------------------------------------------------------------------
    async def hit(self, key: str, *, limit: int, window: float) -> RateLimit:
        window_s = _check_limit(limit, window) / 1000
        store = self._store
        now = store.now()
        full = self._k(RATE_PREFIX + key)
        current = _as_str(key, store.live(full, now))
        deadline = store.deadlines.get(full)
        if current is None or deadline is None:
            count = 1 if current is None else int(current) + 1
            deadline = now + window_s
        else:
            count = int(current) + 1
        store.put(full, str(count), deadline)
        if count <= limit:
            return RateLimit(True, limit - count, 0.0)
        return RateLimit(False, 0, max(round(deadline - now, 3), 0.001))

    # -- lifecycle ----------------------------------------------------------------------
    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        """Nothing to release."""

    async def clear_namespace(self) -> int:
        store = self._store
        now = store.now()
        doomed = [k for k in store.data if k.startswith(self.prefix)]
        deleted = 0
        for full in doomed:
            if store.live(full, now) is not None:
                deleted += 1
            store.remove(full)
        return deleted


def create_kv(redis_url: str | None, *, prefix: str = "sc:") -> KeyValue:
    """Redis-backed store when ``redis_url`` is given, otherwise the in-process one.

    The app wraps the Redis store in ``backend.kv_resilience.ResilientKeyValue``
    (``backend.context.build_context``); this factory gives the bare store.
    """
    if redis_url:
        return RedisKeyValue.from_url(redis_url, prefix=prefix)
    return MemoryKeyValue(prefix=prefix)
