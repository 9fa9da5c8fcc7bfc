"""Revoked sign-in sessions: the database is the truth, the key-value store carries them to
every worker, and each worker checks tokens against its own copy.

Revoking a session (logout, refresh-token reuse, a deactivated account) marks its refresh tokens
revoked in the database and adds the session's family to the sorted set ``revoked-sessions``
(score: when, in epoch seconds). Each worker mirrors that set in memory, so checking a valid
token costs no round trip at all while the mirror is fresh. At most every ``SYNC_SECONDS``
(0.5 s) one request per worker reads what was added since its last read (``OVERLAP`` of the past
again, for clocks that disagree and writes that land late); requests arriving meanwhile wait
for that one read. So a revocation reaches every worker within about half a second, and the
worker that revoked knows at once. An entry lives as long as an access token of that session
can still be presented (plus slack): in the mirror, and in the set (trimmed on each revocation).

The store can lose the set (Redis restarted: it keeps nothing on disk) or be unreachable.
Accepting a revoked token then would be failing open: a stolen token that was revoked would work
again. So the check never trusts a mirror it cannot vouch for:

* while this worker's store is degraded (``kv.degraded``: Redis unreachable, the breaker open),
  or when the read itself hit the outage, the answer comes from the database (one indexed query
  on ``core_refresh_token.family`` per authenticated request, only during the outage);
* a marker (``revoked-sessions:loaded``) says the store holds every revocation; it is read with
  every sync. If it is missing (a restarted or emptied store), the revocations of the last
  access-token lifetime are written back from the database before the mirror is trusted again,
  scored with the time of writing so that every worker's next read takes them in; the request
  that found the marker missing asks the database;
* when Redis answers again after an outage, each worker that saw the outage writes the
  revocations back the same way (a recovery hook), so one made during the outage reaches the
  workers that did not see it at their next read.

Fail-closed on the source of truth, not on the cache: if the database is down too, the request
fails with 503 like every other one that needs the database.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import weakref
from dataclasses import dataclass, field
from datetime import timedelta

from backend.context import AppContext
from backend.kv import KeyValue
from backend.kv_resilience import OUTAGE_ERRORS
from backend.models import RefreshToken

log = logging.getLogger("smartcircle.auth")
FEED = "revoked-sessions"
LOADED = "revoked-sessions:loaded"
SYNC_SECONDS = 0.5
OVERLAP = 30.0


@dataclass
class _Mirror:
    """One worker's copy of the revoked sessions of one store."""

    expires: dict[str, float] = field(default_factory=dict)  # family -> epoch seconds
    synced_at: float = -math.inf  # monotonic time of the last complete read
    read_from: float = 0.0  # the next read starts here (minus OVERLAP), epoch seconds
    pruned_at: float = 0.0
    reading: asyncio.Future[bool] | None = None


# Per store (tests swap the store; a store that goes away takes its mirror with it).
_mirrors: weakref.WeakKeyDictionary[KeyValue, _Mirror] = weakref.WeakKeyDictionary()


def _mirror(kv: KeyValue) -> _Mirror:
    mirror = _mirrors.get(kv)
    if mirror is None:
        mirror = _mirrors[kv] = _Mirror()
    return mirror


def _lifetime(ctx: AppContext) -> int:
    """How long an access token of a revoked session may still be presented (plus slack)."""
    return ctx.settings.access_token_ttl + 60


async def publish(*, ctx: AppContext, family: str) -> None:
    """Make one revocation known (the database already holds it): this worker at once, the
    others at their next read of the store."""
    now = ctx.clock.time()
    lifetime = _lifetime(ctx)
    _mirror(ctx.kv).expires[family] = now + lifetime
    await ctx.kv.zadd(FEED, {family: now})
    await ctx.kv.ztrim_below(FEED, now - lifetime)


async def republish(ctx: AppContext) -> int:
    """Write every revocation young enough to matter back from the database; how many."""
    now = ctx.clock.now()
    lifetime = _lifetime(ctx)
    families = {
        str(family)
        for family in await RefreshToken.filter(
            revoked_at__gte=now - timedelta(seconds=lifetime)
        ).values_list("family", flat=True)
    }
    # Scored now, not when revoked: every worker's next read (which starts a little before
    # its previous one) takes them in. They stay a little longer than needed; that is harmless.
    stamp = ctx.clock.time()
    if families:
        await ctx.kv.zadd(FEED, dict.fromkeys(families, stamp))
    await ctx.kv.set(LOADED, "1")
    if families:
        log.info("revoked sessions written back to the key-value store", extra={"n": len(families)})
    return len(families)


async def _read(ctx: AppContext, mirror: _Mirror) -> bool:
    """Bring the mirror up to date; False when it cannot be trusted for this request."""
    kv = ctx.kv
    started, began = ctx.clock.time(), time.monotonic()
    loaded = await kv.exists(LOADED)
    if kv.degraded:
        return False
    if not loaded:
        await republish(ctx)
    # (a clock set back, as tests do, reads from its own now)
    entries = await kv.zsince(FEED, min(mirror.read_from, started) - OVERLAP)
    if kv.degraded:
        return False
    lifetime = _lifetime(ctx)
    expires = mirror.expires
    for family, at in entries:
        expires[family] = max(expires.get(family, 0.0), at + lifetime)
    if started - mirror.pruned_at > lifetime:
        for family in [f for f, until in expires.items() if until <= started]:
            del expires[family]
        mirror.pruned_at = started
    mirror.read_from, mirror.synced_at = started, began
    return loaded  # written back just now: this request asks the database


async def _fresh(ctx: AppContext, mirror: _Mirror) -> bool:
    """Whether the mirror may answer: read at most every SYNC_SECONDS, one read at a time."""
    if time.monotonic() - mirror.synced_at < SYNC_SECONDS:
        return True
    reading = mirror.reading
    if reading is None or reading.get_loop() is not asyncio.get_running_loop():
        reading = mirror.reading = asyncio.ensure_future(_read(ctx, mirror))

        def done(task: asyncio.Future[bool]) -> None:
            if mirror.reading is task:
                mirror.reading = None

        reading.add_done_callback(done)
    try:
        return await asyncio.shield(reading)
    except OUTAGE_ERRORS:
        return False


async def _revoked_in_database(family: str) -> bool:
    return await RefreshToken.filter(family=family, revoked_at__isnull=False).exists()


async def session_revoked(ctx: AppContext, family: str) -> bool:
    """Whether the sign-in session ``family`` was revoked (see the module for the policy)."""
    kv = ctx.kv
    mirror = _mirror(kv)
    degraded = kv.degraded
    if degraded:  # a mirror from before the outage is not trusted after it
        mirror.synced_at = -math.inf
    # Reading while degraded is how the store is probed again (the breaker lets one through).
    if not await _fresh(ctx, mirror) or degraded or kv.degraded:
        return await _revoked_in_database(family)
    until = mirror.expires.get(family)
    return until is not None and until > ctx.clock.time()
