"""Venue search: pick the backend, fall back to the database when Elasticsearch is down."""

from __future__ import annotations

import logging
from datetime import datetime

from elastic_transport import ConnectionError as EsConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError

from backend import geo, paging
from backend.access import AppContext
from backend.clock import to_local
from search.backends import (
    DatabaseBackend,
    ElasticsearchBackend,
    Ranked,
    SearchBackend,
    SearchParams,
    SortKey,
)
from search.index import alias_name
from search.schemas import SearchHit, SearchPage, VenueSearchQuery
from venues.schemas import Location

log = logging.getLogger("smartcircle.search")
ES_TIMEOUT = 3.0
# After Elasticsearch fails, this worker answers from the database for this long before retrying.
BREAKER_SECONDS = 10.0
BREAKER_KEY = "search_es_resting_until"


def primary_backend(ctx: AppContext) -> SearchBackend:
    """Elasticsearch when the app has a client and it has not just failed, else the database."""
    client = ctx.extras.get("es")
    resting = ctx.extras.get(BREAKER_KEY, 0.0) > ctx.clock.time()
    if isinstance(client, AsyncElasticsearch) and not resting:
        return ElasticsearchBackend(
            client.options(request_timeout=ES_TIMEOUT, max_retries=0), alias_name(ctx.settings)
        )
    return DatabaseBackend()


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
        after = _after(query.cursor, scope=scope, secret=ctx.settings.jwt_secret)
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
        )
        if bad_request:
            raise  # a refused request is a bug to see, not an outage to hide
        log.warning(
            "search backend unavailable, using the database", extra={"error": type(exc).__name__}
        )
        ctx.extras[BREAKER_KEY] = ctx.clock.time() + BREAKER_SECONDS
        chosen = DatabaseBackend()
        result = await chosen.search(params)
    next_cursor = None
    if result.next_key is not None:
        next_cursor = paging.encode_cursor(
            list(result.next_key), scope=scope, secret=ctx.settings.jwt_secret
        )
    items = [_hit(r, query.coord) for r in result.hits]
    return SearchPage(items=items, next_cursor=next_cursor), chosen.name
