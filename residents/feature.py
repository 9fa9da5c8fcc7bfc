"""Resident base data: the feature manifest (blueprints, jobs, models, start-up)."""

from __future__ import annotations

from backend.context import AppContext
from backend.features import Feature, ModelApp
from residents.imports import cancel_running_imports, fail_interrupted_imports
from residents.rotation import resume_rotation, stop_rotation
from residents.settings import RESIDENT_SETTINGS, ResidentSettings
from residents.views import bp, me_bp


async def _start(ctx: AppContext) -> None:
    """Read the key ring (production refuses to start without configured keys), tidy up jobs."""
    ctx.provide(RESIDENT_SETTINGS, ResidentSettings.from_env(ctx.settings))
    await fail_interrupted_imports(ctx)
    await resume_rotation(ctx)


async def _stop(ctx: AppContext) -> None:
    await cancel_running_imports()
    await stop_rotation(ctx)


FEATURE = Feature(
    name="residents",
    blueprints=(bp, me_bp),
    models={"residents": ModelApp(("residents.models",), "residents.migrations")},
    on_start=(_start,),
    on_stop=(_stop,),
)
