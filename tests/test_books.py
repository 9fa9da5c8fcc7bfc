"""Books and holdings: ISBN checks, the catalogue feed, and "which place near me has it"."""

from __future__ import annotations

import asyncio

import pytest

from backend.models import Role
from tests.factories import headers_for, make_user, sign_in
from tests.search_fixtures import Spec, vincenty_m
from venues.models import Book, Holding, Venue, VenueKind

CENTRE = (31.8206, 117.2272)
URL = "/api/v1/books/search"
SANTI = "9787536692930"  # 三体, ISBN-13
HONGLOU_10 = "7-02-000220-X"  # 红楼梦 (ISBN-10 with an X check digit)


async def reading_space(n: int, *, north_m: float, operator=None) -> Venue:
    spec = Spec(lat=CENTRE[0] + north_m / 111_320, lng=CENTRE[1], name=f"城市书房{n}")
    return await Venue.create(
        public_id=f"rs-{n}",
        kind=VenueKind.READING_SPACE,
        name=spec.name,
        lat=spec.lat,
        lng=spec.lng,
        opening_hours="24/7",
        operator=operator,
    )


def item(isbn=SANTI, title="三体", author="刘慈欣", copies=2, available=1):
    return {
        "isbn": isbn,
        "title": title,
        "author": author,
        "copies": copies,
        "copies_available": available,
    }


async def feed(client, headers, venue, items, replace=False):
    return await client.put(
        f"/api/v1/venues/{venue}/holdings",
        headers=headers,
        json={"items": items, "replace": replace},
    )


async def test_the_catalogue_feed_upserts_by_isbn(client):
    admin = await headers_for(client, Role.BUREAU_ADMIN)
    await reading_space(1, north_m=100)
    response = await feed(
        client,
        admin,
        "rs-1",
        [item(), item(isbn=HONGLOU_10, title="红楼梦", author="曹雪芹", copies=3, available=0)],
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"venue_id": "rs-1", "upserted": 2, "removed": 0}
    assert await Book.filter(isbn13="9787020002207").exists()  # ISBN-10 normalised to 13
    response = await feed(
        client, admin, "rs-1", [item(isbn="978-7-5366-9293-0", available=2)], True
    )
    assert response.json()["removed"] == 1
    (holding,) = await Holding.all()
    assert (holding.copies, holding.copies_available) == (2, 2)
    assert await Book.all().count() == 2  # the catalogue keeps the title


@pytest.mark.parametrize(
    ("items", "field"),
    [
        ([item(isbn="9787536692931")], "items.0.isbn"),
        ([item(isbn="12345")], "items.0.isbn"),
        ([item(copies=1, available=2)], "items.0"),
        ([item(), item(isbn="7536692935")], "items.1.isbn"),
        ([item(title="")], "items.0.title"),
    ],
)
async def test_bad_feeds_name_the_field(client, items, field):
    admin = await headers_for(client, Role.BUREAU_ADMIN)
    await reading_space(1, north_m=100)
    response = await feed(client, admin, "rs-1", items)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["fields"], response.json()
    assert await Holding.all().count() == 0


async def test_only_the_bureau_and_the_operator_feed(client):
    operator = await make_user(Role.VENUE_OPERATOR)
    await reading_space(1, north_m=100, operator=operator)
    await reading_space(2, north_m=200)
    headers = await sign_in(client, operator)
    assert (await feed(client, headers, "rs-1", [item()])).status_code == 200
    assert (await feed(client, headers, "rs-2", [item()])).status_code == 403
    resident = await headers_for(client, Role.RESIDENT)
    assert (await feed(client, resident, "rs-1", [item()])).status_code == 403
    assert (await feed(client, {}, "rs-1", [item()])).status_code == 401


async def test_places_with_a_copy_come_first_then_nearest(client):
    admin = await headers_for(client, Role.BUREAU_ADMIN)
    for n, north in ((1, 300), (2, 100), (3, 200), (4, 9000), (5, 50)):
        await reading_space(n, north_m=north)
    await feed(client, admin, "rs-1", [item(available=2)])
    await feed(client, admin, "rs-2", [item(available=0)])  # nearest, but all lent out
    await feed(client, admin, "rs-3", [item(available=1)])
    await feed(client, admin, "rs-4", [item(available=5)])  # outside the radius
    await feed(client, admin, "rs-5", [item(isbn=HONGLOU_10, title="红楼梦", author="曹雪芹")])
    query = {"lat": CENTRE[0], "lng": CENTRE[1], "radius_m": 1000}
    response = await client.get(URL, params={**query, "q": "三体"})
    assert response.status_code == 200, response.text
    hits = response.json()["items"]
    assert [h["id"] for h in hits] == ["rs-3", "rs-1", "rs-2"]
    assert [h["copies_available"] for h in hits] == [1, 2, 0]
    for hit in hits:
        exact = vincenty_m(*CENTRE, hit["location"]["lat"], hit["location"]["lng"])
        assert abs(hit["distance_m"] - exact) <= 1
    assert hits[0]["books"] == [
        {"isbn": SANTI, "title": "三体", "author": "刘慈欣", "copies": 2, "copies_available": 1}
    ]
    by_author = await client.get(URL, params={**query, "q": "曹雪"})
    assert [h["id"] for h in by_author.json()["items"]] == ["rs-5"]
    by_isbn = await client.get(URL, params={**query, "isbn": "978-7-5366-9293-0"})
    assert [h["id"] for h in by_isbn.json()["items"]] == ["rs-3", "rs-1", "rs-2"]
    # Paging one by one gives the same order.
    seen, cursor = [], None
    while True:
        params = {**query, "q": "三体", "limit": 1, **({"cursor": cursor} if cursor else {})}
        body = (await client.get(URL, params=params)).json()
        seen += [h["id"] for h in body["items"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == ["rs-3", "rs-1", "rs-2"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "q"),
        ({"q": "三体", "isbn": SANTI}, "q"),
        ({"isbn": "9787536692931"}, "isbn"),
        ({"q": "三体", "radius_m": 60_000}, "radius_m"),
        ({"q": "三体", "cursor": "forged.cursor"}, "cursor"),
    ],
)
async def test_bad_book_queries_name_the_field(client, params, field):
    response = await client.get(URL, params={"lat": CENTRE[0], "lng": CENTRE[1], **params})
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["fields"], response.json()


async def test_concurrent_feeds_adding_one_new_book_never_answer_500(client):
    admin = await headers_for(client, Role.BUREAU_ADMIN)
    for n in range(1, 5):
        await reading_space(n, north_m=100 * n)
    responses = await asyncio.gather(
        *(feed(client, admin, f"rs-{n}", [item()]) for n in range(1, 5))
    )
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 409}, [r.text for r in responses]
    assert 200 in statuses
    assert await Book.filter(isbn13=SANTI).count() == 1
