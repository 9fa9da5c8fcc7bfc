"""Presenters of venues: models to the API's response schemas (pure functions, no queries)."""

from __future__ import annotations

from backend import geo
from backend.clock import to_local
from backend.context import AppContext
from venues.documents import live_state, venue_doc
from venues.models import Book, Holding, Venue
from venues.schemas import CatalogueBook, Location, VenueOut


def catalogue_book_out(holding: Holding, book: Book) -> CatalogueBook:
    return CatalogueBook(
        isbn=book.isbn13,
        title=book.title,
        author=book.author,
        publisher=book.publisher,
        copies=holding.copies,
        copies_available=holding.copies_available,
    )


def venue_out(venue: Venue, *, ctx: AppContext, coord: geo.CoordSystem) -> VenueOut:
    """The venue as the API shows it, located in ``coord`` and evaluated at the clock's now."""
    state = live_state(venue_doc(venue), ctx.clock.now(), ctx.settings.parking_stale_after)
    shown = geo.from_wgs84(geo.Point(venue.lat, venue.lng), coord)
    operator = venue.operator
    return VenueOut(
        id=venue.public_id,
        kind=venue.kind,
        name=venue.name,
        address=venue.address,
        district=venue.district,
        street=venue.street,
        location=Location(lat=shown.lat, lng=shown.lng),
        coord=coord,
        phone=venue.phone,
        description=venue.description,
        photos=list(venue.photos or []),
        opening_hours=venue.opening_hours,
        open_now=state.open_now,
        next_change=state.next_change,
        status=venue.status,
        closed_reason=venue.closed_reason,
        verified_at=to_local(venue.verified_at) if venue.verified_at else None,
        accessible=venue.accessible,
        attributes=dict(venue.attributes or {}),
        parking_state=state.parking_state,
        stale=state.stale,
        operator_id=operator.public_id if operator is not None else None,
        updated_at=to_local(venue.updated_at),
    )
