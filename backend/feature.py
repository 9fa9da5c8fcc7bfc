"""The core feature: health, sign-in, notifications, housekeeping, the core tables."""

from __future__ import annotations

from backend.auth.views import bp as auth_bp
from backend.features import Feature, JobDecl, ModelApp
from backend.health import bp as health_bp
from backend.notifications import bp as notifications_bp
from backend.scheduler import housekeeping

FEATURE = Feature(
    name="core",
    blueprints=(health_bp, auth_bp, notifications_bp),
    jobs=(JobDecl("housekeeping", lambda s: s.housekeeping_interval, housekeeping),),
    models={"core": ModelApp(("backend.models",), "backend.migrations")},
)
