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
the usual trade-off of fixed windows. :meth:`KeyValue.hit_all` counts several limits in
order in one round trip (one Lua script in Redis), stopping at the first refused one,
exactly as consecutive :meth:`KeyValue.hit` calls that stop at a refusal would.

Batches
-------
:meth:`KeyValue.zpipeline` applies ``ZINCRBY`` s and then reads ``ZSCORE`` s in one round trip
(a Redis pipeline, not a transaction: like the single calls, each step is atomic on its own).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import math
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass

__all__ = [
    "Increment",
    "KeyValue",
    "Limit",
    "Lock",
    "LockNotAcquired",
    "RateLimit",
    "Score",
    "Value",
]

Value = str | int | float
Increment = tuple[str, str, float]  # sorted set key, member, amount
Score = tuple[str, str]  # sorted set key, member
Limit = tuple[str, int, float]  # rate-limit key, limit, window (seconds)

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

    @abc.abstractmethod
    async def zsince(self, key: str, low: float) -> list[tuple[str, float]]:
        """Members scored ``low`` or more, lowest score first (ties by member), like
        ZRANGEBYSCORE key low +inf WITHSCORES."""

    @abc.abstractmethod
    async def ztrim_below(self, key: str, high: float) -> int:
        """Remove the members scored below ``high``; returns how many."""

    async def zpipeline(
        self, increments: Sequence[Increment], reads: Sequence[Score] = ()
    ) -> list[float | None]:
        """Apply the increments in order, then answer the scores of ``reads`` (one round trip
        in Redis; this default makes one call per step)."""
        for key, member, amount in increments:
            await self.zincrby(key, member, amount)
        return [await self.zscore(key, member) for key, member in reads]

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

    async def hit_all(self, limits: Sequence[Limit]) -> list[RateLimit]:
        """Count one hit on each limit in order, stopping after the first refused one: the
        answers up to and including it (one round trip in Redis)."""
        results: list[RateLimit] = []
        for key, limit, window in limits:
            result = await self.hit(key, limit=limit, window=window)
            results.append(result)
            if not result.allowed:
                break
        return results

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
