"""Concurrent calls of one event loop served by one round trip.

:class:`Coalesced` wraps a function that handles a list of requests at once (one query for many
keys, one pipeline for many commands). Each caller passes one request and awaits its own answer.
While a round trip is in flight the next requests gather, and go together as soon as it is back:
a lone call waits for nothing, a burst shares round trips. Every answer comes from a round trip
that started after its call did, so coalescing never serves an older answer than a call of its
own would have.

A failure of the round trip is every caller's failure in that batch; the next batch tries again.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass(slots=True)
class _Queue(Generic[T, R]):
    waiting: list[tuple[T, asyncio.Future[R]]] = field(default_factory=list)
    runner: asyncio.Task[None] | None = None


class Coalesced(Generic[T, R]):
    """``await coalesced(request)``: the answer ``handle([…, request, …])`` gave for it.

    ``handle`` gets at most ``max_batch`` requests, in the order they came, and answers one
    result per request, in that order.
    """

    def __init__(
        self, handle: Callable[[list[T]], Awaitable[Sequence[R]]], *, max_batch: int = 256
    ) -> None:
        self._handle = handle
        self._max_batch = max_batch
        self._queues: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Queue[T, R]] = (
            weakref.WeakKeyDictionary()
        )

    async def __call__(self, request: T) -> R:
        loop = asyncio.get_running_loop()
        queue = self._queues.get(loop)
        if queue is None:
            queue = self._queues[loop] = _Queue()
        future: asyncio.Future[R] = loop.create_future()
        queue.waiting.append((request, future))
        if queue.runner is None or queue.runner.done():
            # A context of its own: the round trip must not run in the first caller's
            # transaction (or carry its request's log fields).
            queue.runner = loop.create_task(self._run(queue), context=contextvars.Context())
        return await future

    async def _run(self, queue: _Queue[T, R]) -> None:
        while queue.waiting:
            batch = [(r, f) for r, f in queue.waiting[: self._max_batch] if not f.done()]
            del queue.waiting[: self._max_batch]
            if not batch:
                continue
            try:
                answers = await self._handle([request for request, _ in batch])
                if len(answers) != len(batch):
                    raise RuntimeError("a coalesced handler must answer every request")
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            except BaseException:  # the loop is shutting down
                for _, future in batch + queue.waiting:
                    future.cancel()
                raise
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)
