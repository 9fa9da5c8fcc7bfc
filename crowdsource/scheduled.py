"""Scheduled work of pain-point campaigns: phases, counter reconciliation, vote integrity."""

from __future__ import annotations

from backend.access import AppContext
from backend.scheduler import Jobs
from crowdsource import integrity, phases, votes

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


def register(jobs: Jobs) -> None:
    jobs.every("crowdsource.phases", PHASES_EVERY, advance_phases)
    jobs.every("crowdsource.reconcile", RECONCILE_EVERY, reconcile_counters)
    jobs.every("crowdsource.integrity", INTEGRITY_EVERY, vote_integrity)
