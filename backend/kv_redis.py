"""The Redis implementation of the key-value layer (``backend.kv``): Lua for what must be atomic."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import redis.asyncio as redis_async
from redis.asyncio.lock import Lock as RedisLock
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import LockNotOwnedError, NoScriptError, RedisError

from backend.coalesce import Coalesced
from backend.kv import (
    _DEFAULT_MAX_CONNECTIONS,
    _DEFAULT_POOL_TIMEOUT,
    _DEFAULT_RETRIES,
    _DEFAULT_SOCKET_TIMEOUT,
    _SCAN_BATCH,
    LOCK_PREFIX,
    RATE_PREFIX,
    Increment,
    KeyValue,
    Limit,
    Lock,
    RateLimit,
    Score,
    Value,
    _check_limit,
    _encode,
    _ttl_ms,
)
from backend.kv_memory import MemoryKeyValue

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

# _HIT for each key in turn (ARGV: window ms, limit per key), stopping after the first refusal.
_HIT_ALL = """
local answers = {}
for i, key in ipairs(KEYS) do
    local window = ARGV[2 * i - 1]
    local n = redis.call('INCR', key)
    if n == 1 then
        redis.call('PEXPIRE', key, window)
    end
    local left = redis.call('PTTL', key)
    if left < 0 then
        redis.call('PEXPIRE', key, window)
        left = tonumber(window)
    end
    answers[#answers + 1] = n
    answers[#answers + 1] = left
    if n > tonumber(ARGV[2 * i]) then
        break
    end
end
return answers
"""


def _rate_limits(limits: Sequence[Limit], flat: Sequence[Any]) -> list[RateLimit]:
    """The answers of one ``_HIT_ALL`` call: (count, ms left) per limit, up to the refusal."""
    results = []
    for (_key, limit, _window), count, left_ms in zip(limits, flat[0::2], flat[1::2], strict=False):
        if int(count) <= limit:
            results.append(RateLimit(True, limit - int(count), 0.0))
        else:
            results.append(RateLimit(False, 0, max(int(left_ms), 1) / 1000))
    return results


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
        self._hit_all = client.register_script(_HIT_ALL)
        # Concurrent hit_all calls of this worker share one pipeline (one round trip).
        self._hit_groups: Coalesced[list[Limit], list[RateLimit]] = Coalesced(self._hit_many)

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

    async def zsince(self, key: str, low: float) -> list[tuple[str, float]]:
        rows = await self.client.zrangebyscore(self._k(key), low, "+inf", withscores=True)
        pairs = cast("list[tuple[str, float]]", rows)
        return [(str(member), float(score)) for member, score in pairs]

    async def ztrim_below(self, key: str, high: float) -> int:
        return int(await self.client.zremrangebyscore(self._k(key), "-inf", f"({high!r}"))

    async def zpipeline(
        self, increments: Sequence[Increment], reads: Sequence[Score] = ()
    ) -> list[float | None]:
        if not increments and not reads:
            return []
        pipe = self.client.pipeline(transaction=False)
        for key, member, amount in increments:
            pipe.zincrby(self._k(key), amount, member)
        for key, member in reads:
            pipe.zscore(self._k(key), member)
        answers = await pipe.execute()
        scores = answers[len(increments) :]
        return [None if score is None else float(score) for score in scores]

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

    async def hit_all(self, limits: Sequence[Limit]) -> list[RateLimit]:
        if not limits:
            return []
        return await self._hit_groups(list(limits))

    async def _hit_many(self, groups: list[list[Limit]]) -> list[list[RateLimit]]:
        """Each group's ``hit_all``, one ``EVALSHA`` per group, all in one pipeline: one round
        trip (a script object in a pipeline would first ask ``SCRIPT EXISTS``, every time). A
        server that lost its script cache (a restart, ``SCRIPT FLUSH``) answers ``NOSCRIPT`` to
        a call, which then counted nothing: the script is loaded and those calls sent again."""
        calls: list[list[Any]] = []
        for limits in groups:
            args: list[Any] = [self._k(RATE_PREFIX + key) for key, _limit, _window in limits]
            for _key, limit, window in limits:
                args += [_check_limit(limit, window), limit]
            calls.append(args)
        answers: dict[int, Any] = {}
        pending = list(range(len(groups)))
        for attempt in range(2):
            pipe = self.client.pipeline(transaction=False)
            for i in pending:
                pipe.evalsha(self._hit_all.sha, len(groups[i]), *calls[i])
            results = await pipe.execute(raise_on_error=False)
            lost = []
            for i, result in zip(pending, results, strict=True):
                if isinstance(result, NoScriptError) and attempt == 0:
                    lost.append(i)
                elif isinstance(result, Exception):
                    raise result
                else:
                    answers[i] = result
            if not lost:
                break
            self._hit_all.sha = await self.client.script_load(_HIT_ALL)
            pending = lost
        return [_rate_limits(limits, answers[i]) for i, limits in enumerate(groups)]

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


def create_kv(
    redis_url: str | None, *, prefix: str = "sc:", socket_timeout: float | None = None
) -> KeyValue:
    """Redis-backed store when ``redis_url`` is given, otherwise the in-process one.

    The app wraps the Redis store in ``backend.kv_resilience.ResilientKeyValue``
    (``backend.context.build_context``); this factory gives the bare store.
    """
    if redis_url:
        if socket_timeout is None:
            return RedisKeyValue.from_url(redis_url, prefix=prefix)
        return RedisKeyValue.from_url(redis_url, prefix=prefix, socket_timeout=socket_timeout)
    return MemoryKeyValue(prefix=prefix)
