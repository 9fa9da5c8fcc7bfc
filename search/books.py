"""Which reading places near me hold this book: by title/author substring or by ISBN.

Order: places with at least one matching copy on the shelf first, then the others; within each
group nearest first (WGS-84 geodesic, whole metres), ties by venue id. The cursor carries
``(no_copy_available, distance_m, venue id)``. Answered from the database (books and holdings are
not in the Elasticsearch index yet).

One statement per search (:func:`holdings_query`): the matching titles (at most ``MAX_BOOKS``, by
id), their holdings from the book index (``(book_id, venue_id, copies, copies_available)``, read
from the index alone) and, for each holding, the reading space's columns the page shows, kept
only inside the bounding box. Each place's distance is computed once in Python; the exact order
needs the geodesic and each place's copies summed over its matching books, so it is sorted here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tortoise.filters import escape_like

from backend import geo, paging
from backend.context import AppContext
from backend.errors import ValidationFailed
from search.schemas import BookPlaceHit, BookSearchPage, BookSearchQuery, HeldBook
from search.sql import for_dialect, icontains
from venues.documents import open_state
from venues.models import Holding, VenueKind, VenueStatus
from venues.schemas import Location

MAX_BOOKS = 500
BookKey = tuple[int, int, str]


@dataclass
class _Place:
    venue_id: int
    public_id: str
    distance_m: int
    # The venue's columns the hit shows: (name, address, lat, lng, opening_hours, status).
    shown: tuple[str, str, float, float, str | None, str]
    # (isbn13, title, author, copies, copies available) of each matching holding.
    copies: list[tuple[str, str, str, int, int]] = field(default_factory=list)

    @property
    def available(self) -> int:
        return sum(copy[4] for copy in self.copies)

    @property
    def key(self) -> BookKey:
        return (0 if self.available > 0 else 1, self.distance_m, self.public_id)


def _scope(query: BookSearchQuery, centre: geo.Point) -> str:
    return paging.scope_of(
        "books.search", repr(centre.lat), repr(centre.lng), query.radius_m, query.q, query.isbn
    )


def _after(token: str, *, scope: str, secret: str) -> BookKey:
    first, second, third = paging.decode_cursor(
        token, scope=scope, secret=secret, shape=(int, int, str)
    )
    return first, second, third


# Tortoise's ``icontains`` exactly (:func:`search.sql.icontains`),
# so titles match as they always did on both databases: a substring, case-insensitive, ``%`` and
# ``_`` literal. A leading wildcard can use no B-tree; the catalogue is scanned (thousands of rows,
# a millisecond), and what costs is the holdings, which the book index answers.
_TITLE_OR_AUTHOR = icontains('"title"') + " OR " + icontains('"author"')
# PostgreSQL reads the same ``UPPER`` stored with each book (venues/migrations/0008); the text's
# ``UPPER`` is evaluated once (an InitPlan), not for every title.
_STORED_TITLE_OR_AUTHOR = (
    "\"title_upper\" LIKE (SELECT UPPER(?)) ESCAPE '\\'"
    " OR \"author_upper\" LIKE (SELECT UPPER(?)) ESCAPE '\\'"
)
# The join order is fixed, so one prepared statement (box and text as parameters) plans well for
# every box: the matching titles, then their holdings through the book index, then each holding's
# venue by primary key, where the box is checked. SQLite keeps the order of a CROSS JOIN;
# PostgreSQL gets LATERAL subqueries behind ``OFFSET 0``, which it may neither flatten, reorder
# nor push the box into (so the venue is found by its key, never through the box's index).
# Without that fence, a cached statement's generic plan guessed the box held one venue and
# scanned every venue of the box for each title (230 ms instead of 8 ms on 1M holdings), and
# writing the box as literals instead made every search a new statement to parse and plan
# (~2.5 ms of PostgreSQL's CPU each, more than executing it).
_BOOKS = (
    'SELECT "id", "isbn13", "title", "author" FROM "venues_book" WHERE {match}'
    ' ORDER BY "id" LIMIT {limit}'
)
_VENUE_IN_BOX = (
    " v.\"kind\" = '{kind}' AND v.\"status\" <> '{removed}'"
    ' AND v."lat" >= ? AND v."lat" <= ? AND (v."lng" >= ? {either} v."lng" <= ?)'
)
_COLUMNS = (
    'SELECT v."id", v."public_id", v."name", v."address", v."lat", v."lng",'
    ' v."opening_hours", v."status", b."isbn13", b."title", b."author",'
    ' h."copies", h."copies_available"'
)
_HOLDINGS_SELECT = {
    "sqlite": (
        _COLUMNS + f" FROM ({_BOOKS}) AS b"
        ' CROSS JOIN "venues_holding" AS h CROSS JOIN "venues_venue" AS v'
        ' WHERE h."book_id" = b."id" AND v."id" = h."venue_id" AND' + _VENUE_IN_BOX
    ),
    "postgres": (
        _COLUMNS + f" FROM ({_BOOKS}) AS b"  # noqa: S608 - fixed fragments, bound values
        ' CROSS JOIN LATERAL (SELECT "venue_id", "copies", "copies_available"'
        ' FROM "venues_holding" WHERE "book_id" = b."id" OFFSET 0) AS h'
        ' CROSS JOIN LATERAL (SELECT "id", "public_id", "name", "address", "lat", "lng",'
        ' "opening_hours", "status", "kind" FROM "venues_venue" WHERE "id" = h."venue_id"'
        " OFFSET 0) AS v WHERE" + _VENUE_IN_BOX
    ),
}


def holdings_query(
    *, q: str | None, isbn: str | None, box: geo.Box, dialect: str
) -> tuple[str, list[Any]]:
    """The SQL (and its values) of every matching holding of a reading space in ``box``."""
    values: list[Any]
    if isbn is not None:
        match, values = '"isbn13" = ?', [isbn]
    else:
        pattern = f"%{escape_like((q or '').strip())}%"
        match = _STORED_TITLE_OR_AUTHOR if dialect == "postgres" else _TITLE_OR_AUTHOR
        values = [pattern, pattern]
    sql = _HOLDINGS_SELECT[dialect].format(
        match=match,
        limit=MAX_BOOKS,
        kind=VenueKind.READING_SPACE.value,
        removed=VenueStatus.REMOVED.value,
        either="OR" if box.crosses_antimeridian else "AND",
    )
    values += [box.min_lat, box.max_lat, box.min_lng, box.max_lng]
    return for_dialect(sql, dialect), values


async def search_books(*, ctx: AppContext, query: BookSearchQuery) -> BookSearchPage:
    """Reading places holding a matching book, those with a copy available first."""
    if (query.q is None) == (query.isbn is None):
        raise ValidationFailed(fields={"q": "请提供 q（书名或作者）或 isbn 之一"})
    centre = geo.to_wgs84(query.lat, query.lng, query.coord)
    scope = _scope(query, centre)
    after = (
        _after(query.cursor, scope=scope, secret=ctx.settings.cursor_key) if query.cursor else None
    )
    client = Holding._meta.db
    sql, values = holdings_query(
        q=query.q,
        isbn=query.isbn,
        box=geo.bounding_box(centre, query.radius_m),
        dialect=client.capabilities.dialect,
    )
    _, rows = await client.execute_query(sql, values)
    places: dict[int, _Place] = {}
    outside: set[int] = set()
    for row in rows:
        venue_id = row[0]
        place = places.get(venue_id)
        if place is None:
            if venue_id in outside:
                continue
            distance = geo.distance_m(centre, geo.Point(row[4], row[5]))
            if distance > query.radius_m:
                outside.add(venue_id)
                continue
            place = places[venue_id] = _Place(
                venue_id, row[1], distance, (row[2], row[3], row[4], row[5], row[6], row[7])
            )
        place.copies.append((row[8], row[9], row[10], row[11], row[12]))
    ranked = sorted(
        (p for p in places.values() if after is None or p.key > after), key=lambda p: p.key
    )
    page = ranked[: query.limit]
    next_cursor = None
    if len(ranked) > query.limit and page:
        next_cursor = paging.encode_cursor(
            list(page[-1].key), scope=scope, secret=ctx.settings.cursor_key
        )
    now = ctx.clock.now()
    items = []
    for place in page:
        name, address, lat, lng, opening_hours, status = place.shown
        open_now, next_change = open_state(status, opening_hours, now)
        shown = geo.from_wgs84(geo.Point(lat, lng), query.coord)
        held = [
            HeldBook(
                isbn=isbn,
                title=title,
                author=author,
                copies=copies,
                copies_available=available,
            )
            for isbn, title, author, copies, available in place.copies
        ]
        items.append(
            BookPlaceHit(
                id=place.public_id,
                kind=VenueKind.READING_SPACE,
                name=name,
                address=address,
                location=Location(lat=shown.lat, lng=shown.lng),
                distance_m=place.distance_m,
                open_now=open_now,
                next_change=next_change,
                copies_available=place.available,
                books=sorted(held, key=lambda b: (-b.copies_available, b.title, b.isbn)),
            )
        )
    return BookSearchPage(items=items, next_cursor=next_cursor)
