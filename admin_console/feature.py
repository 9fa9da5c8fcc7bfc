"""The admin console: pages for the bureau, curators, judges, operators and vendors."""

from __future__ import annotations

from admin_console.settings import CONSOLE_SETTINGS, ConsoleSettings
from admin_console.views import (
    admin,
    auth,
    campaigns,
    challenges,
    dashboard,
    judging,
    moderation,
    resident_imports,
    residents,
    tasks,
    vendor,
    venues,
)
from backend.context import AppContext
from backend.features import Feature


async def _read_settings(ctx: AppContext) -> None:
    """Session lifetimes from the environment, once."""
    ctx.provide(CONSOLE_SETTINGS, ConsoleSettings.read_env())


FEATURE = Feature(
    name="console",
    blueprints=(
        auth.bp,
        campaigns.bp,
        moderation.bp,
        dashboard.bp,
        challenges.bp,
        judging.bp,
        admin.bp,
        tasks.bp,
        vendor.bp,
        venues.bp,
        residents.bp,
        resident_imports.bp,
    ),
    on_start=(_read_settings,),
)
