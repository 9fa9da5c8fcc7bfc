"""``GET /api/v1/venues/search`` over HTTP: validation, cursors, coordinates, backend header."""

from __future__ import annotations

import base64
import dataclasses
import json
from datetime import datetime

import pytest

from backend import geo
from backend.clock import SHANGHAI
from search.schemas import SearchPage
from server.app import _dumps
from tests.conftest import PROFILE
from tests.elastic_helpers import dead_elasticsearch
from tests.search_fixtures import (  # noqa: F401 - fixtures
    Spec,
    search_ctx_fixture,
    seed,
    vincenty_m,
)
from venues.models import VenueKind

CENTRE = geo.Point(31.8206, 117.2272)
URL = "/api/v1/venues/search"
PRIMARY = "elasticsearch" if PROFILE == "services" else "database"


def around(n: int) -> list[Spec]:
    return [
        Spec(
            lat=CENTRE.lat + 0.001 * i,
            lng=CENTRE.lng + 0.0005 * i,
            kind=VenueKind.PUBLIC_TOILET if i % 2 else VenueKind.READING_SPACE,
            name=f"阅读点{i}" if i % 2 == 0 else f"公厕{i}",
            public_id=f"api-{i:03d}",
        )
        for i in range(n)
    ]


async def test_hits_carry_the_contract_fields_and_page_with_cursors(client, search_ctx):
    search_ctx.clock.set(datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI))
    await seed(search_ctx, around(12))
    query = {"lat": CENTRE.lat, "lng": CENTRE.lng, "radius_m": 5000, "limit": 5}
    seen, cursor = [], None
    while True:
        response = await client.get(URL, params={**query, **({"cursor": cursor} if cursor else {})})
        assert response.status_code == 200, response.text
        assert response.headers["x-search-backend"] == PRIMARY
        body = response.json()
        seen += body["items"]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert [h["id"] for h in seen] == [f"api-{i:03d}" for i in range(12)]
    first = seen[0]
    assert {"id", "kind", "name", "location", "distance_m", "open_now", "next_change"} <= set(first)
    assert first["distance_m"] == 0 and first["open_now"] is True
    for hit in seen:
        exact = vincenty_m(CENTRE.lat, CENTRE.lng, hit["location"]["lat"], hit["location"]["lng"])
        assert abs(hit["distance_m"] - exact) <= 1
    kinds = await client.get(URL, params={**query, "kind": "public_toilet,reading_space"})
    assert len(kinds.json()["items"]) == 5
    toilets = await client.get(URL, params=[*query.items(), ("kind", "public_toilet")])
    assert {h["kind"] for h in toilets.json()["items"]} == {"public_toilet"}
    chinese = await client.get(URL, params={**query, "q": "阅读"})
    assert [h["id"] for h in chinese.json()["items"]] == ["api-000", "api-002", "api-004"] + [
        "api-006",
        "api-008",
    ]


async def test_the_page_is_the_json_of_its_model(client, search_ctx):
    # The route writes the page with pydantic's own JSON writer: the bytes must be those the
    # app's JSON writer gives for the page's dict (times with their offset, Chinese unescaped).
    search_ctx.clock.set(datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI))
    await seed(
        search_ctx,
        [dataclasses.replace(spec, opening_hours="Mo-Su 08:00-18:00") for spec in around(4)],
    )
    query = {"lat": CENTRE.lat, "lng": CENTRE.lng, "radius_m": 5000, "limit": 3}
    response = await client.get(URL, params=query)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    page = SearchPage.model_validate_json(response.content)
    assert len(page.items) == 3 and page.next_cursor
    assert page.items[0].next_change is not None
    assert response.content == _dumps(page.model_dump(mode="json"))
    assert "阅读点0".encode() in response.content


async def test_gcj02_queries_and_answers(client, search_ctx):
    await seed(search_ctx, around(3))
    gcj = geo.from_wgs84(CENTRE, "gcj02")
    response = await client.get(
        URL, params={"lat": gcj.lat, "lng": gcj.lng, "coord": "gcj02", "radius_m": 1000}
    )
    hits = response.json()["items"]
    assert hits[0]["id"] == "api-000" and hits[0]["distance_m"] == 0
    assert abs(hits[0]["location"]["lat"] - gcj.lat) < 1e-6
    assert abs(hits[0]["location"]["lng"] - gcj.lng) < 1e-6
    wgs = await client.get(URL, params={"lat": CENTRE.lat, "lng": CENTRE.lng, "radius_m": 1000})
    assert [h["distance_m"] for h in wgs.json()["items"]] == [h["distance_m"] for h in hits]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lat": 91, "lng": 117}, "lat"),
        ({"lat": "nan", "lng": 117}, "lat"),
        ({"lat": 31, "lng": 181}, "lng"),
        ({"lng": 117}, "lat"),
        ({"lat": 31, "lng": 117, "radius_m": 50_001}, "radius_m"),
        ({"lat": 31, "lng": 117, "radius_m": 0}, "radius_m"),
        ({"lat": 31, "lng": 117, "kind": "castle"}, "kind"),
        ({"lat": 31, "lng": 117, "coord": "mars"}, "coord"),
        ({"lat": 31, "lng": 117, "limit": 101}, "limit"),
        ({"lat": 31, "lng": 117, "open_now": "perhaps"}, "open_now"),
        ({"lat": 31, "lng": 117, "cursor": "garbage"}, "cursor"),
        ({"lat": 31, "lng": 117, "colour": "red"}, "colour"),
        ({"lat": 31, "lng": 117, "q": "%%"}, "q"),
    ],
)
async def test_bad_queries_name_the_field(client, params, field):
    response = await client.get(URL, params=params)
    assert response.status_code == 400, response.text
    fields = response.json()["error"]["fields"]
    assert any(name == field or name.startswith(field + ".") for name in fields), fields


async def test_tampered_and_foreign_cursors_are_refused(client, search_ctx):
    await seed(search_ctx, around(4))
    query = {"lat": CENTRE.lat, "lng": CENTRE.lng, "limit": 1}
    cursor = (await client.get(URL, params=query)).json()["next_cursor"]
    head, _, sig = cursor.partition(".")
    payload = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    payload[1] = 0  # rewind the distance (payload is [scope, distance_m, id])
    forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    for bad in (f"{forged}.{sig}", cursor[:-2] + "AA", cursor + "x"):
        response = await client.get(URL, params={**query, "cursor": bad})
        assert response.status_code == 400
        assert "cursor" in response.json()["error"]["fields"]
    other = await client.get(URL, params={**query, "radius_m": 999, "cursor": cursor})
    assert other.status_code == 400
    assert "cursor" in other.json()["error"]["fields"]
    ok = await client.get(URL, params={**query, "cursor": cursor})
    assert ok.status_code == 200 and ok.json()["items"][0]["id"] == "api-001"


async def test_search_answers_from_the_database_when_elasticsearch_is_unreachable(
    client, search_ctx
):
    await seed(search_ctx, around(3))
    async with dead_elasticsearch(search_ctx):
        response = await client.get(URL, params={"lat": CENTRE.lat, "lng": CENTRE.lng})
        assert response.status_code == 200
        assert response.headers["x-search-backend"] == "database"
        assert [h["id"] for h in response.json()["items"]] == ["api-000", "api-001", "api-002"]
        # For a while this worker does not even try: requests stay fast while it is down.
        again = await client.get(URL, params={"lat": CENTRE.lat, "lng": CENTRE.lng})
        assert again.headers["x-search-backend"] == "database"
    search_ctx.clock.advance(11)
    later = await client.get(URL, params={"lat": CENTRE.lat, "lng": CENTRE.lng})
    assert later.headers["x-search-backend"] == PRIMARY


async def test_removed_venues_leave_the_results(client, search_ctx):
    from backend.models import Role
    from search.index import drain
    from tests.factories import headers_for

    await seed(search_ctx, around(2))
    admin = await headers_for(client, Role.BUREAU_ADMIN)
    response = await client.post(
        "/api/v1/venues/api-000/close", headers=admin, json={"reason": "撤除", "permanent": True}
    )
    assert response.status_code == 200
    await drain(search_ctx, refresh=True)
    hits = (await client.get(URL, params={"lat": CENTRE.lat, "lng": CENTRE.lng})).json()["items"]
    assert [h["id"] for h in hits] == ["api-001"]
