"""Scheduled jobs: each run happens once, across workers and across processes."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from backend.models import JobRun
from backend.scheduler import EPOCH, Jobs, scheduled_slot
from tests.conftest import PROFILE, RUN_ID

REPO = Path(__file__).resolve().parent.parent


def test_slots_are_aligned_to_one_grid():
    moment = datetime(2026, 11, 22, 10, 0, 29, 700000, tzinfo=UTC)
    assert scheduled_slot(moment, 60) == datetime(2026, 11, 22, 10, 0, tzinfo=UTC)
    assert scheduled_slot(moment + timedelta(seconds=1), 60) == datetime(
        2026, 11, 22, 10, 1, tzinfo=UTC
    )
    assert (scheduled_slot(moment, 7) - EPOCH).total_seconds() % 7 == 0


async def test_one_run_per_slot_among_competing_workers(ctx):
    runs: list[int] = []

    async def job(_ctx):
        runs.append(1)
        await asyncio.sleep(0.05)

    workers = [Jobs(ctx) for _ in range(5)]
    for jobs in workers:
        jobs.every("probe", 60, job)
    slot = datetime(2026, 1, 1, 8, 0, tzinfo=UTC)
    results = await asyncio.gather(*(jobs.run("probe", slot) for jobs in workers))
    assert sorted(results) == [False, False, False, False, True]
    assert runs == [1]
    row = await JobRun.get(name="probe")
    assert row.status == "done" and row.finished_at is not None
    # The next slot runs again.
    assert await workers[0].run("probe", slot + timedelta(minutes=1)) is True
    assert len(runs) == 2


async def test_a_failing_job_is_recorded_and_does_not_escape(ctx):
    async def broken(_ctx):
        raise ValueError("boom")

    jobs = Jobs(ctx)
    jobs.every("broken", 60, broken)
    assert await jobs.run("broken") is True
    row = await JobRun.get(name="broken")
    assert row.status == "failed"
    assert row.error == "ValueError"


def test_a_job_name_is_registered_once(ctx):
    jobs = Jobs(ctx)

    async def noop(_ctx):
        return None

    jobs.every("x", 10, noop)
    with pytest.raises(ValueError, match="twice"):
        jobs.every("x", 10, noop)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _process_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTCIRCLE_", "PYTEST"))}
    env.update(
        SMARTCIRCLE_HOUSEKEEPING_INTERVAL="1",
        SMARTCIRCLE_MAX_BODY_BYTES="2048",
        SMARTCIRCLE_LOG_LEVEL="INFO",
        SMARTCIRCLE_KV_PREFIX=f"test:{RUN_ID}:procs:",
        SMARTCIRCLE_VAR_DIR=str(tmp_path),  # the install's secret too, never the checkout's
    )
    if PROFILE == "services":
        env.update(
            SMARTCIRCLE_PROFILE="services",
            DATABASE_URL=os.environ["TEST_DATABASE_URL"],
        )
    else:
        for name in ("DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL"):
            env.pop(name, None)
        env.update(SMARTCIRCLE_PROFILE="embedded")
    return env


async def test_two_app_processes_run_each_job_once(app, tmp_path):
    """Two real servers share one database: every scheduled run happens in exactly one."""
    env = _process_env(tmp_path)
    if PROFILE != "services":
        subprocess.run(
            [sys.executable, "-m", "server", "migrate"],
            env=env,
            cwd=REPO,
            check=True,
            capture_output=True,
            timeout=120,
        )
    ports = [_free_port(), _free_port()]
    logs = [tmp_path / f"server-{i}.log" for i in range(2)]
    processes = []
    for port, log in zip(ports, logs, strict=True):
        with log.open("wb") as out:
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "sanic",
                        "server.app:create_app",
                        "--factory",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--single-process",
                    ],
                    env=env,
                    cwd=REPO,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            for port, process, log in zip(ports, processes, logs, strict=True):
                deadline = time.monotonic() + 180  # generous: a loaded 2-core machine starts slowly
                while True:
                    try:
                        health = await http.get(f"http://127.0.0.1:{port}/api/v1/health")
                        break
                    except httpx.TransportError:
                        if process.poll() is not None or time.monotonic() > deadline:
                            pytest.fail(
                                f"server on {port} did not start (exit {process.poll()}): "
                                + log.read_text(errors="replace")[-6000:]
                            )
                        await asyncio.sleep(0.2)
                assert health.status_code == 200, health.text
                assert health.json()["status"] == "ok", health.text
            started = time.monotonic()
            await asyncio.sleep(4.5)

            # Over a real HTTP connection: an oversized body is a JSON 413 with a request id.
            big = await http.post(
                f"http://127.0.0.1:{ports[0]}/api/v1/auth/login",
                content=b"x" * 4096,
                headers={"content-type": "application/json"},
            )
            assert big.status_code == 413
            assert big.json()["error"]["code"] == "payload_too_large"
            elapsed = time.monotonic() - started
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    output = "".join(log.read_text(errors="replace") for log in logs)
    if PROFILE == "services":
        rows = await JobRun.filter(name="housekeeping").order_by("scheduled_for")
    else:
        rows = await _sqlite_rows(tmp_path / "smartcircle.sqlite3")
    slots = [row.scheduled_for for row in rows]
    assert len(slots) == len(set(slots)), "a scheduled run happened twice"
    assert 2 <= len(slots) <= elapsed + 4, (len(slots), elapsed)
    assert "job skipped, claimed elsewhere" in output, output[-3000:]
    assert output.count('"scheduler started"') == 2


class _Row:
    def __init__(self, scheduled_for: str) -> None:
        self.scheduled_for = scheduled_for


async def _sqlite_rows(path: Path) -> list[_Row]:
    import sqlite3

    with sqlite3.connect(path) as conn:
        result = conn.execute(
            "SELECT scheduled_for FROM core_job_run WHERE name = 'housekeeping'"
        ).fetchall()
    return [_Row(r[0]) for r in result]
