"""Never two bookings for one unit and time: 200 residents race for one slot."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest

from backend.clock import SHANGHAI
from tests.booking_helpers import at, make_site
from tests.crowdsource_helpers import many_users, token_headers
from venues.bookings.models import Booking, SlotClaim

REPO = Path(__file__).resolve().parent.parent


async def test_two_hundred_residents_one_slot(client, ctx):
    site = await make_site(client, ctx, rules={"buffer_minutes": 30})
    unit = site.units[0]["id"]
    headers = [token_headers(ctx, u) for u in await many_users(ctx, 200)]

    async def attempt(h: dict[str, str], i: int) -> int:
        # Overlapping requests too: every third asks for 15:30 (it shares cells with 15:00).
        start = at(15, 30) if i % 3 == 0 else at(15)
        response = await client.post(
            "/api/v1/bookings", headers=h, json={"unit_id": unit, "start": start}
        )
        if response.status_code == 409:
            assert response.json()["error"]["code"] == "slot_taken"
        return response.status_code

    statuses = Counter(await asyncio.gather(*(attempt(h, i) for i, h in enumerate(headers))))
    assert statuses[201] == 1, statuses
    assert statuses[409] == 199, statuses
    assert await Booking.filter(status="held").count() == 1
    booking = await Booking.get(status="held")
    claims = await SlotClaim.filter(booking_id=booking.id).count()
    assert claims == 3  # two 30-minute cells plus the buffer cell
    assert await SlotClaim.all().count() == claims


async def test_one_resident_racing_themselves_keeps_the_quota(client, ctx):
    site = await make_site(client, ctx, units=4, max_active_bookings=1)
    user = (await many_users(ctx, 1))[0]
    h = token_headers(ctx, user)
    starts = [at(10 + i) for i in range(0, 10, 2)]

    async def attempt(unit: str, start: str) -> int:
        response = await client.post(
            "/api/v1/bookings", headers=h, json={"unit_id": unit, "start": start}
        )
        return response.status_code

    results = await asyncio.gather(
        *(attempt(u["id"], s) for u in site.units for s in starts if s != at(12))
    )
    assert Counter(results)[201] == 1, results
    assert set(results) <= {201, 422}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(ctx) -> dict[str, str]:
    settings = ctx.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTCIRCLE_", "PYTEST"))}
    env.update(
        SMARTCIRCLE_PROFILE=settings.profile,
        SMARTCIRCLE_VAR_DIR=str(settings.var_dir),
        SMARTCIRCLE_JWT_SECRET=settings.jwt_secret,
        SMARTCIRCLE_KV_PREFIX=f"{settings.kv_prefix}procs:",
        SMARTCIRCLE_SCHEDULER="0",
        SMARTCIRCLE_LOG_LEVEL="WARNING",
        DATABASE_URL=settings.database_url,
    )
    if settings.profile != "services":
        for name in ("REDIS_URL", "ELASTICSEARCH_URL"):
            env.pop(name, None)
    return env


async def test_two_server_processes_compete_for_one_slot(client, ctx, tmp_path):
    """Two real servers on the same database: one booking wins, all others get 409."""
    site = await make_site(client, ctx)
    unit = site.units[0]["id"]
    # The servers run on the real clock: book tomorrow (Beijing time) at 15:00.
    tomorrow = (datetime.now(SHANGHAI) + timedelta(days=1)).date()
    start = datetime(tomorrow.year, tomorrow.month, tomorrow.day, 15, tzinfo=SHANGHAI)
    ctx.clock.reset()
    headers = [token_headers(ctx, u) for u in await many_users(ctx, 120)]
    env = _server_env(ctx)
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
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(timeout=30, limits=limits) as http:
            for port, log in zip(ports, logs, strict=True):
                deadline = time.monotonic() + 180  # generous: a loaded 2-core machine starts slowly
                while True:
                    try:
                        await http.get(f"http://127.0.0.1:{port}/api/v1/health")
                        break
                    except httpx.TransportError:
                        if time.monotonic() > deadline:
                            pytest.fail(f"server on {port} did not start: {log.read_text()}")
                        await asyncio.sleep(0.2)

            async def attempt(i: int, h: dict[str, str]) -> int:
                response = await http.post(
                    f"http://127.0.0.1:{ports[i % 2]}/api/v1/bookings",
                    headers=h,
                    json={"unit_id": unit, "start": start.isoformat()},
                )
                return response.status_code

            statuses = Counter(
                await asyncio.gather(*(attempt(i, h) for i, h in enumerate(headers)))
            )
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    output = "".join(log.read_text(errors="replace") for log in logs)
    assert statuses == Counter({201: 1, 409: 119}), (statuses, output[-3000:])
    assert await Booking.filter(unit__public_id=unit).count() == 1
