"""What keeps a venue search on Elasticsearch cheap, without changing a single result.

* the re-ranker builds a candidate's document (and evaluates its opening hours) only when the
  candidate's key can still enter the page, and keeps exactly the hits full ranking keeps;
* the Elasticsearch requests: a first batch a little larger than the page, the index filtering
  what ``open_now`` and ``has_free_spaces`` imply;
* one query client per Elasticsearch client (not one per search), parsing with orjson.

No Elasticsearch server is needed: the backend talks to a recording stub.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from elasticsearch import AsyncElasticsearch
from elasticsearch.serializer import OrjsonSerializer

from backend import geo
from backend.clock import SHANGHAI, Clock
from backend.elastic import QUERY_TIMEOUT, Elastic
from search.backends import (
    MAX_BATCH,
    ElasticsearchBackend,
    Reranker,
    SearchParams,
    first_batch,
    rank,
)
from venues.documents import VenueDoc

CENTRE = geo.Point(31.8206, 117.2272)
NOW = datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI)  # a Wednesday morning
HOURS = ("24/7", "Mo-Fr 08:00-18:00", "Sa-Su 09:00-17:00", None)


def _doc(i: int, rng: random.Random) -> VenueDoc:
    north, east = rng.uniform(-3000, 3000), rng.uniform(-3000, 3000)
    lat = CENTRE.lat + north / 111_320.0
    lng = CENTRE.lng + east / (111_320.0 * math.cos(math.radians(CENTRE.lat)))
    parking = rng.random() < 0.3
    return VenueDoc(
        id=f"v{i:04d}",
        kind="parking_lot" if parking else rng.choice(["reading_space", "public_toilet"]),
        name="",
        address="",
        district="",
        street="",
        description="",
        lat=lat,
        lng=lng,
        opening_hours=rng.choice(HOURS),
        status=rng.choice(["open", "open", "open", "temporarily_closed"]),
        accessible=rng.random() < 0.5,
        capacity=100 if parking else None,
        free_spaces=rng.choice([None, 0, 3, 60]) if parking else None,
        observed_at=(NOW - timedelta(minutes=rng.choice([2, 90]))).isoformat() if parking else None,
    )


def _candidates(n: int, seed: int) -> list[tuple[float, VenueDoc]]:
    rng = random.Random(seed)
    docs = [_doc(i, rng) for i in range(n)]
    return sorted(((geo.arc_m(CENTRE, d.point), d) for d in docs), key=lambda c: c[0])


def _params(**overrides: Any) -> SearchParams:
    base: dict[str, Any] = {"centre": CENTRE, "radius_m": 2500, "now": NOW, "limit": 20}
    return SearchParams(**{**base, **overrides})


def _full_ranking(candidates: list[tuple[float, VenueDoc]], params: SearchParams) -> list[Any]:
    ranked = [r for r in (rank(doc, params) for _, doc in candidates) if r is not None]
    return sorted(ranked, key=lambda r: r.key)[: params.limit + 1]


def test_the_reranker_builds_only_candidates_that_can_enter_the_page():
    candidates = _candidates(600, seed=5)
    cases = [
        _params(),
        _params(limit=1),
        _params(limit=100, radius_m=1500),
        _params(open_now=True),
        _params(has_free_spaces=True, limit=5),
        _params(kinds=("public_toilet",), accessible=True),
        _params(after=(800, "v0300")),
    ]
    for params in cases:
        expected = _full_ranking(candidates, params)
        built = _Built()
        by_point = Reranker(params)
        by_doc = Reranker(params)
        for arc, doc in candidates:
            by_point.offer_at(arc, doc.id, doc.lat, doc.lng, built.maker(doc))
            by_doc.offer(arc, _Built().maker(doc))
        # Exactly the hits (documents, distances, live states) that ranking every candidate keeps.
        assert by_point.best == expected, params
        assert by_doc.best == expected, params
        # A candidate outside the radius or before the cursor is never built.
        for _, doc in candidates:
            distance = geo.distance_m(CENTRE, doc.point)
            if distance > params.radius_m or (params.after and (distance, doc.id) <= params.after):
                assert doc.id not in built.ids
    # Offered in arc order, a candidate behind a full page is not built either: of the ~330
    # venues inside the radius, about the page (21) and a few that the sphere misorders.
    params = _params()
    built = _Built()
    reranker = Reranker(params)
    for arc, doc in candidates:
        reranker.offer_at(arc, doc.id, doc.lat, doc.lng, built.maker(doc))
    inside = sum(1 for _, d in candidates if geo.distance_m(CENTRE, d.point) <= params.radius_m)
    assert inside > 300 and len(built.ids) < 40


class _Built:
    """Document builders that record which candidates were built."""

    def __init__(self) -> None:
        self.ids: list[str] = []

    def maker(self, doc: VenueDoc) -> Callable[[], VenueDoc]:
        def build() -> VenueDoc:
            self.ids.append(doc.id)
            return doc

        return build


class _StubSearches:
    """Records the body of each search and answers from a list of hits."""

    def __init__(self, docs: list[VenueDoc]) -> None:
        self.docs = sorted(docs, key=lambda d: (geo.arc_m(CENTRE, d.point), d.id))
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, index: str, body: dict[str, Any]) -> Any:
        self.calls.append(body)
        reach = float(body["query"]["bool"]["filter"][0]["geo_distance"]["distance"][:-1])
        after = body.get("search_after")
        hits = []
        for doc in self.docs:
            arc = geo.arc_m(CENTRE, doc.point)
            if arc > reach or (after is not None and [arc, doc.id] <= after):
                continue
            source = doc.to_source()
            for field in body["_source"]["excludes"]:
                source.pop(field)
            hits.append({"_source": source, "sort": [arc, doc.id]})
            if len(hits) == body["size"]:
                break
        return {"hits": {"hits": hits}}


async def test_elasticsearch_requests_ask_for_little():
    candidates = _candidates(400, seed=9)
    client = _StubSearches([doc for _, doc in candidates])
    backend = ElasticsearchBackend(client, "venues")  # type: ignore[arg-type]
    params = _params()
    result = await backend.search(params)
    assert result.hits == _full_ranking(candidates, params)[: params.limit]
    first = client.calls[0]
    assert first["size"] == first_batch(params) == 26  # a page of 20 + 1, plus a quarter
    assert first["track_total_hits"] is False
    assert set(first["_source"]["excludes"]) == {"description", "location"}
    # A stage that needs more reads on with doubled batches.
    sizes = [call["size"] for call in client.calls]
    assert all(b == min(MAX_BATCH, 2 * a) or b == a for a, b in zip(sizes, sizes[1:], strict=False))


def test_first_batch_grows_with_the_page_and_the_clock_filters():
    assert first_batch(_params(limit=1)) == 7
    assert first_batch(_params(limit=20)) == 26
    assert first_batch(_params(limit=100)) == 126
    assert first_batch(_params(limit=20, open_now=True)) == 52
    assert first_batch(_params(limit=20, has_free_spaces=True)) == 52


def test_the_index_filters_what_the_clock_filters_imply():
    backend = ElasticsearchBackend(None, "venues")  # type: ignore[arg-type]

    def filters(**overrides: Any) -> list[dict[str, Any]]:
        return backend._query(_params(**overrides), 1000.0)["bool"]["filter"][1:]

    assert filters() == []
    assert filters(open_now=True) == [{"term": {"status": "open"}}]
    assert filters(has_free_spaces=True) == [
        {"term": {"status": "open"}},
        {"term": {"kind": "parking_lot"}},
        {"range": {"free_spaces": {"gte": 1}}},
    ]


async def test_one_query_client_per_elasticsearch_client():
    first = AsyncElasticsearch("http://127.0.0.1:1", serializer=OrjsonSerializer())
    second = AsyncElasticsearch("http://127.0.0.1:2")
    try:
        elastic = Elastic(first, clock=Clock(), index_prefix="x")
        query = elastic.query_client
        assert elastic.query_client is query
        assert query.transport is first.transport  # the same pooled connections
        assert query._request_timeout == QUERY_TIMEOUT and query._max_retries == 0
        assert isinstance(
            query.transport.serializers.get_serializer("application/json"), OrjsonSerializer
        )
        elastic.client = second  # tests swap the client: the query client follows
        assert elastic.query_client is not query
        assert elastic.query_client.transport is second.transport
    finally:
        await first.close()
        await second.close()


def test_the_shared_client_parses_with_orjson():
    from backend.config import Settings
    from backend.elastic import create_client

    client = create_client(Settings.from_env({}, elasticsearch_url="http://127.0.0.1:1"))
    serializer = client.transport.serializers.get_serializer("application/json")
    assert isinstance(serializer, OrjsonSerializer)
