"""The in-process implementation of the key-value layer (``backend.kv``).

The embedded profile's store, and the fallback of ``backend.kv_resilience``.
"""

from __future__ import annotations

import heapq
import math
import time
from collections.abc import Callable

from backend.kv import (
    LOCK_PREFIX,
    RATE_PREFIX,
    KeyValue,
    Lock,
    RateLimit,
    Value,
    _check_limit,
    _encode,
    _ttl_ms,
)

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

    async def zsince(self, key: str, low: float) -> list[tuple[str, float]]:
        zset = self._get_zset(key)
        if not zset:
            return []
        return sorted(((m, s) for m, s in zset.items() if s >= low), key=lambda ms: (ms[1], ms[0]))

    async def ztrim_below(self, key: str, high: float) -> int:
        store = self._store
        full = self._k(key)
        zset = _as_zset(key, store.live(full, store.now()))
        if not zset:
            return 0
        gone = [m for m, s in zset.items() if s < high]
        for member in gone:
            del zset[member]
        if not zset:
            store.remove(full)
        return len(gone)

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
