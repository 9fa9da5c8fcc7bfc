"""Single-flight per requested slot: concurrent attempts in one worker take turns, and those
behind a winner are refused without running the whole path (``venues/bookings/flights.py``)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from backend.errors import Conflict
from tests.booking_helpers import at, book, make_site, resident
from tests.crowdsource_helpers import many_users, token_headers
from venues.bookings import bookings
from venues.bookings.errors import rule
from venues.bookings.flights import SLOT_FLIGHTS, SlotFlights
from venues.bookings.models import Booking


async def _joined(flights: SlotFlights, key: object, count: int) -> None:
    """Wait (bounded) until ``count`` attempts for ``key`` have joined its flight."""
    for _ in range(2000):
        if flights.users(key) >= count:
            return
        await asyncio.sleep(0.005)
    pytest.fail(f"only {flights.users(key)} of {count} attempts joined")


async def _outcome(call: Awaitable[Any]) -> Any:
    try:
        return await call
    except Conflict as exc:
        return exc.code
    except Exception as exc:  # noqa: BLE001 - the test reports what each attempt got
        return getattr(exc, "code", type(exc).__name__)


async def test_waiters_behind_a_winner_are_refused_without_running():
    flights, ran = SlotFlights(), []

    def run(name: str) -> Callable[[], Awaitable[str]]:
        async def go() -> str:
            ran.append(name)
            if name == "a":  # everyone is waiting before the first finishes
                await _joined(flights, "slot", 4)
            return name

        return go

    results = await asyncio.gather(
        *(_outcome(flights.attempt("slot", run(n))) for n in ("a", "b", "c", "d"))
    )
    assert results == ["a", "slot_taken", "slot_taken", "slot_taken"]
    assert ran == ["a"]
    assert len(flights) == 0
    # A later attempt does not inherit the outcome: the slot may have been freed since.
    assert await flights.attempt("slot", run("e")) == "e"


async def test_an_attempt_after_the_outcome_runs_though_others_still_wait():
    """The outcome is for those who were waiting when it came, not for whoever comes next."""
    flights, late = SlotFlights(), []

    async def first() -> str:
        await _joined(flights, "slot", 2)
        # Arrives once this attempt has won, while the second is still in line behind it.
        late.append(asyncio.ensure_future(flights.attempt("slot", freed)))
        return "first"

    async def second() -> str:
        return "second"

    async def freed() -> str:
        return "freed"  # say the booking was cancelled in between: this one runs

    results = await asyncio.gather(
        _outcome(flights.attempt("slot", first)), _outcome(flights.attempt("slot", second))
    )
    assert results == ["first", "slot_taken"]
    assert await late[0] == "freed"
    assert len(flights) == 0


async def test_a_refused_leader_passes_its_refusal_on():
    flights, ran = SlotFlights(), []

    async def taken() -> str:
        ran.append("taken")
        await _joined(flights, "slot", 3)
        raise Conflict("该时段已被预约", code="slot_taken")

    async def would_win() -> str:
        ran.append("would_win")
        return "won"

    results = await asyncio.gather(
        _outcome(flights.attempt("slot", taken)),
        _outcome(flights.attempt("slot", would_win)),
        _outcome(flights.attempt("slot", would_win)),
    )
    assert results == ["slot_taken"] * 3
    assert ran == ["taken"]


async def test_a_leader_failing_for_its_own_reasons_hands_over_to_the_next():
    flights, ran = SlotFlights(), []

    async def over_quota() -> str:
        ran.append("over_quota")
        await _joined(flights, "slot", 4)
        raise rule("quota_active_bookings", "同时最多保留 1 个有效预约")

    async def broken() -> str:
        ran.append("broken")
        raise RuntimeError("boom")

    async def wins() -> str:
        ran.append("wins")
        return "won"

    results = await asyncio.gather(
        _outcome(flights.attempt("slot", over_quota)),
        _outcome(flights.attempt("slot", broken)),
        _outcome(flights.attempt("slot", wins)),
        _outcome(flights.attempt("slot", wins)),
    )
    assert results == ["quota_active_bookings", "RuntimeError", "won", "slot_taken"]
    assert ran == ["over_quota", "broken", "wins"]
    assert len(flights) == 0


async def test_other_slots_do_not_wait():
    flights = SlotFlights()
    release = asyncio.Event()

    async def slow() -> str:
        await release.wait()
        return "slow"

    async def quick() -> str:
        return "quick"

    first = asyncio.ensure_future(flights.attempt("15:00", slow))
    assert await flights.attempt("16:00", quick) == "quick"
    release.set()
    assert await first == "slow"


def _counting(monkeypatch: pytest.MonkeyPatch, *, wait_for: int) -> list[str]:
    """Count whole-path runs of create_booking; the first waits until ``wait_for`` have joined."""
    real, runs = bookings._create, []

    async def counted(*, ctx: Any, actor: Any, data: Any) -> Booking:
        runs.append(actor.user_id)
        if len(runs) == 1:
            await _joined(SLOT_FLIGHTS, bookings.flight_key(data), wait_for)
        return await real(ctx=ctx, actor=actor, data=data)

    monkeypatch.setattr(bookings, "_create", counted)
    return runs


async def test_one_slot_in_one_process_one_booking_one_run(client, ctx, monkeypatch):
    """Fifty residents, the same request at once: one 201, 409 slot_taken for the rest, and the
    whole path ran once."""
    site = await make_site(client, ctx)
    unit = site.units[0]["id"]
    headers = [token_headers(ctx, u) for u in await many_users(ctx, 50)]
    runs = _counting(monkeypatch, wait_for=50)

    async def attempt(h: dict[str, str]) -> tuple[int, str]:
        response = await client.post(
            "/api/v1/bookings", headers=h, json={"unit_id": unit, "start": at(15)}
        )
        code = response.json()["error"]["code"] if response.status_code != 201 else ""
        return response.status_code, code

    results = Counter(await asyncio.gather(*(attempt(h) for h in headers)))
    assert results == Counter({(201, ""): 1, (409, "slot_taken"): 49}), results
    assert len(runs) == 1
    assert await Booking.filter(unit__public_id=unit).count() == 1
    assert len(SLOT_FLIGHTS) == 0


async def test_a_leader_over_quota_does_not_refuse_the_next(client, ctx, monkeypatch):
    """The first in line is over its quota (422); the resident behind it gets the slot."""
    site = await make_site(client, ctx, units=2, max_active_bookings=1)
    busy, busy_headers = await resident(ctx)
    await book(client, busy_headers, site.units[1]["id"], at(10))
    _, free_headers = await resident(ctx)
    unit = site.units[0]["id"]
    runs = _counting(monkeypatch, wait_for=2)

    async def attempt(h: dict[str, str]) -> tuple[int, str]:
        response = await client.post(
            "/api/v1/bookings", headers=h, json={"unit_id": unit, "start": at(15)}
        )
        code = response.json()["error"]["code"] if response.status_code != 201 else ""
        return response.status_code, code

    leader = asyncio.ensure_future(attempt(busy_headers))
    while not runs:  # the busy resident is running the path before the other arrives
        await asyncio.sleep(0.005)
    results = await asyncio.gather(leader, attempt(free_headers))
    assert results == [(422, "quota_active_bookings"), (201, "")]
    assert runs == [busy.public_id, runs[1]] and len(runs) == 2
    assert await Booking.filter(unit__public_id=unit).count() == 1
