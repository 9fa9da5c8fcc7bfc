"""Book search against a brute-force ranking of every holding, and how the store answers it.

The search reads the matching titles, their holdings and the venues in one statement
(search/books.py ``holdings_query``); these tests pin what it must keep: exactly the places and
order of a ranking computed in Python from every row, `%` and `_` literal, ASCII case folded, the
antimeridian, removed venues and other kinds left out, and the covering book index.
"""

from __future__ import annotations

import random

from tortoise import connections

from backend import geo
from search.books import MAX_BOOKS, holdings_query
from tests.conftest import PROFILE
from venues.models import Book, Holding, Venue, VenueKind, VenueStatus

URL = "/api/v1/books/search"
CENTRE = (31.8206, 117.2272)
SQLITE = PROFILE == "embedded"


async def _venue(n: int, lat: float, lng: float, **extra: object) -> Venue:
    fields: dict[str, object] = {
        "public_id": f"v-{n:03d}",
        "kind": VenueKind.READING_SPACE,
        "name": f"城市书房{n}",
        "lat": lat,
        "lng": lng,
        "opening_hours": "Mo-Su 08:00-20:00",
    }
    fields.update(extra)
    return await Venue.create(**fields)


async def _book(n: int, title: str, author: str) -> Book:
    return await Book.create(isbn13=f"97870000{n:05d}", title=title, author=author)


async def _hold(venue: Venue, book: Book, copies: int, available: int) -> None:
    await Holding.create(
        venue=venue,
        book=book,
        copies=copies,
        copies_available=available,
        updated_at=venue.created_at,
    )


async def brute_force(
    q: str, centre: tuple[float, float], radius_m: int
) -> list[tuple[int, int, str, int]]:
    """(group, distance_m, venue id, copies available) of every matching place, in order."""
    needle = q.strip().upper()
    books = [
        b.id
        for b in await Book.all().order_by("id")
        if needle in b.title.upper() or needle in b.author.upper()
    ][:MAX_BOOKS]
    point = geo.Point(*centre)
    places: dict[str, tuple[int, int]] = {}
    for h in await Holding.filter(book_id__in=books).prefetch_related("venue"):
        venue = h.venue
        if venue.kind != VenueKind.READING_SPACE or venue.status == VenueStatus.REMOVED:
            continue
        distance = geo.distance_m(point, geo.Point(venue.lat, venue.lng))
        if distance > radius_m:
            continue
        _, available = places.get(venue.public_id, (distance, 0))
        places[venue.public_id] = (distance, available + h.copies_available)
    return sorted(
        (0 if available > 0 else 1, distance, pk, available)
        for pk, (distance, available) in places.items()
    )


async def _all_pages(client, params: dict[str, object]) -> list[tuple[int, int, str, int]]:
    seen: list[tuple[int, int, str, int]] = []
    cursor = None
    while True:
        page = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get(URL, params=page)
        assert response.status_code == 200, response.text
        body = response.json()
        for hit in body["items"]:
            group = 0 if hit["copies_available"] > 0 else 1
            seen.append((group, hit["distance_m"], hit["id"], hit["copies_available"]))
        cursor = body["next_cursor"]
        if cursor is None:
            return seen


async def test_random_searches_page_in_the_brute_force_order(client):
    rng = random.Random(13)
    titles = [
        ("三体", "刘慈欣"),
        ("三体Ⅱ", "刘慈欣"),
        ("活着", "余华"),
        ("Liu Cixin Reader", "Ken"),
    ]
    titles += [(f"巢湖往事{i}", f"王{i}") for i in range(6)]
    books = [await _book(i, t, a) for i, (t, a) in enumerate(titles)]
    venues = []
    for n in range(60):
        extra: dict[str, object] = {}
        if n % 17 == 5:
            extra["status"] = VenueStatus.REMOVED
        if n % 13 == 7:
            extra["kind"] = VenueKind.SPORTS_VENUE
        if n % 11 == 3:
            extra["status"] = VenueStatus.TEMPORARILY_CLOSED
        lat = CENTRE[0] + rng.uniform(-0.05, 0.05)
        lng = CENTRE[1] + rng.uniform(-0.06, 0.06)
        venues.append(await _venue(n, lat, lng, **extra))
    # Two places at exactly the same point: the tie is broken by id.
    venues.append(await _venue(60, venues[0].lat, venues[0].lng))
    for venue in venues:
        for book in rng.sample(books, k=rng.randint(1, 4)):
            copies = rng.randint(1, 3)
            await _hold(venue, book, copies, rng.choice((0, 0, copies, rng.randint(0, copies))))
    for q in ("三体", "刘慈", "活着", "liu", "王", "往事", " 三体 ", "没有这本书"):
        for _ in range(3):
            centre = (CENTRE[0] + rng.uniform(-0.03, 0.03), CENTRE[1] + rng.uniform(-0.03, 0.03))
            radius = rng.choice((800, 2500, 6000))
            limit = rng.choice((1, 3, 20))
            params = {"q": q, "lat": centre[0], "lng": centre[1], "radius_m": radius}
            found = await _all_pages(client, {**params, "limit": limit})
            assert found == await brute_force(q, centre, radius), (q, centre, radius, limit)
    # Removed venues and other kinds hold copies too, and never appear.
    shown = {
        pk
        for q in ("三体", "活着", "王")
        for *_, pk, _ in await _all_pages(
            client, {"q": q, "lat": CENTRE[0], "lng": CENTRE[1], "radius_m": 50_000, "limit": 100}
        )
    }
    hidden = {v.public_id for v in venues if v.status == VenueStatus.REMOVED}
    hidden |= {v.public_id for v in venues if v.kind != VenueKind.READING_SPACE}
    assert hidden and not shown & hidden


async def test_percent_and_underscore_are_literal_and_ascii_case_is_folded(client):
    near = await _venue(1, CENTRE[0] + 0.001, CENTRE[1])
    await _hold(near, await _book(1, "100%_Python", "Guido"), 1, 1)
    await _hold(near, await _book(2, "100 Python", "guido"), 1, 1)
    query = {"lat": CENTRE[0], "lng": CENTRE[1]}

    async def titles(q: str) -> list[str]:
        response = await client.get(URL, params={**query, "q": q})
        assert response.status_code == 200, response.text
        return sorted(b["title"] for hit in response.json()["items"] for b in hit["books"])

    assert await titles("0%_p") == ["100%_Python"]
    assert await titles("%") == ["100%_Python"]
    assert await titles("_") == ["100%_Python"]
    assert await titles("PYTHON") == ["100 Python", "100%_Python"]
    assert await titles("GUIDO") == ["100 Python", "100%_Python"]

    # A renamed book matches by its new title and author only (on PostgreSQL through the
    # case-folded copies stored with the row, venues/migrations/0008).
    await Book.filter(isbn13="9787000000002").update(title="Rust 入门", author="Ferris")
    assert await titles("python") == ["100%_Python"]
    assert await titles("RUST") == ["Rust 入门"]
    assert await titles("ferr") == ["Rust 入门"]
    assert await titles("guido") == ["100%_Python"]


async def test_a_search_across_the_antimeridian(client):
    book = await _book(1, "三体", "刘慈欣")
    east = await _venue(1, -17.0, 179.995)
    west = await _venue(2, -17.0, -179.995)
    far = await _venue(3, -17.0, 179.9)
    for venue in (east, west, far):
        await _hold(venue, book, 1, 1)
    params = {"q": "三体", "lat": -17.0, "lng": 179.999, "radius_m": 2000}
    found = await _all_pages(client, params)
    assert [pk for _, _, pk, _ in found] == ["v-001", "v-002"]
    assert found == await brute_force("三体", (-17.0, 179.999), 2000)


def test_one_statement_serves_every_box():
    # The text and the box are parameters, so every search runs the same prepared statement
    # (no parse and plan per search); only a box across the antimeridian has its own text.
    near = geo.bounding_box(geo.Point(*CENTRE), 5000)
    other = geo.bounding_box(geo.Point(30.1, 120.2), 800)
    for dialect in ("postgres", "sqlite"):
        sql, values = holdings_query(q=" 三体 ", isbn=None, box=near, dialect=dialect)
        again, other_values = holdings_query(q="活着", isbn=None, box=other, dialect=dialect)
        assert sql == again
        assert values == [
            "%三体%",
            "%三体%",
            near.min_lat,
            near.max_lat,
            near.min_lng,
            near.max_lng,
        ]
        assert other_values[2:] == [other.min_lat, other.max_lat, other.min_lng, other.max_lng]
        assert repr(near.min_lat) not in sql
    across = geo.bounding_box(geo.Point(-16.85, 179.999), 2000)
    sql, values = holdings_query(q=None, isbn="9787536692930", box=across, dialect="sqlite")
    assert sql.count("?") == 5 and values[0] == "9787536692930"
    assert sql != holdings_query(q=None, isbn="9787536692930", box=near, dialect="sqlite")[0]


async def test_the_generic_plan_reads_titles_then_holdings_then_venues(client):
    # PostgreSQL switches a cached statement to a generic plan after five runs. The plan must
    # still go from the matching titles to their holdings (book index) to each holding's venue
    # by primary key: a plan that scanned the box's venues for each title or holding took 230 ms
    # on 1M holdings (the LATERAL subqueries behind OFFSET 0 fix the order and the access).
    if SQLITE:
        return
    from tortoise.transactions import in_transaction

    box = geo.bounding_box(geo.Point(*CENTRE), 5000)
    sql, values = holdings_query(q="三体", isbn=None, box=box, dialect="postgres")
    types = "text, text, float8, float8, float8, float8"
    arguments = ", ".join(["'%三体%'", "'%三体%'", *(repr(v) for v in values[2:])])
    async with in_transaction() as tx:
        await tx.execute_script("SET LOCAL plan_cache_mode = force_generic_plan")
        await tx.execute_script(f"PREPARE book_plan ({types}) AS {sql}")
        try:
            _, rows = await tx.execute_query(f"EXPLAIN EXECUTE book_plan ({arguments})")
        finally:
            await tx.execute_script("DEALLOCATE book_plan")
    plan = "\n".join(row["QUERY PLAN"] for row in rows)
    lines = plan.splitlines()
    books = next(i for i, line in enumerate(lines) if " on venues_book" in line)
    holdings = next(i for i, line in enumerate(lines) if " on venues_holding" in line)
    venues = next(i for i, line in enumerate(lines) if " on venues_venue" in line)
    assert books < holdings < venues, plan  # nested loops, the outer side first
    # The venue is found by its key (the table is nearly empty here, so a scan may do it), never
    # through the box: the box is a filter on the venue found.
    assert "Index Cond: (id = " in plan or "Filter: (id = " in plan, plan
    assert "idx_venues_venu_lat" not in plan, plan


async def test_the_holdings_are_read_through_the_covering_book_index(client):
    conn = connections.get("default")
    box = geo.bounding_box(geo.Point(*CENTRE), 5000)
    if SQLITE:
        sql, values = holdings_query(q="三体", isbn=None, box=box, dialect="sqlite")
        _, plan = await conn.execute_query(f"EXPLAIN QUERY PLAN {sql}", values)
        steps = [row[3] for row in plan]
        assert any("COVERING INDEX idx_venues_hold_book_id" in step for step in steps), steps
        _, rows = await conn.execute_query(
            "SELECT sql FROM sqlite_master WHERE name LIKE 'idx_venues_hold_book_id%'"
        )
        definitions = [row[0] for row in rows]
    else:
        _, rows = await conn.execute_query(
            "SELECT indexdef FROM pg_indexes WHERE indexname LIKE 'idx_venues_hold_book_id%'"
        )
        definitions = [row["indexdef"] for row in rows]
    assert len(definitions) == 1, definitions  # the lone (book_id) index is gone
    columns = definitions[0].replace('"', "").rsplit("(", 1)[1]
    assert columns == "book_id, venue_id, copies, copies_available)", definitions
