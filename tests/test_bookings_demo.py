"""Demo data: bookable courts and rooms with some bookings, loaded idempotently."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from backend.clock import SHANGHAI
from backend.models import Role
from fixtures.venues_load import load_demo_venues
from tests.factories import make_user
from venues.bookings.demo import load_bookings_demo
from venues.bookings.models import BookableUnit, Booking, SlotClaim


async def test_demo_units_and_bookings(client, ctx):
    now = datetime.now(UTC)
    await load_demo_venues(now=now, count=300)
    await make_user(Role.VENUE_OPERATOR, username="operator")
    first = await load_bookings_demo(now=now)
    again = await load_bookings_demo(now=now)
    assert "bookings already there" in again[0], again
    units = await BookableUnit.all().select_related("venue")
    kinds = {u.venue.kind.value for u in units}
    assert kinds == {"sports_venue", "activity_room"}, first
    bookings = await Booking.all()
    assert len(bookings) >= 4, first
    assert await BookableUnit.all().count() == len(units)
    for booking in bookings:
        assert await SlotClaim.filter(booking_id=booking.id).exists()
    booked = bookings[0]
    day = booked.start.astimezone(SHANGHAI).date()
    venue = await booked.venue
    shown = await client.get(f"/api/v1/venues/{venue.public_id}/slots", params={"date": str(day)})
    states = {
        s["state"]
        for u in shown.json()["units"]
        for s in u["slots"]
        if s["start"] == booked.start.astimezone(SHANGHAI).isoformat()
    }
    assert states & {"booked"}, shown.text
    mine = await client.post("/api/v1/auth/wechat", json={"code": "dev:xiaoming"})
    token = mine.json()["access_token"]
    listed = await client.get("/api/v1/me/bookings", headers={"Authorization": f"Bearer {token}"})
    assert listed.json()["items"], listed.text
    assert booked.start > now + timedelta(hours=1)
