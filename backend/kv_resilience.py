"""The key-value store when Redis fails: one wrapper that degrades per kind of operation.

Redis holds only what can be rebuilt (live counters, rankings, rate-limit and sign-in counters,
revocation markers, caches, locks). So when it is unreachable the app keeps answering, and
:class:`ResilientKeyValue` decides, in this one place, what each kind of operation does:

================================  ======================================================
operation                         while the store is unreachable
================================  ======================================================
values and counters               a per-worker in-process store (:class:`MemoryKeyValue`):
(``get set delete exists ttl      reads of caches miss until this worker writes them; sign-in
incr get_int``)                   and refusal counters count per worker
rate limits (``hit hit_all``)     the per-worker store: each worker limits on its own, so with
                                  W workers a caller gets at most W times the limit
locks (``lock hold``)             the per-worker store: a lock excludes only within this
                                  worker. Everything the app guards with a lock is idempotent,
                                  and scheduled jobs are claimed in the database, not by locks
sorted-set writes (``zadd        dropped, logged once per outage; the database holds every
zincrby zrem ztrim_below``,       vote and revocation: the ``crowdsource.reconcile`` job
``zpipeline``'s)                  rewrites the rankings, the recovery hook the revocations
sorted-set reads (``zscore ztop   raise :class:`KeyValueUnavailable` (a ``ConnectionError``):
zsince``, ``zpipeline`` with      callers count (or look revocations up) in the database
reads)                            instead
``ping``                          always asks Redis (health reports the store as degraded)
================================  ======================================================

There is no idempotency record in the store: one-vote, one-booking and refresh-token rotation are
unique constraints and conditional updates in the database, so they hold during an outage.

A circuit breaker keeps a dead Redis from costing every request a timeout: after a failure, this
worker uses the fallbacks for ``retry_after`` seconds without trying Redis, then lets one
operation through as a probe; its success closes the breaker and runs the recovery hooks (the
revoked sessions are written back from the database, see ``backend/auth/revocations.py``).

Only outages count as failures (connection errors, timeouts, a Redis that is loading, read-only
or out of memory). A wrong command or type (``ResponseError``) is a bug and is raised as it is.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

from redis.exceptions import (
    ConnectionError as RedisConnectionError,
)
from redis.exceptions import (
    OutOfMemoryError,
    ReadOnlyError,
    TryAgainError,
)
from redis.exceptions import (
    TimeoutError as RedisTimeoutError,
)

from backend.kv import Increment, KeyValue, Limit, Lock, RateLimit, Score, Value
from backend.kv_memory import MemoryKeyValue

__all__ = ["OUTAGE_ERRORS", "CircuitBreaker", "KeyValueUnavailable", "ResilientKeyValue"]

log = logging.getLogger("smartcircle.kv")
T = TypeVar("T")

# What an unreachable or unusable Redis raises (ConnectionError covers BusyLoadingError and a
# pool with no free connection; OSError covers refused connections and socket timeouts).
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ReadOnlyError,
    OutOfMemoryError,
    TryAgainError,
    OSError,
)
RecoveryHook = Callable[[], Awaitable[object]]


class KeyValueUnavailable(ConnectionError):
    """A ranking read while the key-value store is unreachable: count in the database."""


class CircuitBreaker:
    """Closed (use Redis) or open (use the fallbacks) for ``retry_after`` seconds, then a probe.

    While open, :meth:`allows` answers False until the cool-down has passed; then it answers True
    to exactly one caller (the probe) until :meth:`succeeded` or :meth:`failed` is called.
    """

    def __init__(self, retry_after: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_after = retry_after
        self._clock = clock
        self._open_until: float | None = None
        self._probing = False
        self.opened_at: float | None = None

    @property
    def is_open(self) -> bool:
        return self._open_until is not None

    def allows(self) -> bool:
        if self._open_until is None:
            return True
        if self._probing or self._clock() < self._open_until:
            return False
        self._probing = True
        return True

    def failed(self) -> bool:
        """Open (again) for the cool-down; True if this opened a closed breaker."""
        now = self._clock()
        opened = self._open_until is None
        if opened:
            self.opened_at = now
        self._open_until = now + self.retry_after
        self._probing = False
        return opened

    def abandoned(self) -> None:
        """The probe ended without an answer either way (cancelled, or a bug): the next caller
        after the cool-down probes instead."""
        self._probing = False

    def succeeded(self) -> bool:
        """Close; True if this closed an open breaker (the store is back)."""
        was_open = self._open_until is not None
        self._open_until = None
        self._probing = False
        return was_open


class ResilientKeyValue(KeyValue):
    """``primary`` (Redis) with per-operation degradation when it is unreachable (see module)."""

    def __init__(
        self,
        primary: KeyValue,
        *,
        fallback: KeyValue | None = None,
        retry_after: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.primary = primary
        self.prefix = primary.prefix
        self.fallback = fallback or MemoryKeyValue(prefix=primary.prefix)
        self.breaker = CircuitBreaker(retry_after, clock=clock)
        self.dropped_writes = 0
        self._recovery_hooks: list[RecoveryHook] = []
        self._clock = clock

    # -- the breaker --------------------------------------------------------------------------
    @property
    def degraded(self) -> bool:
        """True while this worker is using the fallbacks (the breaker is open)."""
        return self.breaker.is_open

    def on_recovery(self, hook: RecoveryHook) -> None:
        """Run ``hook`` each time the store answers again after an outage."""
        self._recovery_hooks.append(hook)

    def _failed(self, exc: BaseException) -> None:
        if self.breaker.failed():
            log.warning(
                "key-value store unreachable: per-worker fallback, retrying every %gs",
                self.breaker.retry_after,
                extra={"error": type(exc).__name__},
            )

    async def _succeeded(self) -> None:
        if not self.breaker.succeeded():
            return
        opened = self.breaker.opened_at
        log.warning(
            "key-value store reachable again",
            extra={
                "outage_s": None if opened is None else round(self._clock() - opened, 1),
                "dropped_writes": self.dropped_writes,
            },
        )
        self.dropped_writes = 0
        for hook in self._recovery_hooks:
            try:
                await hook()
            except Exception:
                log.exception("key-value recovery hook failed")

    async def _call(
        self, primary: Callable[[], Awaitable[T]], fallback: Callable[[], Awaitable[T]]
    ) -> T:
        """``primary()`` unless the breaker is open or it fails with an outage: ``fallback()``."""
        if self.breaker.allows():
            try:
                result = await primary()
            except OUTAGE_ERRORS as exc:
                self._failed(exc)
            except BaseException:
                self.breaker.abandoned()  # never leave a probe pending forever
                raise
            else:
                await self._succeeded()
                return result
        return await fallback()

    def _dropped(self, value: T) -> Callable[[], Awaitable[T]]:
        async def drop() -> T:
            self.dropped_writes += 1
            return value

        return drop

    @staticmethod
    def _answer(value: T) -> Callable[[], Awaitable[T]]:
        async def answer() -> T:
            return value

        return answer

    @staticmethod
    def _unavailable(what: str) -> Callable[[], Awaitable[T]]:
        async def refuse() -> T:
            raise KeyValueUnavailable(f"key-value store unreachable ({what})")

        return refuse

    # -- values and counters: the per-worker store --------------------------------------------
    async def get(self, key: str) -> str | None:
        return await self._call(lambda: self.primary.get(key), lambda: self.fallback.get(key))

    async def set(
        self, key: str, value: Value, *, ttl: float | None = None, only_if_absent: bool = False
    ) -> bool:
        return await self._call(
            lambda: self.primary.set(key, value, ttl=ttl, only_if_absent=only_if_absent),
            lambda: self.fallback.set(key, value, ttl=ttl, only_if_absent=only_if_absent),
        )

    async def delete(self, *keys: str) -> int:
        return await self._call(
            lambda: self.primary.delete(*keys), lambda: self.fallback.delete(*keys)
        )

    async def exists(self, key: str) -> bool:
        return await self._call(lambda: self.primary.exists(key), lambda: self.fallback.exists(key))

    async def ttl(self, key: str) -> float | None:
        return await self._call(lambda: self.primary.ttl(key), lambda: self.fallback.ttl(key))

    async def incr(self, key: str, amount: int = 1, *, ttl: float | None = None) -> int:
        return await self._call(
            lambda: self.primary.incr(key, amount, ttl=ttl),
            lambda: self.fallback.incr(key, amount, ttl=ttl),
        )

    async def get_int(self, key: str) -> int:
        return await self._call(
            lambda: self.primary.get_int(key), lambda: self.fallback.get_int(key)
        )

    # -- rankings: writes dropped, reads refused ------------------------------------------------
    async def zadd(self, key: str, mapping: dict[str, float]) -> int:
        return await self._call(lambda: self.primary.zadd(key, mapping), self._dropped(0))

    async def zincrby(self, key: str, member: str, amount: float) -> float:
        return await self._call(
            lambda: self.primary.zincrby(key, member, amount), self._dropped(float(amount))
        )

    async def zrem(self, key: str, *members: str) -> int:
        return await self._call(lambda: self.primary.zrem(key, *members), self._dropped(0))

    async def zscore(self, key: str, member: str) -> float | None:
        return await self._call(
            lambda: self.primary.zscore(key, member), self._unavailable("zscore")
        )

    async def ztop(self, key: str, start: int, stop: int) -> list[tuple[str, float]]:
        return await self._call(
            lambda: self.primary.ztop(key, start, stop), self._unavailable("ztop")
        )

    async def zsince(self, key: str, low: float) -> list[tuple[str, float]]:
        return await self._call(lambda: self.primary.zsince(key, low), self._unavailable("zsince"))

    async def ztrim_below(self, key: str, high: float) -> int:
        return await self._call(lambda: self.primary.ztrim_below(key, high), self._dropped(0))

    async def zpipeline(
        self, increments: Sequence[Increment], reads: Sequence[Score] = ()
    ) -> list[float | None]:
        async def degraded() -> list[float | None]:
            self.dropped_writes += len(increments)
            if reads:
                raise KeyValueUnavailable("key-value store unreachable (zscore)")
            return []

        return await self._call(lambda: self.primary.zpipeline(increments, reads), degraded)

    # -- locks: per worker while unreachable ----------------------------------------------------
    async def lock(self, name: str, ttl: float) -> Lock | None:
        async def in_primary() -> Lock | None:
            # Bound to the wrapper: releasing during an outage answers False (the lock expires
            # on its own) instead of raising. A fallback lock stays bound to the fallback.
            held = await self.primary.lock(name, ttl)
            return None if held is None else Lock(self, name, held.token)

        return await self._call(in_primary, lambda: self.fallback.lock(name, ttl))

    async def release_lock(self, name: str, token: str) -> bool:
        return await self._call(lambda: self.primary.release_lock(name, token), self._answer(False))

    async def extend_lock(self, name: str, token: str, ttl: float) -> bool:
        return await self._call(
            lambda: self.primary.extend_lock(name, token, ttl), self._answer(False)
        )

    # -- rate limits: per worker while unreachable ----------------------------------------------
    async def hit(self, key: str, *, limit: int, window: float) -> RateLimit:
        return await self._call(
            lambda: self.primary.hit(key, limit=limit, window=window),
            lambda: self.fallback.hit(key, limit=limit, window=window),
        )

    async def hit_all(self, limits: Sequence[Limit]) -> list[RateLimit]:
        return await self._call(
            lambda: self.primary.hit_all(limits), lambda: self.fallback.hit_all(limits)
        )

    # -- lifecycle ------------------------------------------------------------------------------
    async def ping(self) -> bool:
        """Ask Redis itself (whatever the breaker says); an answer closes the breaker."""
        if await self.primary.ping():
            await self._succeeded()
            return True
        self._failed(ConnectionError("no answer to PING"))
        return False

    async def close(self) -> None:
        await self.primary.close()
        await self.fallback.close()

    async def clear_namespace(self) -> int:
        cleared = await self.fallback.clear_namespace()
        return cleared + await self.primary.clear_namespace()
