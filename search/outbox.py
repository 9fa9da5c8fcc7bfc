"""Writing to the index outbox: call inside the transaction that changes the venue."""

from __future__ import annotations

from datetime import datetime

from search.models import IndexOutbox


async def enqueue(*, venue_public_id: str, now: datetime) -> None:
    """Note that this venue's index document must be rewritten."""
    await IndexOutbox.create(venue_public_id=venue_public_id, created_at=now)
