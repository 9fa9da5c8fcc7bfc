"""Run the benchmarks on the embedded profile and print one line per measurement.

Each figure is requests (or operations) per second over a fixed count, with latency percentiles,
measured in one run on this machine; compare figures from the same run only.
``BENCH_VENUES`` sets the size of the city for the search figures (default 20,000; the issue's
scale is 100,000+: ``BENCH_VENUES=100000 make bench``). ``make bench-services`` runs the same
figures against PostgreSQL, Redis and Elasticsearch (``BENCH_PROFILE=services``; it empties the
schema of ``TEST_DATABASE_URL`` first, like the test suite).
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
from tortoise import connections

from backend import db
from backend.config import Settings
from backend.context import AppContext
from backend.models import Role, User
from backend.security import encode_access_token
from server import orm
from server.app import create_app

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


async def _settings(tmp: str) -> Settings:
    common = {
        "scheduler_enabled": False,
        "log_level": "WARNING",
        "var_dir": Path(tmp),
        "kv_prefix": "bench:",
        "es_index_prefix": "bench",
    }
    if os.environ.get("BENCH_PROFILE") == "services":
        settings = Settings.from_env(database_url=os.environ["TEST_DATABASE_URL"], **common)
        await orm.open_database(settings)
        await connections.get("default").execute_script(
            "DROP SCHEMA public CASCADE; CREATE SCHEMA public;"
        )
        await db.close_database()
        return settings
    return Settings(**common).resolved()  # type: ignore[arg-type]


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="smartcircle-bench-") as tmp:
        settings = await _settings(tmp)
        print(f"profile: {settings.profile}")
        await orm.migrate(settings)
        app = create_app(settings)
        app.asgi = True
        await app._startup()
        await app._server_event("init", "before")
        await app._server_event("init", "after")
        ctx = app.ctx.app_context
        await ctx.kv.clear_namespace()
        user = await User.create(role=Role.RESIDENT, wechat_openid="bench", display_name="bench")
        token, _ = encode_access_token(
            secret=settings.token_key,
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

            await _timed("GET /api/v1/health", 2000, health)
            await _timed("GET /api/v1/me, token verified", 2000, me)
            await _search_figures(http, ctx)
            await _vote_figures(http, ctx)

        async def zincr(i: int) -> None:
            await ctx.kv.zincrby("bench-ranking", f"item-{i % 500}", 1)

        await _timed(f"ranking zincrby ({type(ctx.kv).__name__})", 20_000, zincr, concurrency=100)
        await ctx.kv.clear_namespace()
        await app._server_event("shutdown", "before")
        await app._server_event("shutdown", "after")


async def _search_figures(http: httpx.AsyncClient, ctx: AppContext) -> None:
    from datetime import UTC, datetime

    from fixtures.venues_load import load_demo_venues
    from search.index import reindex

    count = int(os.environ.get("BENCH_VENUES", "20000"))
    began = time.perf_counter()
    await load_demo_venues(now=datetime.now(UTC), count=count)
    if ctx.elastic is not None:
        await reindex(ctx)
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


async def _vote_figures(http: httpx.AsyncClient, ctx: AppContext) -> None:
    """Distinct people voting at once for a few popular pain points (the campaign's hot path)."""
    from datetime import timedelta

    from crowdsource.models import Audience, Campaign, PainPoint, Phase, Status

    now = ctx.clock.now()
    campaign = await Campaign.create(
        title="bench",
        categories=[{"code": "parking", "label": "停车"}],
        audiences=[a.value for a in Audience],
        collecting_starts_at=now - timedelta(days=1),
        collecting_ends_at=now + timedelta(days=1),
        voting_starts_at=now - timedelta(days=1),
        voting_ends_at=now + timedelta(days=2),
        closes_at=now + timedelta(days=3),
        phase=Phase.VOTING,
        phase_state="collecting+voting",
        created_at=now,
        updated_at=now,
        votes_per_minute_ip=10**9,
        votes_per_minute_person=10**6,
    )
    author = await User.create(role=Role.RESIDENT, wechat_openid="bench-author")
    items = [
        await PainPoint.create(
            campaign=campaign,
            author=author,
            audience=Audience.RESIDENT,
            title=f"停车难{i}",
            description="停车难",
            category="parking",
            status=Status.VALID,
            created_at=now,
            updated_at=now,
        )
        for i in range(10)
    ]
    voters = 2000
    await User.bulk_create(
        [User(role=Role.RESIDENT, wechat_openid=f"bench-voter-{i}") for i in range(voters)],
        batch_size=500,
    )
    people = await User.filter(wechat_openid__startswith="bench-voter-").order_by("id")
    tokens = [
        "Bearer "
        + encode_access_token(
            secret=ctx.settings.token_key,
            user_id=u.public_id,
            role="resident",
            session=f"bench-{u.id}",
            street=None,
            ttl=3600,
        )[0]
        for u in people
    ]

    async def vote(i: int) -> None:
        response = await http.post(
            f"/api/v1/pain-points/{items[i % len(items)].public_id}/vote",
            headers={"Authorization": tokens[i]},
        )
        if response.status_code != 201:
            raise RuntimeError(response.text)

    await _timed(f"votes by {voters} distinct people, 10 pain points", voters, vote, 50)

    async def ranking(_: int) -> None:
        response = await http.get(
            f"/api/v1/campaigns/{campaign.public_id}/pain-points", params={"sort": "votes"}
        )
        response.raise_for_status()

    await _timed("campaign ranking (sort=votes)", 500, ranking)


if __name__ == "__main__":
    asyncio.run(main())
