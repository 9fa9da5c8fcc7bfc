"""Test harness: one app per session on the profile chosen by ``SMARTCIRCLE_PROFILE``.

Embedded: a fresh SQLite file and the in-process key-value store. Services: the real PostgreSQL
test database (``TEST_DATABASE_URL``), Redis and Elasticsearch started by ``make services-up``;
a missing service fails the run, it never skips. Every test starts from empty tables, an empty
key-value namespace and the real clock.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from sanic import Sanic
from tortoise import connections

from backend import db
from backend.config import Settings
from backend.context import AppContext
from server import orm
from server.app import create_app
from tests.elastic_helpers import delete_indices
from tests.wechat_stub import APPID, SECRET, WeChatStub

PROFILE = os.environ.get("SMARTCIRCLE_PROFILE", "embedded")
RUN_ID = uuid.uuid4().hex[:10]

Sanic.test_mode = True


def _require(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"the services profile needs {name} (run `make services-up`)", pytrace=False)
    return value


@pytest.fixture(scope="session")
def wechat() -> Iterator[WeChatStub]:
    stub = WeChatStub().start()
    yield stub
    stub.stop()


@pytest.fixture(scope="session")
def var_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="smartcircle-test-") as tmp:
        yield Path(tmp)


@pytest.fixture(scope="session")
def settings(wechat: WeChatStub, var_dir: Path) -> Settings:
    common: dict[str, object] = {
        "var_dir": var_dir,
        "wechat_base_url": wechat.base_url,
        "wechat_appid": APPID,
        "wechat_secret": SECRET,
        "wechat_timeout": 1.0,
        "scheduler_enabled": False,
        "log_level": "WARNING",
        "kv_prefix": f"test:{RUN_ID}:",
        "es_index_prefix": f"test-{RUN_ID}",
        "jwt_secret": "test-secret-" + "x" * 32,
    }
    if PROFILE == "services":
        return Settings(
            profile="services",
            database_url=_require("TEST_DATABASE_URL"),
            redis_url=_require("REDIS_URL"),
            elasticsearch_url=_require("ELASTICSEARCH_URL"),
            **common,  # type: ignore[arg-type]
        ).resolved()
    return Settings(profile="embedded", **common).resolved()  # type: ignore[arg-type]


async def _reset_schema(settings: Settings) -> None:
    """Start the session from an empty database, then apply the migrations."""
    if not settings.is_sqlite:
        await orm.open_database(settings)
        conn = connections.get("default")
        await conn.execute_script("DROP SCHEMA public CASCADE; CREATE SCHEMA public;")
        await db.close_database()
    await orm.migrate(settings)


@pytest.fixture(scope="session")
async def app(settings: Settings) -> AsyncIterator[Sanic]:
    await _reset_schema(settings)
    application = create_app(settings)
    application.asgi = True
    await application._startup()
    await application._server_event("init", "before")
    await application._server_event("init", "after")
    yield application
    elastic = application.ctx.app_context.elastic
    if elastic is not None:  # this run's indices, those of the servers it started included
        await delete_indices(elastic.client, f"{settings.es_index_prefix}*")
    await application._server_event("shutdown", "before")
    await application._server_event("shutdown", "after")


@pytest.fixture
def ctx(app: Sanic) -> AppContext:
    context: AppContext = app.ctx.app_context
    return context


@pytest.fixture(autouse=True)
async def _clean_state(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Empty tables and key-value namespace before each test that uses the app."""
    if "app" not in request.fixturenames:
        yield
        return
    context: AppContext = request.getfixturevalue("app").ctx.app_context
    tables = db.table_names()
    conn = connections.get("default")
    if context.settings.is_sqlite:
        deletes = "".join(f'DELETE FROM "{t}";' for t in tables)
        # One transaction, no per-row foreign-key checks: emptying every table is one commit.
        await conn.execute_script(
            f"PRAGMA foreign_keys=OFF;BEGIN;{deletes}COMMIT;PRAGMA foreign_keys=ON;"
        )
    else:
        quoted = ", ".join(f'"{t}"' for t in tables)
        await conn.execute_script(f"TRUNCATE {quoted} RESTART IDENTITY CASCADE;")
    await context.kv.clear_namespace()
    context.clock.reset()
    yield
    context.clock.reset()


@pytest.fixture
async def client(app: Sanic) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        yield http


@pytest.fixture
def wechat_calls(wechat: WeChatStub) -> list[dict[str, str]]:
    """The query strings the WeChat stub has received."""
    return wechat.calls
