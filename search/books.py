"""Which reading places near me hold this book: by title/author substring or by ISBN.

Order: places with at least one matching copy on the shelf first, then the others; within each
group nearest first (WGS-84 geodesic, whole metres), ties by venue id. The cursor carries
``(no_copy_available, distance_m, venue id)``. Answered from the database (books and holdings are
not in the Elasticsearch index yet).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tortoise.expressions import Q

from backend import geo, paging
from backend.context import AppContext
from backend.errors import ValidationFailed
from search.schemas import BookPlaceHit, BookSearchPage, BookSearchQuery, HeldBook
from venues.documents import live_state, venue_doc
from venues.models import Book, Holding, Venue, VenueKind, VenueStatus
from venues.schemas import Location

MAX_BOOKS = 500
BookKey = tuple[int, int, str]


@dataclass
class _Place:
    venue_id: int
    public_id: str
    distance_m: int
    # (book id, copies, copies available) of each matching holding.
    copies: list[tuple[int, int, int]] = field(default_factory=list)

    @property
    def available(self) -> int:
        return sum(available for _, _, available in self.copies)

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


async def search_books(*, ctx: AppContext, query: BookSearchQuery) -> BookSearchPage:
    """Reading places holding a matching book, those with a copy available first."""
    if (query.q is None) == (query.isbn is None):
        raise ValidationFailed(fields={"q": "请提供 q（书名或作者）或 isbn 之一"})
    centre = geo.to_wgs84(query.lat, query.lng, query.coord)
    scope = _scope(query, centre)
    after = (
        _after(query.cursor, scope=scope, secret=ctx.settings.cursor_key) if query.cursor else None
    )
    if query.isbn is not None:
        books = Book.filter(isbn13=query.isbn)
    else:
        text = (query.q or "").strip()
        books = Book.filter(Q(title__icontains=text) | Q(author__icontains=text))
    # Plain tuples, no model objects: the book rows once, then one light row per holding in the
    # box; whole venue rows only for the page.
    book_rows = await (
        books.order_by("id").limit(MAX_BOOKS).values_list("id", "isbn13", "title", "author")
    )
    titles = {row[0]: row for row in book_rows}
    box = geo.bounding_box(centre, query.radius_m)
    holdings = Holding.filter(
        book_id__in=list(titles),
        venue__kind=VenueKind.READING_SPACE,
        venue__lat__gte=box.min_lat,
        venue__lat__lte=box.max_lat,
    ).exclude(venue__status=VenueStatus.REMOVED)
    if box.crosses_antimeridian:
        holdings = holdings.filter(Q(venue__lng__gte=box.min_lng) | Q(venue__lng__lte=box.max_lng))
    else:
        holdings = holdings.filter(venue__lng__gte=box.min_lng, venue__lng__lte=box.max_lng)
    rows = await holdings.values_list(
        "venue_id",
        "book_id",
        "copies",
        "copies_available",
        "venue__public_id",
        "venue__lat",
        "venue__lng",
    )
    places: dict[int, _Place] = {}
    outside: set[int] = set()
    for venue_id, book_id, copies, available, public_id, lat, lng in rows:
        place = places.get(venue_id)
        if place is None:
            if venue_id in outside:
                continue
            distance = geo.distance_m(centre, geo.Point(lat, lng))
            if distance > query.radius_m:
                outside.add(venue_id)
                continue
            place = places[venue_id] = _Place(venue_id, public_id, distance)
        place.copies.append((book_id, copies, available))
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
    venues = {v.id: v for v in await Venue.filter(id__in=[p.venue_id for p in page])}
    items = []
    for place in page:
        venue = venues[place.venue_id]
        state = live_state(venue_doc(venue), now, ctx.settings.parking_stale_after)
        shown = geo.from_wgs84(geo.Point(venue.lat, venue.lng), query.coord)
        held = [
            HeldBook(
                isbn=titles[book_id][1],
                title=titles[book_id][2],
                author=titles[book_id][3],
                copies=copies,
                copies_available=available,
            )
            for book_id, copies, available in place.copies
        ]
        items.append(
            BookPlaceHit(
                id=place.public_id,
                kind=venue.kind,
                name=venue.name,
                address=venue.address,
                location=Location(lat=shown.lat, lng=shown.lng),
                distance_m=place.distance_m,
                open_now=state.open_now,
                next_change=state.next_change,
                copies_available=place.available,
                books=sorted(held, key=lambda b: (-b.copies_available, b.title, b.isbn)),
            )
        )
    return BookSearchPage(items=items, next_cursor=next_cursor)
