"""A reading space's own catalogue: the books it holds, searchable within it, with copies on
the shelf.

Answered from the database (venues, books and holdings are venue tables; no search index is
involved), so both profiles give the same results. Order: title, then ISBN-13, a keyset the
signed cursor carries as ``(title, isbn)``. ``q`` matches a title or author substring
(case-insensitive) or, when it is a valid ISBN-10/13, that ISBN.
"""

from __future__ import annotations

from tortoise.expressions import Q

from backend import paging
from backend.context import AppContext
from backend.errors import Unprocessable
from venues.models import Book, Holding, VenueKind
from venues.presenters import catalogue_book_out
from venues.schemas import CataloguePage, CatalogueQuery, normalise_isbn
from venues.service import get_venue_or_raise


def _matching(text: str) -> Q:
    wanted = Q(book__title__icontains=text) | Q(book__author__icontains=text)
    try:
        return wanted | Q(book__isbn13=normalise_isbn(text))
    except ValueError:
        return wanted


async def venue_catalogue(
    *, ctx: AppContext, public_id: str, query: CatalogueQuery
) -> CataloguePage:
    """The holdings of one reading space, by title (404 unknown venue, 422 another kind)."""
    venue = await get_venue_or_raise(public_id)
    if venue.kind != VenueKind.READING_SPACE:
        raise Unprocessable(
            "该场所不是阅读空间，没有馆藏",
            code="venue_not_reading_space",
            fields={"venue_id": f"场所类型为 {VenueKind(venue.kind).value}"},
        )
    text = query.q.strip() if query.q else ""
    scope = paging.scope_of("venue-books", venue.public_id, text, query.available)
    secret = ctx.settings.cursor_key
    holdings = Holding.filter(venue_id=venue.id)
    if text:
        holdings = holdings.filter(_matching(text))
    if query.available:
        holdings = holdings.filter(copies_available__gt=0)
    if query.cursor:
        title, isbn = paging.decode_cursor(
            query.cursor, scope=scope, secret=secret, shape=(str, str)
        )
        holdings = holdings.filter(
            Q(book__title__gt=title) | Q(book__title=title, book__isbn13__gt=isbn)
        )
    rows = (
        await holdings.select_related("book")
        .order_by("book__title", "book__isbn13")
        .limit(query.limit + 1)
    )
    page = rows[: query.limit]
    next_cursor = None
    if len(rows) > query.limit:
        last: Book = page[-1].book
        next_cursor = paging.encode_cursor([last.title, last.isbn13], scope=scope, secret=secret)
    return CataloguePage(
        venue_id=venue.public_id,
        venue_name=venue.name,
        items=[catalogue_book_out(h, h.book) for h in page],
        next_cursor=next_cursor,
    )
