"""The run really talks to the backing services of its profile (no stand-ins)."""

from __future__ import annotations

import uuid

from tortoise import connections

from backend.kv_redis import RedisKeyValue
from backend.kv_resilience import ResilientKeyValue
from tests.conftest import PROFILE

EXPECTED = {
    "embedded": {"database": "sqlite", "kv": "memory", "search": "database"},
    "services": {"database": "postgresql", "kv": "redis", "search": "elasticsearch"},
}


async def test_health_reports_each_service_of_the_profile(client):
    response = await client.get("/api/v1/health")
    assert response.status_code == 200
    body = response.json()
    assert body["profile"] == PROFILE
    assert body["status"] == "ok", body
    assert {name: s["backend"] for name, s in body["services"].items()} == EXPECTED[PROFILE]
    assert all(s["status"] == "ok" for s in body["services"].values())


async def test_the_database_is_the_profile_s_engine(app):
    conn = connections.get("default")
    if PROFILE == "services":
        _, rows = await conn.execute_query("SELECT version()")
        assert "PostgreSQL" in str(rows[0][0])
    else:
        _, rows = await conn.execute_query("SELECT sqlite_version()")
        assert str(rows[0][0]).startswith("3.")


async def test_the_key_value_store_is_the_profile_s(ctx):
    kv = ctx.kv
    if PROFILE == "services":
        # Redis, behind the wrapper that degrades when it is unreachable (backend/kv_resilience).
        assert isinstance(kv, ResilientKeyValue) and not kv.degraded
        kv = kv.primary
        assert isinstance(kv, RedisKeyValue)
        info = await kv.client.info("server")  # the real server answers
        assert info["redis_version"]
        await kv.set("probe", "1")
        assert await kv.client.get(f"{ctx.settings.kv_prefix}probe") == "1"
    else:
        assert type(kv).__name__ == "MemoryKeyValue"


async def test_elasticsearch_round_trip_when_configured(ctx):
    es = ctx.elastic.client if ctx.elastic else None
    if PROFILE != "services":
        assert es is None
        return
    index = f"{ctx.settings.es_index_prefix}-probe-{uuid.uuid4().hex[:6]}"
    try:
        await es.indices.create(index=index, mappings={"properties": {"at": {"type": "geo_point"}}})
        await es.index(
            index=index, id="1", document={"at": {"lat": 31.82, "lon": 117.23}}, refresh=True
        )
        found = await es.search(
            index=index,
            query={"geo_distance": {"distance": "1km", "at": {"lat": 31.821, "lon": 117.231}}},
        )
        assert found["hits"]["total"]["value"] == 1
    finally:
        await es.indices.delete(index=index, ignore_unavailable=True)
