"""A client that leaves mid-request (a phone losing its signal) leaves nothing half-written and
nothing locked: Sanic cancels the handler, its unit of work rolls back whole, the access log says
499, and the next write goes through at once. A real server of the run's profile, over TCP."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import PROFILE, RUN_ID
from tests.fault_helpers import free_port

REPO = Path(__file__).resolve().parent.parent
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


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTCIRCLE_", "PYTEST"))}
    env.update(
        SMARTCIRCLE_SCHEDULER="0",
        SMARTCIRCLE_LOG_LEVEL="INFO",
        SMARTCIRCLE_KV_PREFIX=f"test:{RUN_ID}:gone:",
        SMARTCIRCLE_ES_INDEX_PREFIX=f"test-{RUN_ID}-gone",
        SMARTCIRCLE_VAR_DIR=str(tmp_path / "var"),
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]),
    )
    if PROFILE == "services":
        env.update(SMARTCIRCLE_PROFILE="services", DATABASE_URL=os.environ["TEST_DATABASE_URL"])
    else:
        for name in ("DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL"):
            env.pop(name, None)
        env.update(SMARTCIRCLE_PROFILE="embedded")
    return env


async def _leave(port: int, query: str, after: float) -> None:
    """Send a request, then close the connection ``after`` seconds later, unanswered."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"POST /probe/write?{query} HTTP/1.1\r\nHost: probe\r\n\r\n".encode())
    await writer.drain()
    await asyncio.sleep(after)
    writer.close()


async def test_a_client_leaving_mid_write_leaves_it_whole_or_undone(app, tmp_path: Path):
    (tmp_path / "probe_app.py").write_text(PROBE)
    env = _env(tmp_path)
    if PROFILE != "services":
        migrated = subprocess.run(
            [sys.executable, "-m", "server", "migrate"],
            env=env, cwd=REPO, capture_output=True, timeout=180, check=False,
        )  # fmt: skip
        assert migrated.returncode == 0, migrated.stderr[-3000:]
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "sanic", "probe_app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port), "--single-process"],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    rng = random.Random(20261201)
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if (await http.get("/api/v1/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"server did not start: {log.read_text()[-3000:]}")
                await asyncio.sleep(0.2)

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
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    writes = [r for r in records if r["message"] == "request" and r.get("path") == "/probe/write"]
    assert writes and {r["status"] for r in writes} <= {200, 499}, writes
    assert any(r["status"] == 499 for r in writes)
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL")]
