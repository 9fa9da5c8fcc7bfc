"""The core feature: health, sign-in, notifications, housekeeping, the core tables."""

from __future__ import annotations

from functools import partial

from backend.auth.revocations import republish
from backend.auth.views import bp as auth_bp
from backend.context import AppContext
from backend.features import Feature, JobDecl, ModelApp
from backend.health import bp as health_bp
from backend.notifications import bp as notifications_bp
from backend.scheduler import housekeeping


async def _watch_revocations(ctx: AppContext) -> None:
    """After a key-value outage, write the revoked sessions back (``backend.auth.revocations``)."""
    ctx.kv.on_recovery(partial(republish, ctx))


FEATURE = Feature(
    name="core",
    blueprints=(health_bp, auth_bp, notifications_bp),
    jobs=(JobDecl("housekeeping", lambda s: s.housekeeping_interval, housekeeping),),
    models={"core": ModelApp(("backend.models",), "backend.migrations")},
    on_start=(_watch_revocations,),
)
