"""The admin console: pages for the bureau, curators, judges, operators and vendors."""

from __future__ import annotations

from backend.context import AppContext
from backend.features import Feature

from admin_console.settings import CONSOLE_SETTINGS, ConsoleSettings
from admin_console.views.auth import bp as auth_bp


async def _read_settings(ctx: AppContext) -> None:
    ctx.provide(CONSOLE_SETTINGS, ConsoleSettings.read_env())


FEATURE = Feature(
    name="console",
    blueprints=(auth_bp,),
    on_start=(_read_settings,),
)
