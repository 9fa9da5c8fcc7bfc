"""The index outbox of venues: call inside the transaction that changes the venue.

The search projection (``search/index.py``) drains it into Elasticsearch; venues never import
``search``.
"""

from __future__ import annotations

from datetime import datetime

from venues.models import IndexOutbox


async def enqueue(*, venue_public_id: str, now: datetime) -> None:
    """Note that this venue's index document must be rewritten."""
    await IndexOutbox.create(venue_public_id=venue_public_id, created_at=now)
