"""Run the benchmarks on the embedded profile and print one line per measurement.

Each figure is requests (or operations) per second over a fixed count, with latency percentiles,
measured in one run on this machine; compare figures from the same run only.
``BENCH_VENUES`` sets the size of the city for the search figures (default 20,000; the issue's
scale is 100,000+: ``BENCH_VENUES=100000 make bench``).
"""

from __future__ import annotations

import asyncio
import os
import random
import tempfile
import time
from pathlib import Path

import httpx
from sanic import Sanic

from backend import db
from backend.app import create_app
from backend.config import Settings
from backend.kv import MemoryKeyValue
from backend.models import Role, User
from backend.security import encode_access_token

Sanic.test_mode = True


async def _timed(label: str, count: int, make_call, concurrency: int = 20) -> None:  # type: ignore[no-untyped-def]
    semaphore = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one(i: int) -> None:
        async with semaphore:
            began = time.perf_counter()
            await make_call(i)
            latencies.append(time.perf_counter() - began)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    p50 = latencies[len(latencies) // 2] * 1000
    p95 = latencies[int(len(latencies) * 0.95)] * 1000
    print(
        f"{label:<52} {count / elapsed:>9.0f} /s  p50 {p50:7.1f} ms  p95 {p95:7.1f} ms"
        f"  ({count} in {elapsed:.2f} s, concurrency {concurrency})"
    )


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="smartcircle-bench-") as tmp:
        settings = Settings(var_dir=Path(tmp), scheduler_enabled=False, log_level="WARNING")
        settings = settings.resolved()
        await db.migrate(settings)
        app = create_app(settings)
        app.asgi = True
        await app._startup()
        await app._server_event("init", "before")
        await app._server_event("init", "after")
        user = await User.create(role=Role.RESIDENT, wechat_openid="bench", display_name="bench")
        token, _ = encode_access_token(
            secret=settings.jwt_secret,
            user_id=user.public_id,
            role="resident",
            session="bench",
            street=None,
            ttl=3600,
        )
        headers = {"Authorization": f"Bearer {token}"}
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:

            async def health(_: int) -> None:
                (await http.get("/api/v1/health")).raise_for_status()

            async def me(_: int) -> None:
                (await http.get("/api/v1/me", headers=headers)).raise_for_status()

            await _timed("GET /api/v1/health (ASGI, embedded)", 2000, health)
            await _timed("GET /api/v1/me, token verified (ASGI, embedded)", 2000, me)
            await _search_figures(http)
        kv = MemoryKeyValue(prefix="bench:")

        async def incr(i: int) -> None:
            await kv.zincrby("ranking", f"item-{i % 500}", 1)

        await _timed("in-process ranking zincrby", 100_000, incr, concurrency=100)
        await app._server_event("shutdown", "before")
        await app._server_event("shutdown", "after")


async def _search_figures(http: httpx.AsyncClient) -> None:
    from datetime import UTC, datetime

    from venues.demo import load_demo_venues

    count = int(os.environ.get("BENCH_VENUES", "20000"))
    began = time.perf_counter()
    await load_demo_venues(now=datetime.now(UTC), count=count)
    print(f"(loaded {count} demo venues in {time.perf_counter() - began:.1f} s)")
    rng = random.Random(7)
    points = [
        (31.82 + rng.uniform(-0.06, 0.06), 117.25 + rng.uniform(-0.08, 0.08)) for _ in range(500)
    ]
    for radius in (1000, 3000, 10000):

        async def search(i: int, radius: int = radius) -> None:
            lat, lng = points[i % len(points)]
            response = await http.get(
                "/api/v1/venues/search",
                params={"lat": lat, "lng": lng, "radius_m": radius, "limit": 20},
            )
            response.raise_for_status()

        await _timed(f"venue search, {count} venues, radius {radius} m", 300, search)

    async def toilets_open_now(i: int) -> None:
        lat, lng = points[i % len(points)]
        response = await http.get(
            "/api/v1/venues/search",
            params={
                "lat": lat,
                "lng": lng,
                "radius_m": 3000,
                "kind": "public_toilet",
                "open_now": "true",
                "accessible": "true",
            },
        )
        response.raise_for_status()

    await _timed(f"venue search, toilets open now + accessible, {count}", 300, toilets_open_now)


if __name__ == "__main__":
    asyncio.run(main())
