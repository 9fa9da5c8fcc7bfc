"""Elasticsearch (services profile): one client per worker and the circuit breaker around it.

Features that read from Elasticsearch (venue search, similar pain points) fall back to the
database when it fails. After a failure the breaker "rests" for ``rest_seconds``: during that time
:meth:`Elastic.available` is False and the features answer from the database without trying, so an
outage does not cost every request a timeout. The breaker is per worker and needs no coordination.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from elastic_transport import ApiResponseMeta
from elasticsearch import AsyncElasticsearch
from elasticsearch.exceptions import HTTP_EXCEPTIONS, ApiError
from elasticsearch.serializer import OrjsonSerializer

from backend.clock import Clock
from backend.coalesce import Coalesced
from backend.config import Settings

# A query a person waits for gets this long before the database answers instead.
QUERY_TIMEOUT = 3.0
REST_SECONDS = 10.0
# At most this many searches of one worker go in one ``_msearch``.
MAX_SEARCHES = 64


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
        self.searches = Searches(self._query_client)

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


class Searches:
    """``await searches(index, body)``: one search of a person's query, answered as
    ``_search`` would answer it, with the concurrent searches of the worker sent together.

    A lone search goes at once as a plain ``_search``. While one is in flight, the searches that
    come meanwhile gather and go as one ``_msearch`` as soon as it is back (``Coalesced``). A
    request costs Elasticsearch a fixed share of CPU however small the search (HTTP, the REST
    layer, the task), so under load a batch of searches costs it about half as much each
    (docs/search.md). Each search keeps its own body and its own answer; a search that failed
    inside the batch raises the error a ``_search`` of its own would have (its status, its
    ``ApiError`` subclass), and a batch that failed as a whole fails each of its searches.
    """

    def __init__(self, client: AsyncElasticsearch, *, max_batch: int = MAX_SEARCHES) -> None:
        self._client = client
        self._coalesced: Coalesced[tuple[str, dict[str, Any]], Mapping[str, Any] | ApiError] = (
            Coalesced(self._send, max_batch=max_batch)
        )

    async def __call__(self, index: str, body: dict[str, Any]) -> Mapping[str, Any]:
        answer = await self._coalesced((index, body))
        if isinstance(answer, ApiError):
            raise answer
        return answer

    async def _send(
        self, requests: list[tuple[str, dict[str, Any]]]
    ) -> list[Mapping[str, Any] | ApiError]:
        if len(requests) == 1:
            index, body = requests[0]
            return [(await self._client.search(index=index, body=body)).body]
        lines: list[Mapping[str, Any]] = []
        for index, body in requests:
            lines += ({"index": index}, body)
        response = await self._client.msearch(searches=lines)
        return [_answer(item, response.meta) for item in response.body["responses"]]


def _answer(item: dict[str, Any], meta: ApiResponseMeta) -> Mapping[str, Any] | ApiError:
    """One search's part of an ``_msearch`` answer: its response, or the error a ``_search`` of
    its own would have raised (as the client raises it: the error's type as message)."""
    status = int(item.get("status", 200))
    if 200 <= status < 300 and "error" not in item:
        return item
    error = item.get("error")
    message = error["type"] if isinstance(error, dict) and "type" in error else str(error)
    own = ApiResponseMeta(
        status=status,
        http_version=meta.http_version,
        headers=meta.headers,
        duration=meta.duration,
        node=meta.node,
    )
    return HTTP_EXCEPTIONS.get(status, ApiError)(message=message, meta=own, body=item)


async def ping(client: AsyncElasticsearch) -> str:
    """The cluster's health colour; raises if the server does not answer."""
    health = await client.options(request_timeout=3).cluster.health()
    return str(health["status"])
