"""The Elasticsearch venue index: names, mapping, the outbox indexer and full reindex.

* ``{prefix}-venues`` is an alias; the concrete indices are ``{prefix}-venues-<stamp>``.
* :func:`drain` turns outbox rows into bulk index/delete operations. One worker drains at a time
  (KV lock ``search:index``); rows are deleted only after Elasticsearch accepted them, so nothing
  is lost when it is down: the rows wait and the next run catches up. Documents are rebuilt from
  the database row at drain time, so replaying a row is harmless.
* :func:`reindex` builds a fresh index from the database under the same lock, then swaps the
  alias in one atomic ``update_aliases`` call and deletes the old indices. Outbox rows written
  meanwhile are drained into the new index afterwards.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from backend.config import Settings
from backend.context import AppContext
from venues.documents import venue_doc
from venues.models import IndexOutbox, Venue, VenueStatus

log = logging.getLogger("smartcircle.search.index")
LOCK = "search:index"
LOCK_TTL = 120.0
DRAIN_BATCH = 500
REINDEX_BATCH = 1000

MAPPING: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": {"type": "keyword"},
        "kind": {"type": "keyword"},
        "name": {"type": "text"},
        "address": {"type": "text"},
        "description": {"type": "text"},
        "district": {"type": "keyword"},
        "street": {"type": "keyword"},
        "lat": {"type": "double", "index": False},
        "lng": {"type": "double", "index": False},
        "location": {"type": "geo_point"},
        "opening_hours": {"type": "keyword", "index": False, "doc_values": False},
        "status": {"type": "keyword"},
        "accessible": {"type": "boolean"},
        "capacity": {"type": "integer"},
        "free_spaces": {"type": "integer"},
        "observed_at": {"type": "date"},
    },
}


class IndexingFailed(RuntimeError):
    """Elasticsearch refused some operations of a bulk request."""


def alias_name(settings: Settings) -> str:
    return f"{settings.es_index_prefix}-venues"


def _client(ctx: AppContext) -> AsyncElasticsearch | None:
    return ctx.elastic.client if ctx.elastic is not None else None


async def _create_index(client: AsyncElasticsearch, settings: Settings) -> str:
    name = f"{alias_name(settings)}-{secrets.token_hex(6)}"
    await client.indices.create(
        index=name,
        settings={"number_of_shards": 1, "number_of_replicas": 0},
        mappings=MAPPING,
    )
    return name


async def _indices_behind(client: AsyncElasticsearch, alias: str) -> list[str]:
    try:
        found = await client.indices.get_alias(name=alias)
    except NotFoundError:
        return []
    return sorted(found.body.keys())


async def index_exists(ctx: AppContext) -> bool:
    """Whether the venue alias points at an index (False without Elasticsearch)."""
    client = _client(ctx)
    return client is not None and bool(await _indices_behind(client, alias_name(ctx.settings)))


async def _ensure_alias(client: AsyncElasticsearch, settings: Settings) -> None:
    """Create an empty index behind the alias if there is none (call under the lock)."""
    alias = alias_name(settings)
    if await _indices_behind(client, alias):
        return
    name = await _create_index(client, settings)
    await client.indices.update_aliases(actions=[{"add": {"index": name, "alias": alias}}])


def _operations(venues: dict[str, Venue], ids: list[str], index: str) -> list[dict[str, Any]]:
    ops: list[dict[str, Any]] = []
    for public_id in ids:
        venue = venues.get(public_id)
        if venue is None or venue.status == VenueStatus.REMOVED:
            ops.append({"delete": {"_index": index, "_id": public_id}})
        else:
            ops.append({"index": {"_index": index, "_id": public_id}})
            ops.append(venue_doc(venue).to_source())
    return ops


async def _bulk(client: AsyncElasticsearch, ops: list[dict[str, Any]], refresh: bool) -> None:
    if not ops:
        return
    response = await client.bulk(operations=ops, refresh=refresh)
    if not response["errors"]:
        return
    failures = []
    for item in response["items"]:
        (action, result), *_ = item.items()
        if action == "delete" and result.get("status") == 404:
            continue
        if result.get("error"):
            failures.append(f"{result.get('_id')}: {result['error'].get('type')}")
    if failures:
        raise IndexingFailed("; ".join(failures[:5]))


async def drain(ctx: AppContext, *, refresh: bool = False, batch: int = DRAIN_BATCH) -> int:
    """Apply pending outbox rows to the index; returns how many rows were applied."""
    client = _client(ctx)
    if client is None:
        # The database backend reads the tables directly: nothing to project.
        return await IndexOutbox.all().delete()
    if not await IndexOutbox.exists():
        return 0  # nothing to do: do not even touch Elasticsearch
    lock = await ctx.kv.lock(LOCK, LOCK_TTL)
    if lock is None:
        return 0
    applied = 0
    async with lock:
        await _ensure_alias(client, ctx.settings)
        alias = alias_name(ctx.settings)
        while True:
            rows = await IndexOutbox.all().order_by("id").limit(batch)
            if not rows:
                break
            ids = list(dict.fromkeys(row.venue_public_id for row in rows))
            venues = {v.public_id: v for v in await Venue.filter(public_id__in=ids)}
            await _bulk(client, _operations(venues, ids, alias), refresh)
            await IndexOutbox.filter(id__in=[row.id for row in rows]).delete()
            applied += len(rows)
            await lock.extend(LOCK_TTL)
    if applied:
        log.info("index outbox drained", extra={"rows": applied})
    return applied


Progress = Callable[[int, int], Awaitable[None]]


async def reindex(ctx: AppContext, *, wait: float = 60.0, progress: Progress | None = None) -> str:
    """Build a fresh index from the database, swap the alias to it, drop the old ones.

    ``progress(done, total)`` is awaited after each batch (the console shows it)."""
    client = _client(ctx)
    if client is None:
        raise RuntimeError("reindex needs Elasticsearch (services profile)")
    settings = ctx.settings
    alias = alias_name(settings)
    async with ctx.kv.hold(LOCK, ttl=LOCK_TTL, wait=wait) as lock:
        name = await _create_index(client, settings)
        total = await Venue.exclude(status=VenueStatus.REMOVED).count()
        last_id = 0
        count = 0
        while True:
            venues = (
                await Venue.filter(id__gt=last_id)
                .exclude(status=VenueStatus.REMOVED)
                .order_by("id")
                .limit(REINDEX_BATCH)
            )
            if not venues:
                break
            ids = [v.public_id for v in venues]
            await _bulk(client, _operations({v.public_id: v for v in venues}, ids, name), False)
            last_id = venues[-1].id
            count += len(venues)
            await lock.extend(LOCK_TTL)
            if progress is not None:
                await progress(count, max(total, count))
        await client.indices.refresh(index=name)
        old = await _indices_behind(client, alias)
        actions: list[dict[str, Any]] = [{"remove": {"index": i, "alias": alias}} for i in old]
        actions.append({"add": {"index": name, "alias": alias}})
        await client.indices.update_aliases(actions=actions)
        for index in old:
            await client.indices.delete(index=index, ignore_unavailable=True)
    log.info("reindexed", extra={"index": name, "venues": count})
    return name
