"""The Elasticsearch client (services profile only): opened per worker, closed on stop."""

from __future__ import annotations

from elasticsearch import AsyncElasticsearch

from backend.config import Settings


def create_client(settings: Settings) -> AsyncElasticsearch:
    return AsyncElasticsearch(
        settings.elasticsearch_url, request_timeout=10, retry_on_timeout=True, max_retries=2
    )


async def ping(client: AsyncElasticsearch) -> str:
    """The cluster's health colour; raises if the server does not answer."""
    health = await client.options(request_timeout=3).cluster.health()
    return str(health["status"])
