"""Scheduled work of pain-point campaigns: phases, counter reconciliation, vote integrity."""

from __future__ import annotations

from backend.context import AppContext
from crowdsource import integrity, phases, similar_index, votes

PHASES_EVERY = 30
RECONCILE_EVERY = 300
INTEGRITY_EVERY = 60


async def advance_phases(ctx: AppContext) -> None:
    """Record due phase transitions (idempotent, each audited once)."""
    await phases.advance_phases(ctx=ctx)


async def reconcile_counters(ctx: AppContext) -> None:
    """Rewrite the live vote counters and rankings from the votes in the database."""
    await votes.reconcile_counters(ctx=ctx)


async def vote_integrity(ctx: AppContext) -> None:
    """Flag bursts of suspicious voting and fold the refusal counters into the database."""
    await integrity.scan(ctx=ctx)


async def sync_similar_index(ctx: AppContext) -> None:
    """Bring the pain-point index (similar items, Elasticsearch only) up to date."""
    await similar_index.sync(ctx)
