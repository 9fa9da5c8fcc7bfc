"""Tortoise ORM for the app's features: their model apps, migrations and ``TORTOISE_ORM``.

``TORTOISE_ORM`` is computed on access (PEP 562), so the ``tortoise`` command line
(``tortoise -c server.orm.TORTOISE_ORM …``) reads the environment only when it runs.
"""

from __future__ import annotations

from typing import Any

from backend import db
from backend.config import Settings
from backend.features import ModelApp, model_apps
from server.features import FEATURES


def apps() -> dict[str, ModelApp]:
    """Every model app of every feature."""
    return model_apps(FEATURES)


def tortoise_config(settings: Settings) -> dict[str, Any]:
    return db.tortoise_config(settings, apps())


async def open_database(settings: Settings) -> None:
    await db.open_database(settings, apps())


async def migrate(settings: Settings) -> None:
    await db.migrate(settings, apps())


def __getattr__(name: str) -> Any:
    if name == "TORTOISE_ORM":
        return tortoise_config(Settings.from_env())
    raise AttributeError(name)
