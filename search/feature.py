"""Search: the Elasticsearch projection of venues and books, and distance-ranked search."""

from __future__ import annotations

from backend.context import AppContext
from backend.features import Feature, JobDecl
from search import scheduled
from search.index import alias_name
from search.service import VENUE_SEARCH, VenueSearch
from search.views import bp as search_bp


async def _choose_backend(ctx: AppContext) -> None:
    """Elasticsearch (with the database as fallback) when the app has it, else the database."""
    ctx.provide(VENUE_SEARCH, VenueSearch(elastic=ctx.elastic, alias=alias_name(ctx.settings)))


FEATURE = Feature(
    name="search",
    blueprints=(search_bp,),
    jobs=(JobDecl("search-index-drain", scheduled.DRAIN_INTERVAL_SECONDS, scheduled.drain_outbox),),
    on_start=(_choose_backend,),
)
