"""The database: Tortoise ORM on SQLite (embedded) or PostgreSQL (services), with migrations.

Migrations use Tortoise's built-in migration system (``tortoise makemigrations`` / ``migrate``),
one migrations package per app label. The app labels come from the feature manifests
(``backend.features.ModelApp``); the composition root (``server/orm.py``) passes them in and
exposes ``TORTOISE_ORM`` for the ``tortoise`` command line.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

import asyncpg
from sanic import DefaultSanic
from tortoise import Tortoise, connections
from tortoise.backends.base.config_generator import expand_db_url
from tortoise.exceptions import OperationalError
from tortoise.migrations.api import migrate as tortoise_migrate

from backend.config import Settings
from backend.features import ModelApp


def _with_params(url: str, params: dict[str, Any]) -> str:
    parts = urlsplit(url)
    query = parts.query
    extra = urlencode({k: v for k, v in params.items() if f"{k}=" not in query})
    query = "&".join(q for q in (query, extra) if q)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def database_url(settings: Settings) -> str:
    """The Tortoise connection URL with pool or pragma settings applied."""
    url = settings.database_url
    if url.startswith("sqlite"):
        settings.var_dir.mkdir(parents=True, exist_ok=True)
        return _with_params(url, {"busy_timeout": 10000})
    return _with_params(url, {"minsize": 1, "maxsize": settings.db_pool_max})


class SessionlessConnection(asyncpg.Connection):  # type: ignore[misc]
    """A PostgreSQL connection whose return to the pool costs no round trip.

    asyncpg's pool resets every connection it gets back with ``SELECT pg_advisory_unlock_all();
    CLOSE ALL; UNLISTEN *; RESET ALL;``: one more round trip (and statement for PostgreSQL to
    parse and run) per query outside a transaction. This app keeps no session state on a pooled
    connection — no session advisory lock, no cursor outside a transaction, no LISTEN, no
    session ``SET`` — so there is nothing to reset. An
    open transaction is still rolled back on return (asyncpg does that before the query)."""

    def get_reset_query(self) -> str:
        return ""


def connection_config(settings: Settings) -> str | dict[str, Any]:
    """The Tortoise connection: a URL on SQLite; on PostgreSQL the expanded URL, with the
    pool's connections made :class:`SessionlessConnection`."""
    url = database_url(settings)
    if url.startswith("sqlite"):
        return url
    config: dict[str, Any] = expand_db_url(url)
    config["credentials"]["connection_class"] = SessionlessConnection
    return config


def tortoise_config(settings: Settings, apps: Mapping[str, ModelApp]) -> dict[str, Any]:
    """The Tortoise configuration for these settings and model apps."""
    return {
        "connections": {"default": connection_config(settings)},
        "apps": {
            label: {
                "models": list(app.modules),
                "default_connection": "default",
                "migrations": app.migrations,
            }
            for label, app in apps.items()
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def open_database(settings: Settings, apps: Mapping[str, ModelApp]) -> None:
    """Connect Tortoise for this process."""
    await Tortoise.init(config=tortoise_config(settings, apps), _enable_global_fallback=True)


async def close_database() -> None:
    await connections.close_all()


async def migrate(settings: Settings, apps: Mapping[str, ModelApp]) -> None:
    """Apply every pending migration. Closes the connection even when one fails: the SQLite
    client's thread would otherwise keep the failed command alive, never exiting."""
    try:
        await tortoise_migrate(config=tortoise_config(settings, apps))
    finally:
        await connections.close_all()


async def ping() -> None:
    """Raise if the database does not answer."""
    conn = connections.get("default")
    await conn.execute_query("SELECT 1")


class NotMigrated(RuntimeError):
    """The database lacks migrations the code has: the server refuses to start on it."""


def migrations_on_disk(apps: Mapping[str, ModelApp]) -> set[tuple[str, str]]:
    """Every migration of these apps as (app label, migration name), from a directory listing
    (no migration module is imported)."""
    found: set[tuple[str, str]] = set()
    for label, app in apps.items():
        spec = importlib.util.find_spec(app.migrations)
        for folder in (spec.submodule_search_locations or []) if spec else []:
            found.update((label, path.stem) for path in Path(folder).glob("[0-9]*.py"))
    return found


async def pending_migrations(apps: Mapping[str, ModelApp]) -> list[str]:
    """The migrations on disk the database has not applied (``app.name``), sorted: cheap
    enough for every start (a directory listing and one query of Tortoise's record)."""
    try:
        rows = await connections.get("default").execute_query_dict(
            'SELECT "app", "name" FROM "tortoise_migrations"'
        )
    except OperationalError:  # no record yet: nothing was ever applied
        rows = []
    applied = {(str(r["app"]), str(r["name"])) for r in rows}
    return sorted(f"{label}.{name}" for label, name in migrations_on_disk(apps) - applied)


async def require_migrated(apps: Mapping[str, ModelApp]) -> None:
    """Raise :class:`NotMigrated` naming what is missing, instead of failing later on a table
    that does not exist."""
    missing = await pending_migrations(apps)
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise NotMigrated(
            f"the database is not migrated ({shown} not applied): run `make migrate` "
            "(or `python -m server migrate`) first"
        )


def sqlite_file(settings: Settings) -> Path | None:
    """The SQLite database's file; None on PostgreSQL or in memory."""
    if not settings.is_sqlite:
        return None
    path = str(expand_db_url(settings.database_url)["credentials"]["file_path"])
    return None if path == ":memory:" else Path(path)


def table_names() -> list[str]:
    """Every table the models own, for truncation in tests."""
    names = []
    for app in Tortoise.apps.values():
        for model in app.values():
            names.append(model._meta.db_table)
    return names


def register_database(app: DefaultSanic, settings: Settings, apps: Mapping[str, ModelApp]) -> None:
    """Open the database before serving and close it afterwards."""

    @app.before_server_start
    async def _open(app: DefaultSanic) -> None:
        missing = sqlite_file(settings)
        if missing is not None and not missing.exists():  # never create an empty one here
            raise NotMigrated(
                f"there is no database at {missing}: run `make migrate` "
                "(or `python -m server migrate`) first"
            )
        await open_database(settings, apps)
        try:
            # Connect now, before any request or job: the first use must not race to open the
            # connection (a cancelled lazy open can leave the SQLite client's lock held).
            await ping()
            await require_migrated(apps)
        except BaseException:
            await close_database()  # else its SQLite thread keeps the failed process alive
            raise

    @app.after_server_stop
    async def _close(app: DefaultSanic) -> None:
        await close_database()
