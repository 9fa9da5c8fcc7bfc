"""Elasticsearch really stops and restarts: writes still succeed, search answers from the
database (the response says so), and the index catches up afterwards with nothing lost.

The services run starts a private single-node server (scripts/es-node.sh) so that stopping it
does not disturb the shared one. The embedded profile has no Elasticsearch to stop: there the
test checks that search answers from the database.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

from elasticsearch import AsyncElasticsearch

from backend.models import Role
from search.index import drain, reindex
from tests.conftest import PROFILE
from tests.factories import headers_for
from venues.models import IndexOutbox

REPO = Path(__file__).resolve().parent.parent
PORT = 9251
CENTRE = (31.8380, 117.2130)  # 荷叶地街道
URL = "/api/v1/venues/search"


def venue(name: str) -> dict[str, object]:
    return {
        "kind": "reading_space",
        "name": name,
        "lat": CENTRE[0],
        "lng": CENTRE[1],
        "opening_hours": "24/7",
    }


def _node(*args: str) -> None:
    subprocess.run(
        ["bash", str(REPO / "scripts" / "es-node.sh"), *args],
        check=True,
        timeout=180,
        env=os.environ.copy(),
        capture_output=True,
    )


async def node(*args: str) -> None:
    await asyncio.to_thread(_node, *args)


async def names(client) -> tuple[str, set[str]]:
    response = await client.get(URL, params={"lat": CENTRE[0], "lng": CENTRE[1], "radius_m": 500})
    assert response.status_code == 200, response.text
    return response.headers["x-search-backend"], {h["name"] for h in response.json()["items"]}


async def test_search_survives_elasticsearch_stopping_and_catches_up(client, ctx):
    admin = await headers_for(client, Role.BUREAU_ADMIN)
    if PROFILE != "services":
        assert ctx.elastic is None
        await client.post("/api/v1/venues", headers=admin, json=venue("荷叶地书房"))
        assert await names(client) == ("database", {"荷叶地书房"})
        return
    shared = ctx.elastic.client
    await node("start", "outage", str(PORT))
    private = AsyncElasticsearch(f"http://127.0.0.1:{PORT}", request_timeout=5)
    ctx.elastic.client = private
    ctx.elastic.reset()
    try:
        await reindex(ctx)
        created = await client.post("/api/v1/venues", headers=admin, json=venue("荷叶地书房"))
        assert created.status_code == 201
        assert await drain(ctx, refresh=True) == 1
        assert await names(client) == ("elasticsearch", {"荷叶地书房"})

        await node("stop", "outage")  # the real server goes away
        during = await client.post("/api/v1/venues", headers=admin, json=venue("停电期间新开书房"))
        assert during.status_code == 201  # the write still succeeds
        assert await names(client) == ("database", {"荷叶地书房", "停电期间新开书房"})
        try:
            await drain(ctx, refresh=True)
        except Exception as exc:  # the job logs it and tries again later
            assert "Connection" in type(exc).__name__ or "Timeout" in type(exc).__name__
        assert await IndexOutbox.all().count() == 1  # kept, not lost

        await node("start", "outage", str(PORT))  # back, with its data
        assert await drain(ctx, refresh=True) == 1
        assert await IndexOutbox.all().count() == 0
        ctx.elastic.reset()
        assert await names(client) == ("elasticsearch", {"荷叶地书房", "停电期间新开书房"})
    finally:
        ctx.elastic.client = shared
        ctx.elastic.reset()
        await private.close()
        await node("stop", "outage")
