"""A worker's concurrent Elasticsearch searches go together (``_msearch``), each with its own
answer or its own error, and the pages stay exactly those of searches sent one by one.

The first tests talk to a recording client (no server needed); the page test needs the real
Elasticsearch (services profile), and the outage test runs on both profiles (a dead address).
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import datetime
from typing import Any

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elastic_transport import ConnectionError as EsConnectionError
from elasticsearch import ApiError, BadRequestError, NotFoundError
from elasticsearch.exceptions import HTTP_EXCEPTIONS

from backend import geo
from backend.clock import SHANGHAI
from backend.elastic import Searches
from search.backends import ElasticsearchBackend, SearchParams
from search.index import alias_name
from search.schemas import VenueSearchQuery
from search.service import search_venues
from tests.conftest import PROFILE
from tests.elastic_helpers import dead_elasticsearch
from tests.search_fixtures import (  # noqa: F401 - fixtures
    Spec,
    search_ctx_fixture,
    seed,
)
from venues.models import VenueKind

META = ApiResponseMeta(
    status=200,
    http_version="1.1",
    headers=HttpHeaders(),
    duration=0.0,
    node=NodeConfig("http", "127.0.0.1", 9200),
)


class _Answer(dict[str, Any]):
    """What the client returns: the body, with ``.body`` and ``.meta``."""

    @property
    def body(self) -> dict[str, Any]:
        return self

    meta = META


class _Recorder:
    """A client that records ``search`` and ``msearch`` calls and answers each body's ``n``."""

    def __init__(self, *, fail: Exception | None = None) -> None:
        self.searches: list[tuple[str, dict[str, Any]]] = []
        self.batches: list[list[dict[str, Any]]] = []
        self.fail = fail

    async def search(self, *, index: str, body: dict[str, Any]) -> _Answer:
        self.searches.append((index, body))
        await asyncio.sleep(0.01)
        return _Answer(hits={"hits": [{"n": body["n"]}]})

    async def msearch(self, *, searches: list[dict[str, Any]]) -> _Answer:
        headers, bodies = searches[0::2], searches[1::2]
        assert all(h == {"index": "venues"} for h in headers)
        self.batches.append(bodies)
        await asyncio.sleep(0.01)
        if self.fail is not None:
            raise self.fail
        responses: list[dict[str, Any]] = []
        for body in bodies:
            if body["n"] == 1013:
                responses.append(
                    {"error": {"type": "index_not_found_exception", "reason": "x"}, "status": 404}
                )
            elif body["n"] == 1014:
                responses.append({"error": {"type": "parsing_exception"}, "status": 400})
            else:
                responses.append({"hits": {"hits": [{"n": body["n"]}]}, "status": 200})
        return _Answer(responses=responses)


async def test_a_lone_search_goes_alone_and_a_burst_goes_as_one_msearch():
    client = _Recorder()
    searches = Searches(client)  # type: ignore[arg-type]
    first = await searches("venues", {"n": 1})
    assert first["hits"]["hits"] == [{"n": 1}]
    assert client.searches == [("venues", {"n": 1})] and client.batches == []
    answers = await asyncio.gather(*(searches("venues", {"n": n}) for n in range(2, 30)))
    # Each caller gets the answer to its own body, although they went together.
    assert [a["hits"]["hits"][0]["n"] for a in answers] == list(range(2, 30))
    # The burst gathered in one _msearch, in the order of the calls.
    assert len(client.searches) == 1
    assert [[b["n"] for b in batch] for batch in client.batches] == [list(range(2, 30))]
    # Searches that come while a batch is in flight go together as soon as it is back.
    ahead = asyncio.ensure_future(searches("venues", {"n": 100}))
    await asyncio.sleep(0.001)  # the lone search is now in flight
    behind = await asyncio.gather(*(searches("venues", {"n": n}) for n in range(101, 105)))
    assert (await ahead)["hits"]["hits"] == [{"n": 100}]
    assert [a["hits"]["hits"][0]["n"] for a in behind] == list(range(101, 105))
    assert client.searches[-1] == ("venues", {"n": 100})
    assert [b["n"] for b in client.batches[-1]] == list(range(101, 105))


async def test_a_batch_holds_at_most_max_batch_searches():
    client = _Recorder()
    searches = Searches(client, max_batch=5)  # type: ignore[arg-type]
    await asyncio.gather(*(searches("venues", {"n": n}) for n in range(12)))
    assert [[b["n"] for b in batch] for batch in client.batches] == [
        [0, 1, 2, 3, 4],
        [5, 6, 7, 8, 9],
        [10, 11],
    ]
    assert client.searches == []


async def test_a_failed_search_in_a_batch_raises_its_own_error_and_the_others_answer():
    client = _Recorder()
    searches = Searches(client)  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(searches("venues", {"n": n}) for n in (1, 12, 1013, 1014, 15)), return_exceptions=True
    )
    assert [r["hits"]["hits"][0]["n"] for r in results if isinstance(r, dict)] == [1, 12, 15]
    missing, refused = results[2], results[3]
    # As a _search of its own would have raised them: the type, the status, the error's type.
    assert isinstance(missing, NotFoundError) and missing.meta.status == 404
    assert missing.message == "index_not_found_exception"
    assert isinstance(refused, BadRequestError) and refused.meta.status == 400


async def test_a_batch_that_fails_as_a_whole_fails_each_of_its_searches():
    client = _Recorder(fail=EsConnectionError("refused"))
    searches = Searches(client)  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(searches("venues", {"n": n}) for n in range(6)), return_exceptions=True
    )
    assert all(isinstance(r, EsConnectionError) for r in results)
    # The next batch tries again.
    client.fail = None
    again = await asyncio.gather(*(searches("venues", {"n": n}) for n in range(3)))
    assert [a["hits"]["hits"][0]["n"] for a in again] == [0, 1, 2]


CENTRE = geo.Point(31.8206, 117.2272)


class _Counting:
    """The real client, counting the searches of each ``_msearch``."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.batches: list[int] = []

    async def search(self, **kwargs: Any) -> Any:
        return await self.client.search(**kwargs)

    async def msearch(self, *, searches: list[dict[str, Any]]) -> Any:
        self.batches.append(len(searches) // 2)
        return await self.client.msearch(searches=searches)


async def test_concurrent_pages_are_the_pages_of_searches_one_by_one(search_ctx):
    if PROFILE != "services":
        assert search_ctx.elastic is None  # the embedded profile searches its database
        return
    rng = random.Random(5)
    specs = [
        Spec(
            lat=CENTRE.lat + rng.uniform(-0.03, 0.03),
            lng=CENTRE.lng + rng.uniform(-0.03, 0.03),
            kind=rng.choice([VenueKind.READING_SPACE, VenueKind.PUBLIC_TOILET]),
            opening_hours=rng.choice(["24/7", "Mo-Fr 08:00-18:00", "Sa-Su 09:00-17:00"]),
            public_id=f"ms-{i:04d}",
        )
        for i in range(400)
    ]
    await seed(search_ctx, specs)
    assert search_ctx.elastic is not None
    now = datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI)
    queries = [
        SearchParams(
            centre=geo.Point(
                CENTRE.lat + rng.uniform(-0.02, 0.02), CENTRE.lng + rng.uniform(-0.02, 0.02)
            ),
            radius_m=rng.choice([300, 1500, 4000]),
            now=now,
            limit=rng.choice([5, 20]),
            open_now=rng.random() < 0.3,
        )
        for _ in range(40)
    ]
    alias = alias_name(search_ctx.settings)
    client = search_ctx.elastic.client
    one_by_one = [await ElasticsearchBackend(Searches(client), alias).search(q) for q in queries]
    counting = _Counting(client)
    backend = ElasticsearchBackend(Searches(counting), alias)  # type: ignore[arg-type]
    pages = await asyncio.gather(*(backend.search(q) for q in queries))
    assert counting.batches and max(counting.batches) > 1  # they did go together
    assert [(p.hits, p.next_key) for p in pages] == [(p.hits, p.next_key) for p in one_by_one]
    assert any(p.hits for p in pages)


async def test_concurrent_searches_fall_back_together_when_elasticsearch_is_down(
    client, search_ctx
):
    await seed(
        search_ctx,
        [Spec(lat=CENTRE.lat + 0.001 * i, lng=CENTRE.lng, public_id=f"ds-{i}") for i in range(3)],
    )
    async with dead_elasticsearch(search_ctx):
        responses = await asyncio.gather(
            *(
                client.get("/api/v1/venues/search", params={"lat": CENTRE.lat, "lng": CENTRE.lng})
                for _ in range(12)
            )
        )
    for response in responses:
        assert response.status_code == 200, response.text
        assert response.headers["x-search-backend"] == "database"
        assert [h["id"] for h in response.json()["items"]] == ["ds-0", "ds-1", "ds-2"]


class _Refusing:
    """A backend whose every search Elasticsearch refuses with ``status``."""

    name = "elasticsearch"

    def __init__(self, status: int, error: str) -> None:
        self.status, self.error = status, error

    async def search(self, params: SearchParams) -> Any:
        raise HTTP_EXCEPTIONS.get(self.status, ApiError)(
            message=self.error,
            meta=dataclasses.replace(META, status=self.status),
            body={"error": {"type": self.error}},
        )


async def test_an_overloaded_elasticsearch_is_an_outage_and_a_refused_query_a_bug(search_ctx):
    """429 (the search queue is full: it happens in bursts) answers from the database, as a
    5xx does; a 400 is the query's fault and is not hidden."""
    await seed(
        search_ctx,
        [Spec(lat=CENTRE.lat + 0.001 * i, lng=CENTRE.lng, public_id=f"ov-{i}") for i in range(3)],
    )
    query = VenueSearchQuery(lat=CENTRE.lat, lng=CENTRE.lng)
    try:
        for status in (429, 503):
            page, answered_by = await search_venues(
                ctx=search_ctx, query=query, backend=_Refusing(status, "es_rejected_execution")
            )
            assert answered_by == "database"
            assert [item.id for item in page.items] == ["ov-0", "ov-1", "ov-2"]
        with pytest.raises(BadRequestError):
            await search_venues(
                ctx=search_ctx, query=query, backend=_Refusing(400, "parsing_exception")
            )
    finally:
        if search_ctx.elastic is not None:
            search_ctx.elastic.reset()
