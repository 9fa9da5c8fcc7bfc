"""Revoked sign-in sessions: the database is the truth, the key-value store the fast path.

Revoking a session (logout, refresh-token reuse, a deactivated account) marks its refresh tokens
revoked in the database and writes ``revoked-session:<family>`` to the key-value store for as
long as an access token of that session can live. Every authenticated request asks the store.

The store can lose those markers (Redis restarted: it keeps nothing on disk) or be unreachable.
Accepting a revoked token then would be failing open: a stolen token that was revoked would work
again. So the check never trusts an answer it cannot vouch for:

* while this worker's store is degraded (``kv.degraded``: Redis unreachable, the breaker open),
  or when the call itself hit the outage, the answer comes from the database (one indexed query
  on ``core_refresh_token.family`` per authenticated request, only during the outage);
* a marker (``revoked-sessions:loaded``) says the store holds every revocation; if it is missing
  (a restarted or emptied store), the revocations of the last access-token lifetime are written
  back from the database before the store is trusted again (checked at most every few seconds
  per worker);
* when Redis answers again after an outage, each worker that saw the outage writes the
  revocations back the same way (a recovery hook), so one made during the outage is in Redis
  too. A worker that saw no traffic during the outage trusts Redis from the start; the worker
  that revoked writes it back at its first call after the outage (within the breaker's retry
  interval), which bounds the window in which another worker could still accept that token.

Fail-closed on the source of truth, not on the cache: if the database is down too, the request
fails with 503 like every other one that needs the database.
"""

from __future__ import annotations

import logging
import time
import weakref
from datetime import timedelta

from backend.context import AppContext
from backend.kv import KeyValue
from backend.models import RefreshToken

log = logging.getLogger("smartcircle.auth")
LOADED = "revoked-sessions:loaded"
RECHECK_SECONDS = 5.0
# When this worker last saw the marker, per store (tests swap the store).
_seen: weakref.WeakKeyDictionary[KeyValue, float] = weakref.WeakKeyDictionary()


def revoked_key(family: str) -> str:
    return f"revoked-session:{family}"


def _lifetime(ctx: AppContext) -> int:
    """How long an access token of a revoked session may still be presented (plus slack)."""
    return ctx.settings.access_token_ttl + 60


async def publish(*, ctx: AppContext, family: str, reason: str) -> None:
    """Write one revocation to the store (the database already holds it)."""
    await ctx.kv.set(revoked_key(family), reason, ttl=_lifetime(ctx))


async def republish(ctx: AppContext) -> int:
    """Write every revocation young enough to matter back from the database; how many."""
    now = ctx.clock.now()
    lifetime = _lifetime(ctx)
    rows = await RefreshToken.filter(revoked_at__gte=now - timedelta(seconds=lifetime)).values_list(
        "family", "revoked_at"
    )
    latest: dict[str, float] = {}
    for family, revoked_at in rows:
        left = lifetime - (now - revoked_at).total_seconds()
        latest[str(family)] = max(left, latest.get(str(family), 0.0))
    for family, left in latest.items():
        if left > 0:
            await ctx.kv.set(revoked_key(family), "republished", ttl=left)
    await ctx.kv.set(LOADED, "1")
    _seen[ctx.kv] = time.monotonic()
    if latest:
        log.info("revoked sessions written back to the key-value store", extra={"n": len(latest)})
    return len(latest)


async def _store_is_complete(ctx: AppContext) -> bool:
    """Whether the store is known to hold every revocation; if it lost them, they are written
    back and the answer is False (the caller asks the database this once)."""
    kv = ctx.kv
    seen = _seen.get(kv)
    if seen is not None and time.monotonic() - seen < RECHECK_SECONDS:
        return True
    if await kv.exists(LOADED):
        _seen[kv] = time.monotonic()
        return True
    await republish(ctx)
    return False  # written back just now: this request asks the database


async def _revoked_in_database(family: str) -> bool:
    return await RefreshToken.filter(family=family, revoked_at__isnull=False).exists()


async def session_revoked(ctx: AppContext, family: str) -> bool:
    """Whether the sign-in session ``family`` was revoked (see the module for the policy)."""
    kv = ctx.kv
    degraded = kv.degraded
    if await kv.exists(revoked_key(family)):
        return True
    if degraded or kv.degraded or not await _store_is_complete(ctx):
        return await _revoked_in_database(family)
    return False
