"""Scheduled jobs of the challenges: closing submissions on time."""

from __future__ import annotations

from backend.context import AppContext
from crowdsource.challenges import curation


async def close_submissions(ctx: AppContext) -> None:
    """Record the close of submissions of every challenge past its deadline."""
    await curation.close_due_submissions(ctx=ctx)
