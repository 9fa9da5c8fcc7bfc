"""Backing services really die and come back: no 500, nothing accepted lost, counts exact after.

Redis (services run): the test starts its own ``redis-server`` on a free loopback port, points the
app context at it, and kills it with SIGKILL while votes, searches and sign-ins run
concurrently; then restarts it (empty, as a Redis without persistence comes back) and runs the
reconciliation job. The embedded run has no Redis to kill (and may not install one: it runs
before ``make services-up``): there the same load runs against the same resilient wrapper over an
in-process store that fails exactly as redis-py does when the server is gone, and comes back
empty — the equivalent property of the in-process store.

PostgreSQL (services run): a private cluster (``initdb`` in a temporary directory, a free port)
behind a real server process; the test stops it with ``pg_ctl stop -m fast`` (open connections
terminated, new ones refused) and starts it again; the shared one on :54320 is never touched.
The embedded run makes every SQLite call fail the way an unusable database file does.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections import Counter
from functools import partial
from pathlib import Path

import aiosqlite
import asyncpg.exceptions as asyncpg_errors
import httpx
import pytest
from tortoise.exceptions import DBConnectionError, OperationalError

from backend.auth.revocations import republish
from backend.errors import database_unavailable
from backend.kv import KeyValue
from backend.kv_redis import RedisKeyValue
from backend.kv_resilience import ResilientKeyValue
from backend.models import Role
from crowdsource import counters, votes
from crowdsource.models import Campaign, Vote
from tests.conftest import PROFILE, RUN_ID
from tests.crowdsource_helpers import create_campaign, many_headers, submit, token_headers
from tests.factories import PASSWORD, make_user
from tests.fault_helpers import KillableMemory, PostgresCluster, RedisServer, free_port

REPO = Path(__file__).resolve().parent.parent
CENTRE = (31.8380, 117.2130)
SEARCH = "/api/v1/venues/search"


class Outage:
    """One way of killing and restarting the key-value store behind the app."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.server: RedisServer | None = None
        self.memory: KillableMemory | None = None

    def primary(self) -> KeyValue:
        if PROFILE == "services":
            self.server = RedisServer()
            self.server.start()
            return RedisKeyValue.from_url(self.server.url, prefix=self.prefix, socket_timeout=0.5)
        self.memory = KillableMemory(self.prefix)
        return self.memory

    async def kill(self) -> None:
        if self.server is not None:
            await asyncio.to_thread(self.server.kill)  # SIGKILL
        else:
            assert self.memory is not None
            self.memory.kill()

    async def restart(self) -> None:
        if self.server is not None:
            await asyncio.to_thread(self.server.start)  # same port, empty
        else:
            assert self.memory is not None
            self.memory.restart()

    def close(self) -> None:
        if self.server is not None:
            self.server.stop()


async def _vote(client, item, headers):
    return await client.post(f"/api/v1/pain-points/{item}/vote", headers=headers)


async def _search(client):
    return await client.get(
        SEARCH, params={"lat": CENTRE[0], "lng": CENTRE[1], "radius_m": 2000, "limit": 5}
    )


async def test_the_key_value_store_dies_mid_load_and_nothing_is_lost(client, ctx):
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    campaign = await create_campaign(
        client, curator, ctx, submission_cap=20, votes_per_minute_ip=100000
    )
    author = token_headers(ctx, await make_user(Role.RESIDENT))
    items = [(await submit(client, author, campaign["id"]))["id"] for _ in range(4)]
    voters = await many_headers(ctx, 150)
    staff = await make_user(Role.BUREAU_ADMIN)

    outage = Outage(ctx.settings.kv_prefix)
    original = ctx.kv
    kv = ResilientKeyValue(outage.primary(), retry_after=0.5)
    kv.on_recovery(partial(republish, ctx))
    ctx.kv = kv
    statuses: Counter[int] = Counter()
    accepted: list[tuple[str, dict[str, str]]] = []
    try:
        # Before: everything through Redis.
        for i, headers in enumerate(voters[:30]):
            response = await _vote(client, items[i % 4], headers)
            assert response.status_code == 201, response.text
            accepted.append((items[i % 4], headers))
        assert not kv.degraded

        async def voter(i: int, headers: dict[str, str]) -> None:
            await asyncio.sleep(0.01 * (i % 40))
            item = items[i % 4]
            response = await _vote(client, item, headers)
            statuses[response.status_code] += 1
            if response.status_code == 201:
                accepted.append((item, headers))

        async def searcher() -> None:
            for _ in range(15):
                response = await _search(client)
                statuses[response.status_code] += 1
                assert response.status_code == 200, response.text
                await asyncio.sleep(0.02)

        async def killer() -> None:
            await asyncio.sleep(0.15)
            await outage.kill()

        load = [voter(i, h) for i, h in enumerate(voters[30:110], start=30)]
        await asyncio.gather(killer(), searcher(), *load)
        assert statuses[500] == 0 and not any(code >= 500 for code in statuses), statuses

        # While it is down: health says degraded, reading, signing in and voting work.
        health = await client.get("/api/v1/health")
        assert health.status_code == 200, health.text
        assert health.json()["status"] == "degraded"
        assert health.json()["services"]["kv"]["status"] == "degraded"
        assert kv.degraded
        signed = await client.post(
            "/api/v1/auth/login", json={"username": staff.username, "password": PASSWORD}
        )
        assert signed.status_code == 200, signed.text
        me = await client.get(
            "/api/v1/me", headers={"Authorization": f"Bearer {signed.json()['access_token']}"}
        )
        assert me.status_code == 200
        resident = await client.post("/api/v1/auth/wechat", json={"code": "dev:停电"})
        assert resident.status_code == 200, resident.text
        for i, headers in enumerate(voters[110:130], start=110):
            response = await _vote(client, items[i % 4], headers)
            assert response.status_code == 201, response.text
            accepted.append((items[i % 4], headers))
            # counted from the database meanwhile
            assert (
                response.json()["votes"]
                == await Vote.filter(pain_point__public_id=items[i % 4]).count()
            )
        page = await client.get(f"/api/v1/campaigns/{campaign['id']}/pain-points")
        assert page.status_code == 200, page.text
        assert (await _search(client)).status_code == 200

        # Every accepted vote is in the database, and nothing else.
        assert await Vote.filter(campaign__public_id=campaign["id"]).count() == len(accepted)

        # Back (empty), reconciled: the live counts equal the database's exactly.
        await outage.restart()
        deadline = time.monotonic() + 15
        while not await kv.ping():
            assert time.monotonic() < deadline, "the store did not come back"
            await asyncio.sleep(0.1)
        assert not kv.degraded
        for i, headers in enumerate(voters[130:150], start=130):
            response = await _vote(client, items[i % 4], headers)
            assert response.status_code == 201, response.text
            accepted.append((items[i % 4], headers))
        await votes.reconcile_counters(ctx=ctx)
        row = await Campaign.get(public_id=campaign["id"])
        live = await counters.read_all(ctx=ctx, campaign=row)
        truth = await counters.database_counts(campaign=row)
        assert live == truth
        assert sum(c["total"] for c in truth.values()) == len(accepted)
        health = await client.get("/api/v1/health")
        assert health.json()["services"]["kv"]["status"] == "ok"
    finally:
        ctx.kv = original
        await kv.close()
        outage.close()


async def test_rate_limits_fall_back_to_a_per_worker_limiter(client, ctx):
    outage = Outage(ctx.settings.kv_prefix)
    original = ctx.kv
    kv = ResilientKeyValue(outage.primary(), retry_after=30)
    ctx.kv = kv
    try:
        curator = token_headers(ctx, await make_user(Role.CURATOR))
        campaign = await create_campaign(client, curator, ctx, votes_per_minute_person=2)
        author = token_headers(ctx, await make_user(Role.RESIDENT))
        items = [(await submit(client, author, campaign["id"]))["id"] for _ in range(4)]
        voter = await many_headers(ctx, 1)
        await outage.kill()
        codes = [(await _vote(client, item, voter[0])).status_code for item in items]
        assert codes == [201, 201, 429, 429]
        assert kv.degraded
    finally:
        ctx.kv = original
        await kv.close()
        outage.close()


# -- the database ------------------------------------------------------------------------------

SEED = textwrap.dedent(
    """
    import asyncio
    from backend import db
    from backend.config import Settings
    from backend.models import Role, User
    from backend.security import hash_password
    from server import orm

    async def main():
        settings = Settings.from_env()
        await orm.open_database(settings)
        await User.create(username="faults-admin", password_hash=hash_password("faults-pass-1"),
                          role=Role.BUREAU_ADMIN)
        await db.close_database()

    asyncio.run(main())
    """
)


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        args, env=env, cwd=REPO, capture_output=True, timeout=180, check=False, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


async def _until(check, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.2)


def _unavailable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "database_unavailable"
    assert int(response.headers["Retry-After"]) >= 1


async def _real_postgres_stops(tmp_path: Path) -> None:
    cluster = PostgresCluster()
    process = None
    try:
        await asyncio.to_thread(cluster.init)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTCIRCLE_", "PYTEST"))}
        env.update(
            SMARTCIRCLE_PROFILE="services",
            DATABASE_URL=cluster.url,
            SMARTCIRCLE_VAR_DIR=str(tmp_path),
            SMARTCIRCLE_SCHEDULER="0",
            SMARTCIRCLE_LOG_LEVEL="WARNING",
            SMARTCIRCLE_KV_PREFIX=f"test:{RUN_ID}:faults-pg:",
            SMARTCIRCLE_ES_INDEX_PREFIX=f"test-{RUN_ID}-faults-pg",
        )
        await asyncio.to_thread(_run, [sys.executable, "-m", "server", "migrate"], env)
        await asyncio.to_thread(_run, [sys.executable, "-m", "server", "reindex"], env)
        await asyncio.to_thread(_run, [sys.executable, "-c", SEED], env)
        port = free_port()
        log = tmp_path / "server.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "sanic", "server.app:create_app", "--factory",
                 "--host", "127.0.0.1", "--port", str(port), "--single-process"],
                env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:

            async def up() -> bool:
                assert process.poll() is None, log.read_text()[-3000:]
                try:
                    return (await http.get("/api/v1/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await _until(up, "the server did not start")
            login = await http.post(
                "/api/v1/auth/login", json={"username": "faults-admin", "password": "faults-pass-1"}
            )
            assert login.status_code == 200, login.text
            admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
            assert (await http.get("/api/v1/me", headers=admin)).status_code == 200

            await asyncio.to_thread(cluster.stop)  # PostgreSQL goes away
            health = await http.get("/api/v1/health")
            assert health.status_code == 503 and health.json()["status"] == "down"
            _unavailable(await http.get("/api/v1/me", headers=admin))
            _unavailable(await http.get("/api/v1/admin/users", headers=admin))
            _unavailable(await http.get("/api/v1/campaigns"))
            _unavailable(
                await http.post(
                    "/api/v1/auth/login",
                    json={"username": "faults-admin", "password": "faults-pass-1"},
                )
            )
            searched = await http.get(
                SEARCH, params={"lat": CENTRE[0], "lng": CENTRE[1], "radius_m": 500}
            )
            assert searched.status_code == 200, searched.text  # Elasticsearch still answers
            assert searched.headers["x-search-backend"] == "elasticsearch"

            await asyncio.to_thread(cluster.start)  # back: the pool reconnects by itself

            async def serving() -> bool:
                return (await http.get("/api/v1/me", headers=admin)).status_code == 200

            await _until(serving, "the app did not recover after PostgreSQL came back", 30)
            assert (await http.get("/api/v1/health")).status_code == 200
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        assert not [line for line in lines if line["message"] == "unhandled error"], lines[-5:]
        assert any(line["message"] == "database unavailable" for line in lines)
    finally:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
        await asyncio.to_thread(cluster.destroy)


async def _sqlite_fails(client, ctx, monkeypatch) -> None:
    headers = token_headers(ctx, await make_user(Role.BUREAU_ADMIN))
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200

    async def unusable(*args, **kwargs):
        raise sqlite3.OperationalError("unable to open database file")

    for name in ("execute", "execute_fetchall", "execute_insert", "executemany", "executescript"):
        monkeypatch.setattr(aiosqlite.Connection, name, unusable)
    health = await client.get("/api/v1/health")
    assert health.status_code == 503
    _unavailable(await client.get("/api/v1/me", headers=headers))
    _unavailable(await client.get("/api/v1/campaigns"))
    _unavailable(
        await client.post("/api/v1/auth/login", json={"username": "x", "password": "y" * 10})
    )
    monkeypatch.undo()
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200


async def test_database_down_answers_503_with_retry_after(client, ctx, tmp_path, monkeypatch):
    if PROFILE == "services":
        await _real_postgres_stops(tmp_path)
    else:
        await _sqlite_fails(client, ctx, monkeypatch)


def _wrapped(exc: BaseException, wrapper: type[Exception] = OperationalError) -> Exception:
    try:
        raise wrapper(exc) from exc
    except Exception as wrapped:
        return wrapped


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"),
        TimeoutError(),
        DBConnectionError("Can't establish connection to database faults"),
        asyncpg_errors.ConnectionDoesNotExistError("connection was closed in the middle"),
        asyncpg_errors.CannotConnectNowError("the database system is shutting down"),
        asyncpg_errors.AdminShutdownError("terminating connection due to administrator command"),
        asyncpg_errors.TooManyConnectionsError("sorry, too many clients already"),
        asyncpg_errors.InterfaceError("cannot call Connection.fetch(): connection is closed"),
        _wrapped(sqlite3.OperationalError("database is locked")),
        _wrapped(sqlite3.OperationalError("unable to open database file")),
    ],
    ids=lambda exc: type(exc).__name__ + ":" + str(exc)[:20],
)
def test_every_way_a_database_is_unreachable_is_recognised(exc):
    assert database_unavailable(exc)


@pytest.mark.parametrize(
    "exc",
    [
        _wrapped(sqlite3.OperationalError('near "SELEC": syntax error')),
        OperationalError("column x does not exist"),
        ValueError("bad"),
        asyncpg_errors.InterfaceError("cannot perform operation: another operation is in progress"),
    ],
)
def test_bugs_are_not_reported_as_an_unavailable_database(exc):
    assert not database_unavailable(exc)


def test_an_error_raised_while_handling_a_connection_error_is_a_different_error():
    try:
        try:
            raise ConnectionRefusedError()
        except ConnectionRefusedError:
            raise KeyError("a bug in the handler")  # noqa: B904 - the point of the test
    except KeyError as exc:
        assert not database_unavailable(exc)
