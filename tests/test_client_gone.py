"""A client that leaves mid-request (a phone losing its signal) leaves nothing half-written and
nothing locked: Sanic cancels the handler, its unit of work rolls back whole, the access log says
499, and the next write goes through at once. A real server of the run's profile, over TCP."""

from __future__ import annotations

import asyncio
import json
import os
import random
import textwrap
import time
from pathlib import Path

import httpx

from tests.conftest import PROFILE, RUN_ID
from tests.server_process import REPO, migrate, process_env, served

ROWS = 200  # one unit of work's inserts: tens of milliseconds, cancelled somewhere inside

PROBE = textwrap.dedent(
    f"""
    import asyncio
    from datetime import UTC, datetime, timedelta

    from backend.access import endpoint
    from backend.models import JobRun
    from backend.uow import unit_of_work
    from server.app import create_app as create_real_app

    BASE = datetime(2031, 1, 1, tzinfo=UTC)


    def create_app():
        app = create_real_app()

        @app.post("/probe/write")
        @endpoint(summary="write", tag="probe", public=True)
        async def write(request, call):
            n = int(request.args.get("n", "0"))
            pause = float(request.args.get("pause", "0"))
            async with unit_of_work():
                for i in range({ROWS}):
                    await JobRun.create(
                        name="probe-{RUN_ID}",
                        scheduled_for=BASE + timedelta(seconds=n * 10_000 + i),
                        runner="probe",
                        started_at=BASE,
                    )
                    if pause and i == 0:
                        await asyncio.sleep(pause)  # the client leaves meanwhile
            return {{"ok": True}}

        @app.get("/probe/count")
        @endpoint(summary="count", tag="probe", public=True)
        async def count(request, call):
            return {{"rows": await JobRun.filter(name="probe-{RUN_ID}").count()}}

        return app
    """
)


async def _leave(port: int, query: str, after: float) -> None:
    """Send a request, then close the connection ``after`` seconds later, unanswered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /probe/write?{query} HTTP/1.1\r\nHost: probe\r\n\r\n".encode())
    await writer.drain()
    await asyncio.sleep(after)
    writer.close()


async def test_a_client_leaving_mid_write_leaves_it_whole_or_undone(app, tmp_path: Path):
    (tmp_path / "probe_app.py").write_text(PROBE)
    env = process_env(
        tmp_path / "var", "gone", PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)])
    )
    if PROFILE != "services":
        migrate(env)
    log = tmp_path / "server.log"
    rng = random.Random(20261201)
    async with (
        served(env, log, app="probe_app:create_app") as port,
        httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http,
    ):
        # Left while the unit of work waits between two writes: nothing of it stays.
        await _leave(port, "n=1&pause=0.5", after=0.1)
        await asyncio.sleep(0.7)
        assert (await http.get("/probe/count")).json()["rows"] == 0

        # Left at random moments of a unit's inserts (mid-statement at times): each unit is
        # all there or not at all, and nothing stays locked.
        for n in range(2, 22):
            await _leave(port, f"n={n}", after=rng.uniform(0.0, 0.05))
        await asyncio.sleep(0.5)
        rows = (await http.get("/probe/count")).json()["rows"]
        assert rows % ROWS == 0, rows
        started = time.monotonic()
        assert (await http.post("/probe/write", params={"n": 99})).status_code == 200
        assert time.monotonic() - started < 5  # not behind a lock a cancelled write held
        assert (await http.get("/probe/count")).json()["rows"] == rows + ROWS
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    writes = [r for r in records if r["message"] == "request" and r.get("path") == "/probe/write"]
    assert writes and {r["status"] for r in writes} <= {200, 499}, writes
    assert any(r["status"] == 499 for r in writes)
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")]
