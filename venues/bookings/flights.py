"""Single-flight per requested slot in this worker: one attempt runs, the others learn its outcome.

When many residents ask for the same slot at once, only one can have it, and the database decides
who (the unique claim of its cells, :func:`~venues.bookings.lifecycle.claim`). Letting every
attempt run the whole path only to queue on that index behind the winner makes the losers cost
as much as the winner. So attempts with the same request (unit, venue, start, minutes, party
size) in one worker take turns: the first runs the whole path, the others wait for its outcome.

* It created a booking (committed), or was refused with 409 ``slot_taken`` (a committed claim of
  another booking is in the way): every attempt that arrived before that outcome was known
  answers 409 ``slot_taken`` at once — as if it had run just after, which it could have.
* It failed for any other reason (a per-resident rule, an error, a cancelled request): the next
  attempt in line runs the whole path itself, so one resident's quota never refuses another.

Attempts that arrive after an outcome is known run the whole path (the slot may have been freed
since). Nothing here decides who gets a slot: two workers (or processes) still race in the
database, and the loser there is refused by the unique claim as before.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import TypeVar

from backend.errors import Conflict

T = TypeVar("T")


def slot_taken() -> Conflict:
    """The 409 for a slot whose cells another booking has claimed."""
    return Conflict("该时段已被预约", code="slot_taken")


@dataclass
class _Flight:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0
    taken_before: int = -1  # attempts that arrived before this mark find the slot taken


class SlotFlights:
    """This worker's flights: one per requested slot while attempts for it are running."""

    def __init__(self) -> None:
        self._flights: dict[Hashable, _Flight] = {}
        self._arrivals = itertools.count()

    def __len__(self) -> int:
        return len(self._flights)

    def users(self, key: Hashable) -> int:
        """How many attempts for ``key`` are running or waiting."""
        flight = self._flights.get(key)
        return flight.users if flight else 0

    async def attempt(self, key: Hashable, run: Callable[[], Awaitable[T]]) -> T:
        """``run()`` for this attempt, or 409 ``slot_taken`` when one before it took the slot."""
        arrived = next(self._arrivals)
        flight = self._flights.get(key)
        if flight is None:
            flight = self._flights[key] = _Flight()
        flight.users += 1
        try:
            async with flight.lock:
                if arrived < flight.taken_before:
                    raise slot_taken()
                try:
                    result = await run()
                except Conflict as exc:
                    if exc.code == "slot_taken":
                        flight.taken_before = next(self._arrivals)
                    raise
                flight.taken_before = next(self._arrivals)
                return result
        finally:
            flight.users -= 1
            if not flight.users:
                del self._flights[key]


# Per worker (each worker is a process with one event loop).
SLOT_FLIGHTS = SlotFlights()
