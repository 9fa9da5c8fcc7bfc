"""A real server in its own process, for tests that need one over TCP: its environment (the
run's profile, or the one asked for), the migration command, and the server started, waited for
and stopped."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from tests.conftest import PROFILE, RUN_ID
from tests.fault_helpers import free_port

REPO = Path(__file__).resolve().parent.parent
SERVICE_URLS = ("DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL", "TEST_DATABASE_URL")


def process_env(
    var_dir: Path, name: str, *, profile: str = PROFILE, **extra: str
) -> dict[str, str]:
    """The environment of a server or command of ``profile``: the services run's test database
    (its Redis and Elasticsearch as configured), or the embedded profile with no service URL;
    keys and indices under this run's and ``name``'s prefix; no scheduler unless ``extra``
    turns it on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTCIRCLE_", "PYTEST"))}
    env.update(
        SMARTCIRCLE_SCHEDULER="0",
        SMARTCIRCLE_LOG_LEVEL="INFO",
        SMARTCIRCLE_KV_PREFIX=f"test:{RUN_ID}:{name}:",
        SMARTCIRCLE_ES_INDEX_PREFIX=f"test-{RUN_ID}-{name}",
        SMARTCIRCLE_VAR_DIR=str(var_dir),  # the install's secret too, never the checkout's
    )
    if profile == "services":
        env.update(SMARTCIRCLE_PROFILE="services", DATABASE_URL=os.environ["TEST_DATABASE_URL"])
    else:
        for url in SERVICE_URLS:
            env.pop(url, None)
        env.update(SMARTCIRCLE_PROFILE="embedded")
    env.update(extra)
    return env


def run_migrate(env: dict[str, str], *, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m server migrate`` in this environment (a hang shows as TimeoutExpired)."""
    return subprocess.run(
        [sys.executable, "-m", "server", "migrate"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def migrate(env: dict[str, str]) -> None:
    """Migrate the database of this environment; fail the test if that fails."""
    done = run_migrate(env)
    assert done.returncode == 0, done.stderr[-3000:]


def server_command(port: int, *, app: str, processes: Sequence[str]) -> list[str]:
    return [
        *(sys.executable, "-m", "sanic", app, "--factory"),
        *("--host", "127.0.0.1", "--port", str(port)),
        *processes,
    ]


@asynccontextmanager
async def served(
    env: dict[str, str],
    log: Path,
    *,
    app: str = "server.app:create_app",
    processes: Sequence[str] = ("--single-process",),
) -> AsyncIterator[int]:
    """A server answering ``/api/v1/health`` on the port yielded; its output in ``log``.

    It runs in its own session: when a worker fails to start, Sanic's manager kills its
    workers' whole process group, which would otherwise be pytest's. Stopped with SIGINT."""
    port = free_port()
    with log.open("wb") as out:
        process = subprocess.Popen(
            server_command(port, app=app, processes=processes),
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            deadline = time.monotonic() + 120  # generous: a loaded 2-core machine starts slowly
            while True:
                try:
                    if (await http.get("/api/v1/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(
                        f"server did not start (exit {process.poll()}): "
                        + log.read_text(errors="replace")[-3000:]
                    )
                await asyncio.sleep(0.2)
        yield port
    finally:
        stop(process, timeout=30)


def stop(process: subprocess.Popen[bytes], *, timeout: float) -> None:
    """SIGINT, as Ctrl-C would, and a kill if it has not ended within ``timeout`` seconds."""
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
