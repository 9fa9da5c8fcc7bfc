"""Venue search: Elasticsearch chosen at start-up, the database when it is down or absent."""

from __future__ import annotations

import logging
from datetime import datetime

from elastic_transport import ConnectionError as EsConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, NotFoundError

from backend import geo, paging
from backend.clock import to_local
from backend.context import AppContext, Slot
from backend.elastic import Elastic
from search.backends import (
    ElasticsearchBackend,
    Ranked,
    SearchBackend,
    SearchParams,
    SortKey,
)
from search.database import DatabaseBackend
from search.schemas import SearchHit, SearchPage, VenueSearchQuery
from venues.schemas import Location

log = logging.getLogger("smartcircle.search")


class VenueSearch:
    """The venue search backends of one app, chosen at start-up.

    With Elasticsearch, :meth:`primary` is the Elasticsearch backend unless the shared circuit
    breaker (``backend.elastic.Elastic``) rests after a failure; the database backend is the
    fallback. Without Elasticsearch it is always the database.
    """

    def __init__(self, *, elastic: Elastic | None, alias: str) -> None:
        self.elastic = elastic
        self.alias = alias
        self.database = DatabaseBackend()

    def primary(self) -> SearchBackend:
        """The backend to ask first for this request."""
        if self.elastic is not None and self.elastic.available():
            return ElasticsearchBackend(self.elastic.searches, self.alias)
        return self.database

    def failed(self) -> None:
        """Elasticsearch failed: rest the breaker, answer from the database meanwhile."""
        if self.elastic is not None:
            self.elastic.trip()


VENUE_SEARCH: Slot[VenueSearch] = Slot("search.venues")
TOO_MANY_REQUESTS = 429


def primary_backend(ctx: AppContext) -> SearchBackend:
    """The backend that answers this request (Elasticsearch, or the database as fallback)."""
    return ctx.get(VENUE_SEARCH).primary()


def _scope(query: VenueSearchQuery, centre: geo.Point) -> str:
    return paging.scope_of(
        "venues.search",
        repr(centre.lat),
        repr(centre.lng),
        query.radius_m,
        sorted(k.value for k in query.kind or ()),
        query.q,
        bool(query.open_now),
        bool(query.accessible),
        bool(query.has_free_spaces),
    )


def _after(token: str, *, scope: str, secret: str) -> SortKey:
    distance, venue_id = paging.decode_cursor(token, scope=scope, secret=secret, shape=(int, str))
    return distance, venue_id


def params_for(*, ctx: AppContext, query: VenueSearchQuery) -> tuple[SearchParams, str]:
    """Search parameters (in WGS-84) for a validated query, and its cursor scope."""
    centre = geo.to_wgs84(query.lat, query.lng, query.coord)
    scope = _scope(query, centre)
    after = None
    if query.cursor:
        after = _after(query.cursor, scope=scope, secret=ctx.settings.cursor_key)
    params = SearchParams(
        centre=centre,
        radius_m=query.radius_m,
        now=ctx.clock.now(),
        limit=query.limit,
        kinds=tuple(sorted({k.value for k in query.kind or ()})),
        q=query.q.strip() if query.q and query.q.strip() else None,
        open_now=bool(query.open_now),
        accessible=bool(query.accessible),
        has_free_spaces=bool(query.has_free_spaces),
        after=after,
        parking_stale_after=ctx.settings.parking_stale_after,
    )
    return params, scope


def _hit(ranked: Ranked, coord: geo.CoordSystem) -> SearchHit:
    doc, state = ranked.doc, ranked.state
    shown = geo.from_wgs84(doc.point, coord)
    parking = state.parking_state is not None
    return SearchHit(
        id=doc.id,
        kind=doc.kind,  # type: ignore[arg-type]
        name=doc.name,
        address=doc.address,
        district=doc.district,
        street=doc.street,
        location=Location(lat=shown.lat, lng=shown.lng),
        distance_m=ranked.distance_m,
        open_now=state.open_now,
        next_change=state.next_change,
        status=doc.status,  # type: ignore[arg-type]
        accessible=doc.accessible,
        parking_state=state.parking_state,
        free_spaces=doc.free_spaces if parking else None,
        observed_at=to_local(datetime.fromisoformat(doc.observed_at))
        if parking and doc.observed_at
        else None,
        stale=state.stale,
    )


async def search_venues(
    *, ctx: AppContext, query: VenueSearchQuery, backend: SearchBackend | None = None
) -> tuple[SearchPage, str]:
    """One page of venues near a point, and the name of the backend that answered."""
    params, scope = params_for(ctx=ctx, query=query)
    chosen = backend or primary_backend(ctx)
    try:
        result = await chosen.search(params)
    except (EsConnectionError, ConnectionTimeout, NotFoundError, ApiError) as exc:
        bad_request = (
            isinstance(exc, ApiError)
            and not isinstance(exc, NotFoundError)
            and exc.meta.status < 500
            and exc.meta.status != TOO_MANY_REQUESTS
        )
        if bad_request:
            raise  # a refused request is a bug to see, not an outage to hide
        # 429 (its search queue is full: es_rejected_execution_exception) is an overload, as much
        # an outage as a 5xx: the breaker rests Elasticsearch and the database answers.
        log.warning(
            "search backend unavailable, using the database", extra={"error": type(exc).__name__}
        )
        venues = ctx.get(VENUE_SEARCH)
        venues.failed()
        chosen = venues.database
        result = await chosen.search(params)
    next_cursor = None
    if result.next_key is not None:
        next_cursor = paging.encode_cursor(
            list(result.next_key), scope=scope, secret=ctx.settings.cursor_key
        )
    items = [_hit(r, query.coord) for r in result.hits]
    return SearchPage(items=items, next_cursor=next_cursor), chosen.name
