"""Index sync: the outbox, the indexer and reindex (Elasticsearch parts in the services profile)."""

from __future__ import annotations

import asyncio

from elasticsearch import AsyncElasticsearch

from backend.models import Role
from search.backends import SearchParams
from search.index import LOCK, alias_name, drain, reindex
from tests.conftest import PROFILE
from tests.elastic_helpers import dead_elasticsearch
from tests.factories import headers_for
from tests.search_fixtures import (  # noqa: F401 - fixtures
    Spec,
    backend_named,
    search_ctx_fixture,
    seed,
)
from venues.models import IndexOutbox, Venue

CENTRE = (31.8206, 117.2272)
URL = "/api/v1/venues/search"
VENUE = {
    "kind": "reading_space",
    "name": "荷叶地街道城市书房",
    "lat": CENTRE[0],
    "lng": CENTRE[1],
    "opening_hours": "24/7",
}


def everywhere(ctx) -> SearchParams:
    from backend.geo import Point

    return SearchParams(centre=Point(*CENTRE), radius_m=50_000, now=ctx.clock.now(), limit=100)


async def test_writes_reach_search_through_the_outbox(client, search_ctx):
    admin = await headers_for(client, Role.BUREAU_ADMIN)
    created = (await client.post("/api/v1/venues", headers=admin, json=VENUE)).json()
    await client.patch(f"/api/v1/venues/{created['id']}", headers=admin, json={"name": "城市书房"})
    assert await IndexOutbox.all().count() == 2
    assert await drain(search_ctx, refresh=True) == 2
    assert await IndexOutbox.all().count() == 0
    assert await drain(search_ctx, refresh=True) == 0
    response = await client.get(URL, params={"lat": CENTRE[0], "lng": CENTRE[1], "q": "书房"})
    assert [h["name"] for h in response.json()["items"]] == ["城市书房"]


if PROFILE == "services":

    async def test_a_drain_waits_for_the_other_worker(client, search_ctx):
        await seed(search_ctx, [Spec(lat=CENTRE[0], lng=CENTRE[1])])
        admin = await headers_for(client, Role.BUREAU_ADMIN)
        await client.post("/api/v1/venues", headers=admin, json=VENUE)
        lock = await search_ctx.kv.lock(LOCK, 30)
        assert lock is not None
        try:
            assert await drain(search_ctx, refresh=True) == 0
            assert await IndexOutbox.all().count() == 1
        finally:
            await lock.release()
        results = await asyncio.gather(*(drain(search_ctx, refresh=True) for _ in range(4)))
        assert sorted(results) == [0, 0, 0, 1]

    async def test_nothing_is_lost_while_elasticsearch_is_unreachable(client, search_ctx):
        await seed(search_ctx, [Spec(lat=CENTRE[0], lng=CENTRE[1], public_id="before")])
        admin = await headers_for(client, Role.BUREAU_ADMIN)
        async with dead_elasticsearch(search_ctx):
            response = await client.post("/api/v1/venues", headers=admin, json=VENUE)
            assert response.status_code == 201
            found = await client.get(URL, params={"lat": CENTRE[0], "lng": CENTRE[1]})
            assert found.headers["x-search-backend"] == "database"
            assert len(found.json()["items"]) == 2  # the database has it already
            try:
                await drain(search_ctx, refresh=True)
            except Exception as exc:  # the scheduled job logs this and retries later
                assert "Connection" in type(exc).__name__
            assert await IndexOutbox.all().count() == 1
        assert await drain(search_ctx, refresh=True) == 1
        es = backend_named("elasticsearch", search_ctx)
        hits = (await es.search(everywhere(search_ctx))).hits
        assert {h.doc.id for h in hits} == {"before", response.json()["id"]}

    async def test_reindex_builds_a_fresh_index_and_swaps_the_alias(client, search_ctx):
        venues = await seed(
            search_ctx, [Spec(lat=CENTRE[0] + i / 1000, lng=CENTRE[1]) for i in range(30)]
        )
        assert search_ctx.elastic is not None
        es: AsyncElasticsearch = search_ctx.elastic.client
        alias = alias_name(search_ctx.settings)
        (old,) = (await es.indices.get_alias(name=alias)).body
        # Drift: a document lost and a removed venue still indexed.
        await es.delete(index=alias, id=venues[0].public_id, refresh=True)
        await Venue.filter(public_id=venues[1].public_id).update(status="removed")
        new = await reindex(search_ctx)
        assert new != old
        assert list((await es.indices.get_alias(name=alias)).body) == [new]
        assert not await es.indices.exists(index=old)
        backend = backend_named("elasticsearch", search_ctx)
        hits = (await backend.search(everywhere(search_ctx))).hits
        assert {h.doc.id for h in hits} == {v.public_id for v in venues[:1] + venues[2:]}
        # Writes after the swap land in the new index.
        admin = await headers_for(client, Role.BUREAU_ADMIN)
        await client.post("/api/v1/venues", headers=admin, json=VENUE)
        await drain(search_ctx, refresh=True)
        assert len((await backend.search(everywhere(search_ctx))).hits) == 30

    async def test_the_scheduled_job_builds_a_missing_index(search_ctx):
        from search.scheduled import drain_outbox

        await Venue.create(kind="public_toilet", name="公厕", lat=CENTRE[0], lng=CENTRE[1])
        assert await IndexOutbox.all().count() == 0  # written around the service: no outbox row
        await drain_outbox(search_ctx)
        backend = backend_named("elasticsearch", search_ctx)
        assert [h.doc.name for h in (await backend.search(everywhere(search_ctx))).hits] == ["公厕"]
