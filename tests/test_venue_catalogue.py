"""A reading space's own catalogue: its holdings by title, searchable within it, paged."""

from __future__ import annotations

from datetime import UTC, datetime

from stdnum import ean

from backend.models import Role
from tests.factories import headers_for
from venues.models import Book, Holding, Venue, VenueKind, VenueStatus


def isbn13(n: int) -> str:
    base = f"978753669{n:03d}"
    return base + ean.calc_check_digit(base)


async def venue(public_id: str, kind: VenueKind = VenueKind.READING_SPACE) -> Venue:
    return await Venue.create(
        public_id=public_id, kind=kind, name=f"城市书房 {public_id}", lat=31.82, lng=117.22
    )


async def hold(
    where: Venue, n: int, title: str, author: str = "佚名", copies: int = 2, available: int = 1
) -> Book:
    book, _ = await Book.get_or_create(
        isbn13=isbn13(n), defaults={"title": title, "author": author, "publisher": "某出版社"}
    )
    await Holding.create(
        venue=where,
        book=book,
        copies=copies,
        copies_available=available,
        updated_at=datetime.now(UTC),
    )
    return book


async def pages(client, path: str, **params) -> list[list[dict]]:
    found, cursor = [], None
    while True:
        query = params | ({"cursor": cursor} if cursor else {})
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        found.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return found


async def test_the_catalogue_pages_by_title_then_isbn(client):
    shelf = await venue("rs-1")
    other = await venue("rs-2")
    for n in range(1, 24):
        await hold(shelf, n, f"书目{n:02d}", copies=3, available=n % 3)
    await hold(shelf, 900, "书目10")  # the same title again: ordered by ISBN
    await hold(other, 901, "书目99")  # another place's book never shows here
    path = "/api/v1/venues/rs-1/books"
    whole = (await client.get(path, params={"limit": 100})).json()
    assert whole["venue_id"] == "rs-1" and whole["venue_name"] == "城市书房 rs-1"
    assert whole["next_cursor"] is None
    titles = [b["title"] for b in whole["items"]]
    assert titles == sorted(titles) and len(titles) == 24 and "书目99" not in titles
    tens = [b["isbn"] for b in whole["items"] if b["title"] == "书目10"]
    assert tens == sorted([isbn13(10), isbn13(900)])
    paged = await pages(client, path, limit=5)
    assert [len(p) for p in paged] == [5, 5, 5, 5, 4]
    assert [b for page in paged for b in page] == whole["items"]
    first = whole["items"][0]
    assert first == {
        "isbn": isbn13(1),
        "title": "书目01",
        "author": "佚名",
        "publisher": "某出版社",
        "copies": 3,
        "copies_available": 1,
    }
    default = (await client.get(path)).json()
    assert len(default["items"]) == 20 and default["next_cursor"]


async def test_search_within_the_reading_space(client):
    shelf = await venue("rs-1")
    other = await venue("rs-2")
    await hold(shelf, 1, "三体", author="刘慈欣", available=0)
    await hold(shelf, 2, "三体Ⅱ：黑暗森林", author="刘慈欣", available=2)
    await hold(shelf, 3, "The Wandering Earth", author="Liu Cixin", available=1)
    await hold(shelf, 4, "红楼梦", author="曹雪芹", available=1)
    await hold(other, 5, "三体Ⅲ：死神永生", author="刘慈欣", available=4)
    path = "/api/v1/venues/rs-1/books"

    async def titles(**params) -> list[str]:
        response = await client.get(path, params=params)
        assert response.status_code == 200, response.text
        return [b["title"] for b in response.json()["items"]]

    assert await titles(q="三体") == ["三体", "三体Ⅱ：黑暗森林"]
    assert await titles(q="刘慈欣") == ["三体", "三体Ⅱ：黑暗森林"]
    assert await titles(q="wandering") == ["The Wandering Earth"]  # any case
    assert await titles(q="CIXIN") == ["The Wandering Earth"]
    assert await titles(q=isbn13(4)) == ["红楼梦"]
    hyphenated = f"{isbn13(4)[:3]}-{isbn13(4)[3:]}"
    assert await titles(q=hyphenated) == ["红楼梦"]
    assert await titles(q=isbn13(5)) == []  # held elsewhere
    assert await titles(q="%") == []  # a wildcard is a character like any other
    assert await titles(q="三体", available="true") == ["三体Ⅱ：黑暗森林"]
    on_shelf = (await client.get(path, params={"available": "true"})).json()["items"]
    assert all(b["copies_available"] > 0 for b in on_shelf) and len(on_shelf) == 3
    # Paging a search keeps to the search; a cursor of another search is refused.
    paged = await pages(client, path, q="刘慈欣", limit=1)
    assert [b["title"] for page in paged for b in page] == ["三体", "三体Ⅱ：黑暗森林"]
    cursor = (await client.get(path, params={"q": "刘慈欣", "limit": 1})).json()["next_cursor"]
    foreign = await client.get(path, params={"q": "三体", "limit": 1, "cursor": cursor})
    assert foreign.status_code == 400 and "cursor" in foreign.json()["error"]["fields"]
    tampered = await client.get(path, params={"cursor": cursor[:-3] + "abc"})
    assert tampered.status_code == 400 and "cursor" in tampered.json()["error"]["fields"]


async def test_long_titles_page_with_their_cursor(client):
    shelf = await venue("rs-1")
    for n in range(3):
        await hold(shelf, n, "长" * 199 + str(n))
    paged = await pages(client, "/api/v1/venues/rs-1/books", limit=1)
    assert [b["title"][-1] for page in paged for b in page] == ["0", "1", "2"]


async def test_unknown_and_other_venues(client):
    await venue("court-1", VenueKind.SPORTS_VENUE)
    removed = await venue("rs-gone")
    await Venue.filter(id=removed.id).update(status=VenueStatus.REMOVED)
    missing = await client.get("/api/v1/venues/nope/books")
    assert missing.status_code == 404, missing.text
    assert missing.json()["error"]["code"] == "venue_not_found"
    # An id no venue can have (over 32 characters) is refused at the border (backend.access).
    for impossible in ("x" * 33, "x" * 500):
        missing = await client.get(f"/api/v1/venues/{impossible}/books")
        assert missing.status_code == 404, missing.text
        assert missing.json()["error"]["code"] == "not_found"
    gone = await client.get("/api/v1/venues/rs-gone/books")
    assert gone.status_code == 404
    court = await client.get("/api/v1/venues/court-1/books")
    assert court.status_code == 422, court.text
    assert court.json()["error"]["code"] == "venue_not_reading_space"
    assert "venue_id" in court.json()["error"]["fields"]
    await venue("rs-empty")
    empty = await client.get("/api/v1/venues/rs-empty/books")
    assert empty.json() == {
        "venue_id": "rs-empty",
        "venue_name": "城市书房 rs-empty",
        "items": [],
        "next_cursor": None,
    }
    for params, field in (({"limit": 0}, "limit"), ({"q": "x" * 51}, "q"), ({"extra": 1}, "extra")):
        bad = await client.get("/api/v1/venues/rs-empty/books", params=params)
        assert bad.status_code == 400 and field in bad.json()["error"]["fields"], bad.text


async def test_the_catalogue_follows_the_holdings_feed(client):
    admin = await headers_for(client, Role.BUREAU_ADMIN)
    await venue("rs-1")
    fed = await client.put(
        "/api/v1/venues/rs-1/holdings",
        headers=admin,
        json={
            "items": [
                {"isbn": isbn13(1), "title": "三体", "copies": 2, "copies_available": 0},
                {"isbn": isbn13(2), "title": "活着", "copies": 1, "copies_available": 1},
            ]
        },
    )
    assert fed.status_code == 200, fed.text
    listed = (await client.get("/api/v1/venues/rs-1/books")).json()["items"]
    assert {(b["title"], b["copies_available"]) for b in listed} == {("三体", 0), ("活着", 1)}
