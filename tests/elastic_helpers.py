"""Pointing the app at an Elasticsearch that does not answer (port 9 on loopback), then back."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from elasticsearch import AsyncElasticsearch

from backend.context import AppContext
from backend.elastic import Elastic
from crowdsource.similar_index import ElasticsearchSimilarity
from crowdsource.similarity import SIMILARITY
from search.service import VENUE_SEARCH


@asynccontextmanager
async def dead_elasticsearch(ctx: AppContext) -> AsyncIterator[AsyncElasticsearch]:
    """Every Elasticsearch call fails to connect; on the embedded profile too (the search and
    similarity backends are given one), so the fallback path is exercised on both profiles."""
    dead = AsyncElasticsearch("http://127.0.0.1:9", request_timeout=1, max_retries=0)
    venue_search = ctx.get(VENUE_SEARCH)
    similarity = ctx.get(SIMILARITY)
    if ctx.elastic is not None:
        live = ctx.elastic.client
        ctx.elastic.client = dead
        ctx.elastic.reset()
    else:
        elastic = Elastic(dead, clock=ctx.clock, index_prefix=ctx.settings.es_index_prefix)
        venue_search.elastic = elastic
        ctx.provide(SIMILARITY, ElasticsearchSimilarity(elastic, ctx.settings))
    try:
        yield dead
    finally:
        if ctx.elastic is not None:
            ctx.elastic.client = live
        else:
            venue_search.elastic = None
            ctx.provide(SIMILARITY, similarity)
        await dead.close()


async def delete_indices(client: AsyncElasticsearch, pattern: str) -> None:
    """Delete the indices matching ``pattern``, by name (wildcard deletes are refused by the
    server)."""
    found = await client.indices.get(index=pattern, allow_no_indices=True)
    for name in found.body:
        await client.indices.delete(index=name, ignore_unavailable=True)
