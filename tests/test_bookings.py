"""Bookings through the API: slots, the lifecycle, rules with their codes, operators, waitlist."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backend.errors import Conflict
from backend.models import Notification, Role
from tests.booking_helpers import NOW, at, book, make_site, resident
from tests.crowdsource_helpers import token_headers
from tests.factories import make_user
from venues.bookings import penalties, scheduled
from venues.bookings.models import Booking, OutboxMessage, SlotClaim


def states(body: dict, unit: int = 0) -> dict[str, str]:
    return {s["start"][11:16]: s["state"] for s in body["units"][unit]["slots"]}


async def slots(client, venue_id: str, day: str = "2026-11-23") -> dict:
    response = await client.get(f"/api/v1/venues/{venue_id}/slots", params={"date": day})
    assert response.status_code == 200, response.text
    return response.json()


async def test_slots_follow_opening_hours_rules_and_bookings(client, ctx):
    site = await make_site(client, ctx, units=2, rules={"buffer_minutes": 30})
    unit = site.units[0]["id"]
    _, headers = await resident(ctx)
    shown = states(await slots(client, site.venue_id))
    # 60-minute slots every 30 minutes inside 08:00-12:00 and 14:00-22:00.
    assert list(shown)[:3] == ["08:00", "08:30", "09:00"]
    assert "11:30" not in shown and "12:00" not in shown and "13:30" not in shown
    assert shown["14:00"] == "free" and shown["21:00"] == "free" and "21:30" not in shown
    assert shown["08:00"] == "past" and shown["09:00"] == "past"
    assert shown["09:30"] == "too_soon" and shown["10:00"] == "free"

    held = await book(client, headers, unit, at(15), confirm=False)
    assert held["status"] == "held"
    shown = states(await slots(client, site.venue_id))
    # The booking (15:00-16:00) and its 30-minute buffer block every overlapping start.
    assert shown["14:30"] == "held" and shown["15:00"] == "held" and shown["15:30"] == "held"
    assert shown["14:00"] == "held"  # 14:00-15:00 plus its buffer reaches into 15:00
    assert shown["16:30"] == "free"
    other = states(await slots(client, site.venue_id), unit=1)
    assert other["15:00"] == "free"

    await client.post(f"/api/v1/bookings/{held['id']}/confirm", headers=headers)
    assert states(await slots(client, site.venue_id))["15:00"] == "booked"

    response = await client.post(
        f"/api/v1/venues/{site.venue_id}/blackouts",
        headers=site.key,
        json={"starts_at": at(18), "ends_at": at(20), "reason": "设备检修"},
    )
    assert response.status_code == 201, response.text
    shown = states(await slots(client, site.venue_id))
    assert shown["18:00"] == "blackout" and shown["17:30"] == "blackout"
    assert shown["20:00"] == "free"
    later = states(await slots(client, site.venue_id, "2026-12-05"))
    assert set(later.values()) == {"not_open_yet"}
    bad = await client.get(f"/api/v1/venues/{site.venue_id}/slots", params={"date": "11/23"})
    assert bad.status_code == 400 and "date" in bad.json()["error"]["fields"]
    missing = await client.get("/api/v1/venues/nope/slots", params={"date": "2026-11-23"})
    assert missing.status_code == 404


async def test_hold_confirm_check_in_complete(client, ctx):
    site = await make_site(client, ctx)
    unit = site.units[0]["id"]
    user, headers = await resident(ctx)
    held = await book(client, headers, unit, at(10), confirm=False)
    assert held["hold_expires_at"] and held["checkin_token"] is None
    confirmed = (
        await client.post(f"/api/v1/bookings/{held['id']}/confirm", headers=headers)
    ).json()
    assert confirmed["status"] == "confirmed"
    token = confirmed["checkin_token"]
    assert token and len(token) >= 20
    again = await client.post(f"/api/v1/bookings/{held['id']}/confirm", headers=headers)
    assert again.status_code == 409 and again.json()["error"]["code"] == "not_held"

    mine = (await client.get("/api/v1/me/bookings", headers=headers)).json()
    assert [b["id"] for b in mine["items"]] == [held["id"]]
    assert mine["items"][0]["start"] == at(10)
    svg = await client.get(f"/api/v1/bookings/{held['id']}/qr.svg", headers=headers)
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.startswith("<svg")
    # Someone else sees a 404; the operator sees it without the token.
    _, stranger = await resident(ctx)
    assert (await client.get(f"/api/v1/bookings/{held['id']}", headers=stranger)).status_code == 404
    seen = (await client.get(f"/api/v1/bookings/{held['id']}", headers=site.key)).json()
    assert seen["checkin_token"] is None

    # Too early for check-in (window opens 15 minutes before 10:00).
    early = await client.post("/api/v1/operator/checkins", headers=site.key, json={"token": token})
    assert early.status_code == 422
    assert early.json()["error"]["code"] == "checkin_outside_window"
    ctx.clock.set(NOW + timedelta(minutes=50))
    wrong = await client.post(
        "/api/v1/operator/checkins", headers=site.key, json={"token": "x" * 32}
    )
    assert wrong.status_code == 404
    done = await client.post("/api/v1/operator/checkins", headers=site.key, json={"token": token})
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "checked_in"
    reused = await client.post("/api/v1/operator/checkins", headers=site.key, json={"token": token})
    assert reused.status_code == 409 and reused.json()["error"]["code"] == "already_checked_in"
    ctx.clock.set(NOW + timedelta(hours=2))
    await scheduled.complete_visits(ctx)
    assert (await Booking.get(public_id=held["id"])).status == "completed"
    notes = (await client.get("/api/v1/me/notifications", headers=headers)).json()["items"]
    assert [n["kind"] for n in notes] == ["booking_confirmed"]
    assert await OutboxMessage.filter(user_id=user.id, kind="confirmed").count() == 1


async def test_bad_input_has_its_own_code_and_field(client, ctx):
    other_site = await make_site(client, ctx)
    site = await make_site(client, ctx, units=2)
    unit = site.units[0]["id"]
    _, headers = await resident(ctx)

    async def refused(start: str, code: str, field: str | None, status: int = 422, **extra):
        response = await client.post(
            "/api/v1/bookings", headers=headers, json={"unit_id": unit, "start": start, **extra}
        )
        assert response.status_code == status, response.text
        error = response.json()["error"]
        assert error["code"] == code, error
        if field:
            assert field in error["fields"], error

    await refused(at(15, 10), "start_off_grid", "start")
    await refused(at(8), "start_in_past", "start")
    await refused(at(9, 30), "notice_too_short", "start")
    await refused(at(10, days=8), "too_far_ahead", "start")
    await refused(at(12), "outside_opening_hours", "start")
    await refused(at(11, 30), "outside_opening_hours", "start")  # runs past 12:00
    await refused(at(15), "duration_not_allowed", "minutes", minutes=45)
    await refused(at(15), "duration_not_allowed", "minutes", minutes=180)
    await refused(at(15), "party_too_large", "party_size", party_size=5)
    await refused(at(15), "unit_not_in_venue", "venue_id", venue_id=other_site.venue_id)
    await refused("tomorrow", "validation_error", "start", status=400)
    await refused(at(15), "validation_error", "unit_id", status=400, unit_id="")
    response = await client.post(
        f"/api/v1/venues/{site.venue_id}/blackouts",
        headers=site.key,
        json={"unit_id": unit, "starts_at": at(16), "ends_at": at(17), "reason": "比赛"},
    )
    assert response.status_code == 201
    await refused(at(15, 30), "blackout", "start")
    missing = await client.post(
        "/api/v1/bookings", headers=headers, json={"unit_id": "nope", "start": at(15)}
    )
    assert missing.status_code == 404
    # The same start without an offset is read as Beijing time and accepted.
    ok = await client.post(
        "/api/v1/bookings", headers=headers, json={"unit_id": unit, "start": "2026-11-23T15:00"}
    )
    assert ok.status_code == 201, ok.text
    assert ok.json()["start"] == at(15)
    # Staff cannot book; anonymous callers must sign in.
    assert (await client.post("/api/v1/bookings", json={})).status_code == 401
    staff = await client.post(
        "/api/v1/bookings", headers=site.operator_headers, json={"unit_id": unit, "start": at(16)}
    )
    assert staff.status_code == 403


async def test_quotas_and_no_show_suspension(client, ctx):
    site = await make_site(
        client,
        ctx,
        units=2,
        max_active_bookings=2,
        max_hours_per_week=3,
        cancel_cutoff_minutes=30,
        suspension_days=2,
    )
    a, b = site.units[0]["id"], site.units[1]["id"]
    user, headers = await resident(ctx)
    await book(client, headers, a, at(10))
    same_time = await book(client, headers, b, at(10), expect=422)
    assert same_time["error"]["code"] == "one_unit_at_a_time"
    await book(client, headers, b, at(15))
    third = await book(client, headers, a, at(17), expect=422)
    assert third["error"]["code"] == "quota_active_bookings"
    # Weekly hours count per venue kind: 2 h used, a 2 h booking would make 4 h > 3 h.
    await book(client, headers, a, at(16), confirm=False, expect=422)
    first = (await client.get("/api/v1/me/bookings", headers=headers)).json()["items"]
    for item in first:
        assert (
            await client.post(f"/api/v1/bookings/{item['id']}/cancel", headers=headers)
        ).status_code == 200
    weekly = await book(client, headers, a, at(18, days=1), minutes=120, confirm=False)
    assert weekly["status"] == "held"
    over = await book(client, headers, b, at(10, days=2), minutes=120, expect=422)
    assert over["error"]["code"] == "quota_weekly_hours"
    assert "minutes" in over["error"]["fields"]

    # Three no-shows within 30 days suspend booking (for 2 days here).
    _, late_headers = await resident(ctx)
    ids = []
    for day in (0, 1, 2):
        ids.append((await book(client, late_headers, a, at(20, days=day)))["id"])
        ctx.clock.set(NOW.replace(hour=20, minute=20) + timedelta(days=day))
        await scheduled.mark_no_shows(ctx)
        assert (await Booking.get(public_id=ids[-1])).status == "no_show"
        ctx.clock.set(NOW + timedelta(days=day + 1))
    assert await SlotClaim.filter(booking__public_id__in=ids).count() == 0
    suspended = await book(client, late_headers, a, at(15, days=3), expect=422)
    assert suspended["error"]["code"] == "booking_suspended"
    ctx.clock.set(NOW + timedelta(days=5))
    await book(client, late_headers, a, at(15, days=5))


async def test_a_no_show_is_refused_while_the_check_in_window_is_open(client, ctx):
    """One rule for the job and for staff (the console calls the same function)."""
    site = await make_site(client, ctx)
    _, headers = await resident(ctx)
    made = await book(client, headers, site.units[0]["id"], at(20))
    booking = await Booking.get(public_id=made["id"])
    ctx.clock.set(NOW.replace(hour=20, minute=5))  # started, still inside the window
    with pytest.raises(Conflict) as refused:
        await penalties.mark_no_show(ctx=ctx, booking=booking)
    assert refused.value.code == "checkin_window_open"
    await scheduled.mark_no_shows(ctx)  # the job leaves it alone too
    assert (await Booking.get(id=booking.id)).status == "confirmed"
    ctx.clock.set(NOW.replace(hour=20, minute=20))
    assert await penalties.mark_no_show(ctx=ctx, booking=booking) is True
    assert (await Booking.get(id=booking.id)).status == "no_show"
    assert await penalties.mark_no_show(ctx=ctx, booking=booking) is False  # once only


async def test_cancellation_cut_off_and_venue_cancellation(client, ctx):
    site = await make_site(client, ctx, cancel_cutoff_minutes=120)
    unit = site.units[0]["id"]
    _, headers = await resident(ctx)
    soon = await book(client, headers, unit, at(10))
    later = await book(client, headers, unit, at(15))
    late = await client.post(f"/api/v1/bookings/{soon['id']}/cancel", headers=headers)
    assert late.status_code == 422 and late.json()["error"]["code"] == "cancel_too_late"
    ok = await client.post(f"/api/v1/bookings/{later['id']}/cancel", headers=headers)
    assert ok.status_code == 200 and ok.json()["status"] == "cancelled"
    again = await client.post(f"/api/v1/bookings/{later['id']}/cancel", headers=headers)
    assert again.status_code == 409
    # The freed slot can be booked again.
    _, other = await resident(ctx)
    await book(client, other, unit, at(15))

    no_reason = await client.post(
        f"/api/v1/operator/bookings/{soon['id']}/cancel", headers=site.key, json={"reason": " "}
    )
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["error"]["fields"]
    intruder = await make_user(Role.VENUE_OPERATOR)
    foreign = await client.post(
        f"/api/v1/operator/bookings/{soon['id']}/cancel",
        headers=token_headers(ctx, intruder),
        json={"reason": "场地维修"},
    )
    assert foreign.status_code == 403
    cancelled = await client.post(
        f"/api/v1/operator/bookings/{soon['id']}/cancel",
        headers=site.key,
        json={"reason": "场地维修"},
    )
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled_by_venue"
    assert cancelled.json()["reason"] == "场地维修"
    notes = (await client.get("/api/v1/me/notifications", headers=headers)).json()["items"]
    told = [n for n in notes if n["kind"] == "booking_cancelled"]
    assert len(told) == 1 and "场地维修" in told[0]["body"]

    day = await client.get(
        "/api/v1/operator/bookings",
        headers=site.key,
        params={"venue_id": site.venue_id, "date": "2026-11-23"},
    )
    assert day.status_code == 200, day.text
    assert [b["status"] for b in day.json()["items"]] == [
        "cancelled_by_venue",
        "cancelled",
        "confirmed",
    ]
    assert all("*" in b["resident"] for b in day.json()["items"])
    denied = await client.get(
        "/api/v1/operator/bookings",
        headers=token_headers(ctx, intruder),
        params={"venue_id": site.venue_id, "date": "2026-11-23"},
    )
    assert denied.status_code == 403


async def test_expired_holds_and_the_waitlist(client, ctx):
    site = await make_site(client, ctx, hold_minutes=10, waitlist_offer_minutes=15)
    unit = site.units[0]["id"]
    _, first = await resident(ctx)
    _, second = await resident(ctx)
    _, third = await resident(ctx)
    held = await book(client, first, unit, at(15), confirm=False)
    taken = await book(client, second, unit, at(15), expect=409)
    assert taken["error"]["code"] == "slot_taken"
    free = await client.post(
        "/api/v1/bookings/waitlist", headers=second, json={"unit_id": unit, "start": at(16)}
    )
    assert free.status_code == 422 and free.json()["error"]["code"] == "slot_free"
    for headers, place in ((second, 1), (third, 2)):
        joined = await client.post(
            "/api/v1/bookings/waitlist", headers=headers, json={"unit_id": unit, "start": at(15)}
        )
        assert joined.status_code == 201, joined.text
        assert joined.json()["position"] == place
    dup = await client.post(
        "/api/v1/bookings/waitlist", headers=third, json={"unit_id": unit, "start": at(15)}
    )
    assert dup.status_code == 409

    # The hold runs out: the first in line is offered the slot as a hold of their own.
    ctx.clock.set(NOW + timedelta(minutes=11))
    await scheduled.expire_holds(ctx)
    assert (await Booking.get(public_id=held["id"])).status == "expired"
    offered = (await client.get("/api/v1/me/bookings", headers=second)).json()["items"]
    assert len(offered) == 1 and offered[0]["from_waitlist"] and offered[0]["status"] == "held"
    notes = (await client.get("/api/v1/me/notifications", headers=second)).json()["items"]
    assert [n["kind"] for n in notes] == ["booking_waitlist_offer"]
    # Not accepted in time: the next in line gets it.
    ctx.clock.set(NOW + timedelta(minutes=27))
    await scheduled.expire_holds(ctx)
    late = await client.post(f"/api/v1/bookings/{offered[0]['id']}/confirm", headers=second)
    assert late.status_code == 409
    offer = (await client.get("/api/v1/me/bookings", headers=third)).json()["items"]
    assert len(offer) == 1 and offer[0]["status"] == "held"
    accepted = await client.post(f"/api/v1/bookings/{offer[0]['id']}/confirm", headers=third)
    assert accepted.status_code == 200 and accepted.json()["status"] == "confirmed"
    waits = (await client.get("/api/v1/me/waitlist", headers=third)).json()["items"]
    assert waits == []
    assert await Booking.filter(status__in=("held", "confirmed")).count() == 1


async def test_cancellation_offers_the_slot_and_approval_flow(client, ctx):
    site = await make_site(client, ctx, rules={"requires_approval": True})
    unit = site.units[0]["id"]
    _, first = await resident(ctx)
    _, second = await resident(ctx)
    pending = await book(client, first, unit, at(15))
    assert pending["status"] == "pending_approval" and pending["checkin_token"] is None
    await client.post(
        "/api/v1/bookings/waitlist", headers=second, json={"unit_id": unit, "start": at(15)}
    )
    rejected = await client.post(
        f"/api/v1/operator/bookings/{pending['id']}/reject",
        headers=site.key,
        json={"reason": "当天有比赛"},
    )
    assert rejected.status_code == 200 and rejected.json()["status"] == "rejected"
    offer = (await client.get("/api/v1/me/bookings", headers=second)).json()["items"]
    assert offer[0]["status"] == "held"
    confirmed = await client.post(f"/api/v1/bookings/{offer[0]['id']}/confirm", headers=second)
    assert confirmed.json()["status"] == "pending_approval"
    approved = await client.post(
        f"/api/v1/operator/bookings/{offer[0]['id']}/approve", headers=site.key
    )
    assert approved.status_code == 200 and approved.json()["status"] == "confirmed"
    again = await client.post(
        f"/api/v1/operator/bookings/{offer[0]['id']}/approve", headers=site.key
    )
    assert again.status_code == 409
    mine = (await client.get(f"/api/v1/bookings/{offer[0]['id']}", headers=second)).json()
    assert mine["checkin_token"]


async def test_blackouts_refuse_their_unit_or_every_unit_of_the_venue(client, ctx):
    site = await make_site(client, ctx, units=2)
    first, second = (u["id"] for u in site.units)
    _, headers = await resident(ctx)

    async def close(starts: str, ends: str, unit: str | None = None) -> None:
        response = await client.post(
            f"/api/v1/venues/{site.venue_id}/blackouts",
            headers=site.key,
            json={"unit_id": unit, "starts_at": starts, "ends_at": ends, "reason": "检修"},
        )
        assert response.status_code == 201, response.text

    async def code(unit: str, start: str) -> str:
        response = await client.post(
            "/api/v1/bookings", headers=headers, json={"unit_id": unit, "start": start}
        )
        return "" if response.status_code == 201 else response.json()["error"]["code"]

    await close(at(15), at(16), unit=second)  # one unit
    await close(at(18), at(19))  # the whole venue
    assert await code(second, at(15)) == "blackout"
    assert await code(first, at(18)) == "blackout"
    assert await code(second, at(18, 30)) == "blackout"
    assert await code(first, at(15)) == ""  # the other unit's blackout is not this one's


async def test_units_policy_and_blackouts_management(client, ctx):
    site = await make_site(client, ctx)
    bad = await client.post(
        f"/api/v1/venues/{site.venue_id}/units",
        headers=site.key,
        json={"name": "2号场", "interval_minutes": 30, "slot_minutes": 45},
    )
    assert bad.status_code == 400 and "slot_minutes" in bad.json()["error"]["fields"]
    dup = await client.post(
        f"/api/v1/venues/{site.venue_id}/units", headers=site.key, json={"name": "1号场"}
    )
    assert dup.status_code == 409
    toilet = await client.post(
        "/api/v1/venues",
        headers=site.admin,
        json={"kind": "public_toilet", "name": "公厕", "lat": 31.82, "lng": 117.22},
    )
    refused = await client.post(
        f"/api/v1/venues/{toilet.json()['id']}/units", headers=site.admin, json={"name": "A"}
    )
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "venue_not_bookable"
    unit = site.units[0]["id"]
    _, headers = await resident(ctx)
    await book(client, headers, unit, at(15))
    regrid = await client.patch(
        f"/api/v1/units/{unit}",
        headers=site.key,
        json={"interval_minutes": 60, "slot_minutes": 60, "min_minutes": 60, "max_minutes": 120},
    )
    assert regrid.status_code == 409 and regrid.json()["error"]["code"] == "unit_has_bookings"
    patched = await client.patch(f"/api/v1/units/{unit}", headers=site.key, json={"active": False})
    assert patched.status_code == 200 and patched.json()["active"] is False
    listed = (await client.get(f"/api/v1/venues/{site.venue_id}/units")).json()["items"]
    assert listed[0]["active"] is False
    assert (await slots(client, site.venue_id))["units"] == []

    policy = await client.put(
        f"/api/v1/venues/{site.venue_id}/booking-policy",
        headers=site.admin,
        json={"hold_minutes": 5, "max_active_bookings": 1},
    )
    assert policy.status_code == 200, policy.text
    assert policy.json()["hold_minutes"] == 5
    assert policy.json()["overridden"] == ["hold_minutes", "max_active_bookings"]
    reset = await client.put(
        f"/api/v1/venues/{site.venue_id}/booking-policy",
        headers=site.admin,
        json={"hold_minutes": None},
    )
    assert reset.json()["hold_minutes"] == 10 and reset.json()["overridden"] == [
        "max_active_bookings"
    ]
    operator_denied = await client.put(
        f"/api/v1/venues/{site.venue_id}/booking-policy", headers=site.operator_headers, json={}
    )
    assert operator_denied.status_code == 403

    created = await client.post(
        f"/api/v1/venues/{site.venue_id}/blackouts",
        headers=site.operator_headers,
        json={"starts_at": at(18), "ends_at": at(17), "reason": "活动"},
    )
    assert created.status_code == 400 and "ends_at" in created.json()["error"]["fields"]
    created = await client.post(
        f"/api/v1/venues/{site.venue_id}/blackouts",
        headers=site.operator_headers,
        json={"starts_at": at(18), "ends_at": at(20), "reason": "活动"},
    )
    assert created.status_code == 201
    listed = (await client.get(f"/api/v1/venues/{site.venue_id}/blackouts")).json()["items"]
    assert [b["reason"] for b in listed] == ["活动"]
    removed = await client.delete(f"/api/v1/blackouts/{created.json()['id']}", headers=site.key)
    assert removed.status_code == 204
    assert (await client.get(f"/api/v1/venues/{site.venue_id}/blackouts")).json()["items"] == []


async def test_reminders_are_queued_once(client, ctx):
    site = await make_site(client, ctx, reminder_minutes=120)
    user, headers = await resident(ctx)
    await book(client, headers, site.units[0]["id"], at(15))
    await scheduled.queue_reminders(ctx)
    assert await Notification.filter(user=user, kind="booking_reminder").count() == 0
    ctx.clock.set(NOW.replace(hour=13, minute=30))
    await scheduled.queue_reminders(ctx)
    await scheduled.queue_reminders(ctx)
    assert await Notification.filter(user=user, kind="booking_reminder").count() == 1
    assert await OutboxMessage.filter(user=user, kind="reminder").count() == 1


async def test_openapi_documents_every_booking_route(client, app):
    doc = (await client.get("/docs/openapi.json")).json()
    paths = doc["paths"]
    for path in (
        "/api/v1/venues/{venue_id}/slots",
        "/api/v1/bookings",
        "/api/v1/bookings/{booking_id}/cancel",
        "/api/v1/bookings/{booking_id}/confirm",
        "/api/v1/bookings/{booking_id}/qr.svg",
        "/api/v1/me/bookings",
        "/api/v1/bookings/waitlist",
        "/api/v1/operator/checkins",
        "/api/v1/operator/bookings",
        "/api/v1/venues/{venue_id}/units",
        "/api/v1/venues/{venue_id}/blackouts",
        "/api/v1/venues/{venue_id}/booking-policy",
    ):
        assert path in paths, path
    create = paths["/api/v1/bookings"]["post"]
    assert {"201", "409", "422"} <= set(create["responses"])


async def test_a_run_out_hold_does_not_block_and_a_declined_offer_moves_on(client, ctx):
    site = await make_site(client, ctx, hold_minutes=10)
    unit = site.units[0]["id"]
    _, first = await resident(ctx)
    _, second = await resident(ctx)
    _, third = await resident(ctx)
    stale = await book(client, first, unit, at(15), confirm=False)
    ctx.clock.set(NOW + timedelta(minutes=12))
    # No job has run yet, but the hold has run out: the slot is bookable.
    fresh = await book(client, second, unit, at(15), confirm=False)
    assert (await Booking.get(public_id=stale["id"])).status == "expired"
    joined = await client.post(
        "/api/v1/bookings/waitlist", headers=third, json={"unit_id": unit, "start": at(15)}
    )
    assert joined.status_code == 201
    # The holder drops the hold: the waiting resident is offered it at once.
    await client.post(f"/api/v1/bookings/{fresh['id']}/cancel", headers=second)
    offer = (await client.get("/api/v1/me/bookings", headers=third)).json()["items"]
    assert offer[0]["status"] == "held" and offer[0]["from_waitlist"]
    waits = (await client.get("/api/v1/me/waitlist", headers=third)).json()["items"]
    assert waits[0]["status"] == "offered" and waits[0]["booking_id"] == offer[0]["id"]
    declined = await client.post(f"/api/v1/bookings/{offer[0]['id']}/cancel", headers=third)
    assert declined.status_code == 200
    assert (await client.get("/api/v1/me/waitlist", headers=third)).json()["items"] == []
    await book(client, first, unit, at(15))


async def test_jobs_are_registered_and_the_waitlist_job_offers_free_slots(client, ctx, app):
    names = set(app.ctx.jobs.specs)
    assert {
        "bookings.expire_holds",
        "bookings.no_shows",
        "bookings.complete",
        "bookings.reminders",
        "bookings.waitlist",
        "bookings.deliver",
    } <= names
    site = await make_site(client, ctx)
    unit = site.units[0]["id"]
    _, holder = await resident(ctx)
    waiter, waiting = await resident(ctx)
    held = await book(client, holder, unit, at(15), confirm=False)
    await client.post(
        "/api/v1/bookings/waitlist", headers=waiting, json={"unit_id": unit, "start": at(15)}
    )
    # Free the slot behind the request path's back: only the job can notice.
    await Booking.filter(public_id=held["id"]).update(status="cancelled")
    await SlotClaim.filter(booking__public_id=held["id"]).delete()
    await scheduled.promote_waitlist(ctx)
    await scheduled.promote_waitlist(ctx)
    offers = await Booking.filter(user_id=waiter.id, from_waitlist=True)
    assert [b.status for b in offers] == ["held"]

    # Paging through my bookings with an opaque cursor.
    await book(client, waiting, unit, at(17))
    first = (await client.get("/api/v1/me/bookings?limit=1", headers=waiting)).json()
    assert len(first["items"]) == 1 and first["next_cursor"]
    second = (
        await client.get(
            "/api/v1/me/bookings",
            headers=waiting,
            params={"limit": 1, "cursor": first["next_cursor"]},
        )
    ).json()
    assert len(second["items"]) == 1 and second["next_cursor"] is None
    assert first["items"][0]["id"] != second["items"][0]["id"]
    forged = await client.get("/api/v1/me/bookings?cursor=abc.def", headers=waiting)
    assert forged.status_code == 400 and "cursor" in forged.json()["error"]["fields"]


async def test_dates_outside_the_service_years_are_a_400_naming_the_field(client, ctx):
    from tests.booking_helpers import make_site, resident

    site = await make_site(client, ctx)
    _, headers = await resident(ctx)
    unit_id = site.units[0]["id"]
    cases = [
        ("GET", f"/api/v1/venues/{site.venue_id}/slots?date=9999-12-31", None, "date"),
        ("POST", "/api/v1/bookings", {"unit_id": unit_id, "start": "0001-01-01T00:00"}, "start"),
        (
            "POST",
            "/api/v1/bookings/waitlist",
            {"unit_id": unit_id, "start": "9999-12-31T23:00:00+08:00"},
            "start",
        ),
    ]
    for method, url, body, field in cases:
        response = await client.request(method, url, headers=headers, json=body)
        assert response.status_code == 400, (url, response.text)
        assert field in response.json()["error"]["fields"]
    blackout = await client.post(
        f"/api/v1/venues/{site.venue_id}/blackouts",
        headers=site.key,
        json={"starts_at": "0001-01-01T00:00:00+08:00", "ends_at": "2026-12-01T00:00:00+08:00"},
    )
    assert blackout.status_code == 400
    assert "starts_at" in blackout.json()["error"]["fields"]
    day = await client.get(
        f"/api/v1/operator/bookings?venue_id={site.venue_id}&date=9999-12-31", headers=site.key
    )
    assert day.status_code == 400


def test_city_wide_rules_come_from_the_environment():
    from backend.config import SettingsError
    from venues.bookings.settings import BookingSettings

    settings = BookingSettings.from_env(
        {
            "SMARTCIRCLE_BOOKING_MAX_ACTIVE_BOOKINGS": "1",
            "SMARTCIRCLE_BOOKING_ONE_UNIT_AT_A_TIME": "false",
            "WECHAT_TEMPLATE_BOOKING_CONFIRMED": "tpl-1",
        }
    )
    assert settings.policy.max_active_bookings == 1
    assert settings.policy.one_unit_at_a_time is False
    assert settings.templates == {"confirmed": "tpl-1"}
    for bad in (
        {"SMARTCIRCLE_BOOKING_MAX_ACTIVE_BOOKINGS": "abc"},
        {"SMARTCIRCLE_BOOKING_ONE_UNIT_AT_A_TIME": "maybe"},
    ):
        with pytest.raises(SettingsError, match="SMARTCIRCLE_BOOKING_"):
            BookingSettings.from_env(bad)


async def test_a_hold_confirmed_too_late_expires_even_before_the_job(client, ctx):
    from tests.booking_helpers import at, book, make_site, resident

    site = await make_site(client, ctx)
    _, headers = await resident(ctx)
    held = await book(client, headers, site.units[0]["id"], at(15), confirm=False)
    ctx.clock.advance(11 * 60)  # the hold lasts 10 minutes; no job has run
    late = await client.post(f"/api/v1/bookings/{held['id']}/confirm", headers=headers)
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "hold_expired"
    shown = await client.get(f"/api/v1/bookings/{held['id']}", headers=headers)
    assert shown.json()["status"] == "expired"
