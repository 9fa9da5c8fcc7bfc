"""The pain-point index on Elasticsearch, for "similar pain points" (more-like-this).

* ``{prefix}-pain-points`` holds one document per pain point: campaign, title, description,
  category, status, hidden. The standard analyzer splits Chinese into single characters (the
  server has no n-gram or CJK analysis module), so more-like-this compares shared characters.
* :func:`sync` indexes every pain point whose ``updated_at`` is at or after a watermark kept in
  the key-value store (minus an overlap of a minute, so rows committed slightly out of order are
  not missed); every change of a pain point (edit, moderation, hiding, merge) bumps
  ``updated_at``. Writing a document twice is harmless. Losing the watermark (Redis emptied) only
  means a full pass. One worker syncs at a time (a KV lock). Nothing is written during requests.
* :class:`ElasticsearchSimilarity` answers ``/pain-points/similar`` in the services profile and
  falls back to the database method when Elasticsearch fails (and, while the shared circuit
  breaker rests, without trying).

The index is part of crowdsourcing (similar items are a crowdsourcing feature); the job that
syncs it is declared in ``crowdsource/feature.py``.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from elastic_transport import ConnectionError as EsConnectionError
from elastic_transport import ConnectionTimeout
from elasticsearch import ApiError, AsyncElasticsearch, NotFoundError

from backend.config import Settings
from backend.context import AppContext
from backend.elastic import Elastic
from backend.kv import LockNotAcquired
from crowdsource.models import Campaign, PainPoint, Status
from crowdsource.similarity import DatabaseSimilarity, Match
from crowdsource.visibility import listed_statuses

log = logging.getLogger("smartcircle.crowdsource.similar_index")
LOCK = "search:pain-points"
WATERMARK = "search:pain-points:watermark"
OVERLAP = timedelta(minutes=1)
BATCH = 1000
MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": {"type": "keyword"},
        "campaign": {"type": "keyword"},
        "title": {"type": "text"},
        "description": {"type": "text"},
        "category": {"type": "keyword"},
        "status": {"type": "keyword"},
        "hidden": {"type": "boolean"},
    },
}


def index_name(settings: Settings) -> str:
    return f"{settings.es_index_prefix}-pain-points"


async def ensure_index(client: AsyncElasticsearch, settings: Settings) -> None:
    if not await client.indices.exists(index=index_name(settings)):
        try:
            await client.indices.create(
                index=index_name(settings),
                mappings=MAPPING,
                settings={"number_of_shards": 1, "number_of_replicas": 0},
            )
        except ApiError as exc:  # another worker created it a moment ago
            if "resource_already_exists" not in str(exc):
                raise


def _doc(item: PainPoint, campaign_public_id: str) -> dict[str, Any]:
    return {
        "id": item.public_id,
        "campaign": campaign_public_id,
        "title": item.title,
        "description": item.description,
        "category": item.category,
        "status": item.status.value,
        "hidden": item.hidden,
    }


async def sync(ctx: AppContext, *, refresh: bool = False) -> int:
    """Index the pain points changed since the watermark; returns how many were written."""
    if ctx.elastic is None:
        return 0
    try:
        async with ctx.kv.hold(LOCK, ttl=120):
            return await _sync(ctx, ctx.elastic.client, refresh=refresh)
    except LockNotAcquired:
        return 0


async def _sync(ctx: AppContext, client: AsyncElasticsearch, *, refresh: bool) -> int:
    await ensure_index(client, ctx.settings)
    stored = await ctx.kv.get(WATERMARK)
    since = datetime.fromisoformat(stored) - OVERLAP if stored else datetime(2000, 1, 1, tzinfo=UTC)
    written = 0
    last_id = 0
    while True:
        rows = (
            await PainPoint.filter(updated_at__gte=since, id__gt=last_id)
            .order_by("id")
            .limit(BATCH)
            .select_related("campaign")
        )
        if not rows:
            break
        operations: list[dict[str, Any]] = []
        for item in rows:
            campaign: Campaign = item.campaign
            operations.append(
                {"index": {"_index": index_name(ctx.settings), "_id": item.public_id}}
            )
            operations.append(_doc(item, campaign.public_id))
        result = await client.bulk(operations=operations, refresh=refresh)
        if result.get("errors"):
            raise RuntimeError("the pain-point index refused some documents")
        written += len(rows)
        last_id = rows[-1].id
        newest = max(r.updated_at for r in rows)
        if stored is None or newest > datetime.fromisoformat(stored):
            stored = newest.isoformat()
    if stored:
        await ctx.kv.set(WATERMARK, stored)
    return written


class ElasticsearchSimilarity:
    """more_like_this over title and description, within the campaign's listed items."""

    name = "elasticsearch-more-like-this"

    def __init__(self, elastic: Elastic, settings: Settings) -> None:
        self._elastic = elastic
        self._settings = settings
        self._fallback = DatabaseSimilarity()

    async def similar(self, *, campaign: Campaign, text: str, limit: int) -> list[Match]:
        if not self._elastic.available():
            return await self._fallback.similar(campaign=campaign, text=text, limit=limit)
        try:
            return await self._search(campaign=campaign, text=text, limit=limit)
        except (EsConnectionError, ConnectionTimeout, NotFoundError, ApiError) as exc:
            log.warning("similarity on the database", extra={"error": type(exc).__name__})
            if not isinstance(exc, NotFoundError):
                self._elastic.trip()
            return await self._fallback.similar(campaign=campaign, text=text, limit=limit)

    async def _search(self, *, campaign: Campaign, text: str, limit: int) -> list[Match]:
        response = await self._elastic.query_client.search(
            index=index_name(self._settings),
            size=limit,
            query={
                "bool": {
                    "filter": [
                        {"term": {"campaign": campaign.public_id}},
                        {"terms": {"status": [s.value for s in listed_statuses(campaign)]}},
                        {"term": {"hidden": False}},
                    ],
                    "must": {
                        "more_like_this": {
                            "fields": ["title", "description"],
                            "like": text,
                            "min_term_freq": 1,
                            "min_doc_freq": 1,
                            "max_query_terms": 60,
                            "minimum_should_match": "30%",
                        }
                    },
                }
            },
        )
        hits = response["hits"]["hits"]
        best = max((h["_score"] for h in hits), default=1.0) or 1.0
        return [
            Match(
                public_id=h["_source"]["id"],
                title=h["_source"]["title"],
                category=h["_source"]["category"],
                status=Status(h["_source"]["status"]),
                score=round(h["_score"] / best, 4),
            )
            for h in hits
        ]
