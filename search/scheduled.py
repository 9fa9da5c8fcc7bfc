"""Scheduled work of search: keep the index caught up with the outbox."""

from __future__ import annotations

import logging

from backend.context import AppContext
from backend.kv import LockNotAcquired
from search.index import drain, index_exists, reindex
from venues.models import Venue

log = logging.getLogger("smartcircle.search.index")
DRAIN_INTERVAL_SECONDS = 10


async def drain_outbox(ctx: AppContext) -> None:
    """Apply pending venue changes to the index; build the index first if it is missing."""
    missing = ctx.elastic is not None and not await index_exists(ctx)
    if missing and await Venue.exists():
        try:
            await reindex(ctx, wait=0)
        except LockNotAcquired:
            log.info("index build in progress elsewhere")
            return
    await drain(ctx)
