"""Elasticsearch (services profile): one client per worker and the circuit breaker around it.

Features that read from Elasticsearch (venue search, similar pain points) fall back to the
database when it fails. After a failure the breaker "rests" for ``rest_seconds``: during that time
:meth:`Elastic.available` is False and the features answer from the database without trying, so an
outage does not cost every request a timeout. The breaker is per worker and needs no coordination.
"""

from __future__ import annotations

from elasticsearch import AsyncElasticsearch
from elasticsearch.serializer import OrjsonSerializer

from backend.clock import Clock
from backend.config import Settings

# A query a person waits for gets this long before the database answers instead.
QUERY_TIMEOUT = 3.0
REST_SECONDS = 10.0


def create_client(settings: Settings) -> AsyncElasticsearch:
    # orjson parses a search response several times faster than the standard library (the same
    # floats and strings; its ``default`` is the client's, for dates and decimals).
    return AsyncElasticsearch(
        settings.elasticsearch_url,
        request_timeout=10,
        retry_on_timeout=True,
        max_retries=2,
        serializer=OrjsonSerializer(),
    )


class Elastic:
    """The client (for indexing and administration) and the breaker (for queries)."""

    def __init__(
        self,
        client: AsyncElasticsearch,
        *,
        clock: Clock,
        index_prefix: str,
        rest_seconds: float = REST_SECONDS,
    ) -> None:
        self.client = client  # also derives the query client (the setter below)
        self.index_prefix = index_prefix
        self._clock = clock
        self._rest_seconds = rest_seconds
        self._resting_until = 0.0

    @property
    def client(self) -> AsyncElasticsearch:
        return self._client

    @client.setter
    def client(self, client: AsyncElasticsearch) -> None:
        self._client = client
        # ``options()`` builds a new client object (~1 ms of CPU): once per client, not per
        # query. It shares the client's transport, so it uses the same pooled keep-alive
        # connections.
        self._query_client = client.options(request_timeout=QUERY_TIMEOUT, max_retries=0)

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock) -> Elastic:
        return cls(create_client(settings), clock=clock, index_prefix=settings.es_index_prefix)

    @property
    def query_client(self) -> AsyncElasticsearch:
        """The client for queries a person waits for: short timeout, no retries (one per worker)."""
        return self._query_client

    def available(self) -> bool:
        """False while the breaker rests after a failure."""
        return self._resting_until <= self._clock.time()

    def trip(self) -> None:
        """Record a failure: answer from the database for the next ``rest_seconds``."""
        self._resting_until = self._clock.time() + self._rest_seconds

    def reset(self) -> None:
        self._resting_until = 0.0

    async def close(self) -> None:
        await self.client.close()


async def ping(client: AsyncElasticsearch) -> str:
    """The cluster's health colour; raises if the server does not answer."""
    health = await client.options(request_timeout=3).cluster.health()
    return str(health["status"])
