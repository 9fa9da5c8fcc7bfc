"""A unit of work: one database transaction per use case, with hooks that run after it commits.

Every flow that writes more than one row runs inside ``async with unit_of_work() as uow:``. What
must not happen unless the rows are durable — updating a live counter in the key-value store,
waking an indexer, telling someone — is registered with ``uow.after_commit(hook)`` (or the module
function :func:`after_commit` from code called inside the unit) and runs once the transaction has
committed; if the transaction rolls back, the hooks never run. A hook that fails is logged and does
not undo the commit: what hooks maintain (counters, caches, notifications sent by an outbox) can
always be rebuilt from the database.

A unit opened inside another one joins it: the inner block's writes commit with the outer ones and
its hooks run after the outer commit, so service functions can be composed freely.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from contextvars import ContextVar

from tortoise.transactions import in_transaction

log = logging.getLogger("smartcircle.uow")
Hook = Callable[[], Awaitable[None]]
_current: ContextVar[UnitOfWork | None] = ContextVar("smartcircle_unit_of_work", default=None)


class UnitOfWork:
    """The hooks of one transaction, run in registration order after it commits."""

    def __init__(self) -> None:
        self._hooks: list[Hook] = []

    def after_commit(self, hook: Hook) -> None:
        """Run ``hook()`` after this unit's transaction commits (never if it rolls back)."""
        self._hooks.append(hook)

    async def _run_hooks(self) -> None:
        hooks, self._hooks = self._hooks, []
        for hook in hooks:
            try:
                await hook()
            except Exception:
                log.exception("after-commit hook failed", extra={"hook": _name(hook)})


def _name(hook: Hook) -> str:
    return str(getattr(hook, "__qualname__", None) or type(hook).__name__)


@asynccontextmanager
async def unit_of_work() -> AsyncIterator[UnitOfWork]:
    """One transaction for a use case; joins the enclosing unit when there is one."""
    outer = _current.get()
    if outer is not None:
        yield outer
        return
    unit = UnitOfWork()
    token = _current.set(unit)
    try:
        async with in_transaction():
            yield unit
    finally:
        _current.reset(token)
    await unit._run_hooks()


def current_unit() -> UnitOfWork | None:
    """The unit of work this code runs in, if any."""
    return _current.get()


async def after_commit(hook: Hook) -> None:
    """Run ``hook`` after the current unit commits, or now when no unit is open."""
    unit = _current.get()
    if unit is None:
        await hook()
    else:
        unit.after_commit(hook)
