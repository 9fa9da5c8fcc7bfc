"""The per-resident rules hold on every path to a booking, the waitlist included; multi-write
flows commit as one unit of work."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend.uow import unit_of_work
from tests.booking_helpers import NOW, at, book, make_site, resident
from venues.bookings import bookings, operators, scheduled
from venues.bookings.models import (
    ACTIVE,
    Booking,
    ResidentState,
    SlotClaim,
    WaitlistEntry,
    WaitStatus,
)
from venues.bookings.residents import check_resident
from venues.bookings.settings import Policy
from venues.models import Venue


async def join(client, headers, unit: str, start: str):
    return await client.post(
        "/api/v1/bookings/waitlist", headers=headers, json={"unit_id": unit, "start": start}
    )


async def mine(client, headers) -> list[dict]:
    items: list[dict] = (await client.get("/api/v1/me/bookings", headers=headers)).json()["items"]
    return items


def refused_with(response, code: str) -> None:
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == code, response.text


async def test_one_active_booking_cannot_become_two_through_the_waitlist(client, ctx):
    """The security finding: refused a second booking, the resident may not wait for one."""
    site = await make_site(client, ctx, max_active_bookings=1)
    unit = site.units[0]["id"]
    user, headers = await resident(ctx)
    _, other = await resident(ctx)
    await book(client, headers, unit, at(10))
    taken = await book(client, other, unit, at(15))
    second = await book(client, headers, unit, at(17), expect=422)
    assert second["error"]["code"] == "quota_active_bookings"

    refused_with(await join(client, headers, unit, at(15)), "quota_active_bookings")
    assert not await WaitlistEntry.filter(user_id=user.id).exists()
    # The slot frees up: nothing is offered to the resident, who keeps one booking.
    cancelled = await client.post(f"/api/v1/bookings/{taken['id']}/cancel", headers=other)
    assert cancelled.status_code == 200
    assert [b["start"] for b in await mine(client, headers)] == [at(10)]
    assert await Booking.filter(user_id=user.id, status__in=ACTIVE).count() == 1


async def test_the_offer_passes_over_a_resident_over_the_quota(client, ctx):
    site = await make_site(client, ctx, max_active_bookings=1)
    unit = site.units[0]["id"]
    first, first_headers = await resident(ctx)
    _, second_headers = await resident(ctx)
    _, other = await resident(ctx)
    taken = await book(client, other, unit, at(15))
    assert (await join(client, first_headers, unit, at(15))).status_code == 201
    assert (await join(client, second_headers, unit, at(15))).json()["position"] == 2
    # Waiting is not a booking: the first in line books something else meanwhile.
    await book(client, first_headers, unit, at(10))

    await client.post(f"/api/v1/bookings/{taken['id']}/cancel", headers=other)
    assert [b["start"] for b in await mine(client, first_headers)] == [at(10)]
    assert await Booking.filter(user_id=first.id, status__in=ACTIVE).count() == 1
    offer = await mine(client, second_headers)
    assert len(offer) == 1 and offer[0]["status"] == "held" and offer[0]["from_waitlist"]
    assert (await client.get("/api/v1/me/waitlist", headers=first_headers)).json()["items"] == []
    entry = await WaitlistEntry.get(user_id=first.id)
    assert entry.status == WaitStatus.EXPIRED
    confirmed = await client.post(
        f"/api/v1/bookings/{offer[0]['id']}/confirm", headers=second_headers
    )
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "confirmed"


async def test_suspension_holds_on_joining_offering_and_confirming(client, ctx):
    # One no-show suspends for two days; an offer lasts until the slot starts.
    site = await make_site(
        client, ctx, no_show_limit=1, suspension_days=2, waitlist_offer_minutes=600
    )
    unit = site.units[0]["id"]
    late, late_headers = await resident(ctx)
    _, next_headers = await resident(ctx)
    _, other = await resident(ctx)
    await book(client, late_headers, unit, at(10))
    at_three = await book(client, other, unit, at(15))
    at_five = await book(client, other, unit, at(17))
    assert (await join(client, late_headers, unit, at(15))).status_code == 201
    assert (await join(client, next_headers, unit, at(15))).status_code == 201
    assert (await join(client, late_headers, unit, at(17))).status_code == 201
    # 17:00 frees up first: the resident, not yet suspended, is offered it.
    await client.post(f"/api/v1/bookings/{at_five['id']}/cancel", headers=other)
    offer = [b for b in await mine(client, late_headers) if b["status"] == "held"]
    assert len(offer) == 1 and offer[0]["start"] == at(17)

    ctx.clock.set(NOW.replace(hour=10, minute=20))
    await scheduled.mark_no_shows(ctx)
    state = await ResidentState.get(user_id=late.id)
    assert state.suspended_until is not None and state.suspended_until > ctx.clock.now()

    # Confirming the offer made before the suspension is refused.
    confirm = await client.post(f"/api/v1/bookings/{offer[0]['id']}/confirm", headers=late_headers)
    refused_with(confirm, "booking_suspended")
    assert (await Booking.get(public_id=offer[0]["id"])).status == "held"
    # Joining another waitlist is refused.
    await book(client, other, unit, at(19))
    refused_with(await join(client, late_headers, unit, at(19)), "booking_suspended")
    # 15:00 frees up: the suspended resident is passed over, the next in line is offered it.
    await client.post(f"/api/v1/bookings/{at_three['id']}/cancel", headers=other)
    assert [b["start"] for b in await mine(client, next_headers)] == [at(15)]
    assert not await Booking.filter(user_id=late.id, start=NOW.replace(hour=15, minute=0)).exists()


async def test_one_unit_at_a_time_holds_through_the_waitlist(client, ctx):
    site = await make_site(client, ctx, units=3)
    court1, court2, court3 = (u["id"] for u in site.units)
    first, first_headers = await resident(ctx)
    _, second_headers = await resident(ctx)
    _, third_headers = await resident(ctx)
    _, other = await resident(ctx)
    taken = await book(client, other, court2, at(15))

    # Holding court 1 at 15:00, the resident may not wait for court 2 at 15:00.
    await book(client, first_headers, court1, at(15))
    response = await join(client, first_headers, court2, at(15))
    refused_with(response, "one_unit_at_a_time")
    assert "start" in response.json()["error"]["fields"]

    # Waiting first and booking the other court afterwards: the offer passes them over.
    assert (await join(client, second_headers, court2, at(15))).status_code == 201
    assert (await join(client, third_headers, court2, at(15))).status_code == 201
    await book(client, second_headers, court3, at(15))
    await client.post(f"/api/v1/bookings/{taken['id']}/cancel", headers=other)
    assert [b["unit_id"] for b in await mine(client, second_headers)] == [court3]
    offer = await mine(client, third_headers)
    assert [(b["unit_id"], b["status"]) for b in offer] == [(court2, "held")]
    assert await Booking.filter(user_id=first.id, status__in=ACTIVE).count() == 1


async def test_weekly_hours_hold_when_joining_a_waitlist(client, ctx):
    site = await make_site(client, ctx, max_hours_per_week=2)
    unit = site.units[0]["id"]
    _, headers = await resident(ctx)
    _, other = await resident(ctx)
    await book(client, headers, unit, at(10), minutes=120)
    await book(client, other, unit, at(15))
    response = await join(client, headers, unit, at(15))
    refused_with(response, "quota_weekly_hours")
    assert "minutes" in response.json()["error"]["fields"]


async def test_the_resident_rules_run_only_inside_a_unit_of_work(client, ctx):
    site = await make_site(client, ctx)
    user, _ = await resident(ctx)
    venue = await Venue.get(public_id=site.venue_id)
    start = NOW + timedelta(hours=6)
    rules = {"user_id": user.id, "venue": venue, "start": start, "now": NOW, "policy": Policy()}
    with pytest.raises(RuntimeError):
        await check_resident(end=start + timedelta(hours=1), **rules)
    async with unit_of_work():
        await check_resident(end=start + timedelta(hours=1), **rules)
    assert (await ResidentState.get(user_id=user.id)).version == 1


async def test_a_cancellation_commits_as_one_unit(client, ctx, monkeypatch):
    site = await make_site(client, ctx)
    unit = site.units[0]["id"]
    _, headers = await resident(ctx)
    _, waiting = await resident(ctx)
    held = await book(client, headers, unit, at(15))
    assert (await join(client, waiting, unit, at(15))).status_code == 201

    async def broken(**_: object) -> None:
        raise RuntimeError("audit trail unavailable")

    monkeypatch.setattr(bookings, "record", broken)
    failed = await client.post(f"/api/v1/bookings/{held['id']}/cancel", headers=headers)
    assert failed.status_code == 500
    # Nothing of the cancellation is left: still confirmed, cells claimed, nobody offered.
    assert (await Booking.get(public_id=held["id"])).status == "confirmed"
    assert await SlotClaim.filter(booking__public_id=held["id"]).count() == 2
    assert await mine(client, waiting) == []

    monkeypatch.setattr(operators, "record", broken)
    failed = await client.post(
        f"/api/v1/operator/bookings/{held['id']}/cancel", headers=site.key, json={"reason": "检修"}
    )
    assert failed.status_code == 500
    assert (await Booking.get(public_id=held["id"])).status == "confirmed"
    notes = (await client.get("/api/v1/me/notifications", headers=headers)).json()["items"]
    assert "booking_cancelled" not in {n["kind"] for n in notes}

    monkeypatch.undo()
    ok = await client.post(f"/api/v1/bookings/{held['id']}/cancel", headers=headers)
    assert ok.status_code == 200
    offer = await mine(client, waiting)
    assert [(b["start"], b["status"]) for b in offer] == [(at(15), "held")]
