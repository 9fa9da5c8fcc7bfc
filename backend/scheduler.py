"""Scheduled jobs on APScheduler 3, safe with several workers and hosts.

Features register jobs with :meth:`Jobs.every`. Every worker runs an ``AsyncIOScheduler`` whose
interval triggers are aligned to one epoch, so all workers fire at the same instants. Before a
run, a worker claims it by inserting ``(job name, scheduled time)`` into ``core_job_run`` under a
unique constraint: exactly one worker wins and runs it; the others log a skip. Jobs themselves are
idempotent, so a run that is retried after a crash does no harm.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from tortoise.exceptions import IntegrityError

from backend.context import AppContext
from backend.models import JobRun, RefreshToken

log = logging.getLogger("smartcircle.scheduler")
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
JobFunc = Callable[[AppContext], Awaitable[None]]


@dataclass(frozen=True)
class JobSpec:
    name: str
    seconds: int
    func: JobFunc


def _runner_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def scheduled_slot(moment: datetime, seconds: int) -> datetime:
    """The grid instant (multiple of ``seconds`` since EPOCH) nearest to ``moment``."""
    elapsed = (moment - EPOCH).total_seconds()
    return EPOCH + timedelta(seconds=round(elapsed / seconds) * seconds)


class Jobs:
    """The registry of scheduled jobs and the scheduler that runs them."""

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx
        self.specs: dict[str, JobSpec] = {}
        self._scheduler: AsyncIOScheduler | None = None

    def every(self, name: str, seconds: int, func: JobFunc) -> None:
        """Run ``func(ctx)`` every ``seconds`` seconds, once across all workers."""
        if name in self.specs:
            raise ValueError(f"job {name} registered twice")
        self.specs[name] = JobSpec(name=name, seconds=max(1, int(seconds)), func=func)

    async def run(self, name: str, scheduled_for: datetime | None = None) -> bool:
        """Claim and run one scheduled run; False if another worker has claimed it."""
        spec = self.specs[name]
        now = self.ctx.clock.now()
        slot = scheduled_for or scheduled_slot(now, spec.seconds)
        try:
            run = await JobRun.create(
                name=name, scheduled_for=slot, runner=_runner_name(), started_at=now
            )
        except IntegrityError:
            log.info(
                "job skipped, claimed elsewhere", extra={"job": name, "slot": slot.isoformat()}
            )
            return False
        try:
            await spec.func(self.ctx)
        except Exception as exc:
            log.exception("job failed", extra={"job": name})
            run.status, run.error = "failed", type(exc).__name__
        else:
            run.status = "done"
        run.finished_at = self.ctx.clock.now()
        await run.save(update_fields=["status", "error", "finished_at"])
        return True

    def start(self) -> None:
        """Start firing jobs in this worker's event loop."""
        scheduler = AsyncIOScheduler(timezone="Asia/Shanghai")
        for spec in self.specs.values():
            scheduler.add_job(
                self.run,
                IntervalTrigger(seconds=spec.seconds, start_date=EPOCH),
                args=[spec.name],
                id=spec.name,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(1, spec.seconds // 2),
            )
        scheduler.start()
        self._scheduler = scheduler
        log.info("scheduler started", extra={"jobs": ",".join(sorted(self.specs))})

    def shutdown(self) -> None:
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=False)
            self._scheduler = None


async def housekeeping(ctx: AppContext) -> None:
    """Prune old job runs and long-expired refresh tokens."""
    now = ctx.clock.now()
    await JobRun.filter(started_at__lt=now - timedelta(days=7)).delete()
    await RefreshToken.filter(expires_at__lt=now - timedelta(days=7)).delete()
