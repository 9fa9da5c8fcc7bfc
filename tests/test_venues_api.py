"""Venue writes and reads: roles, validation naming the field, coordinates, hours, outbox."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from backend import geo
from backend.clock import SHANGHAI
from backend.models import AuditEntry, Role
from tests.factories import headers_for, make_user, sign_in
from venues.models import IndexOutbox, Venue, VenueStatus

WEDNESDAY_10AM = datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI)
TOILET = {
    "kind": "public_toilet",
    "name": "荷叶地街道公共厕所",
    "address": "合肥市包河区荷叶地街道",
    "district": "包河区",
    "street": "荷叶地街道",
    "lat": 31.8206,
    "lng": 117.2272,
    "opening_hours": "Mo-Fr 08:00-18:00; PH off",
    "attributes": {"accessible": True, "baby_change": True, "gender": "all_gender"},
}


async def create(client, headers, **changes):
    body = {**TOILET, **changes}
    response = await client.post("/api/v1/venues", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_admin_creates_and_anyone_reads(client, ctx):
    ctx.clock.set(WEDNESDAY_10AM)
    admin = await make_user(Role.BUREAU_ADMIN)
    created = await create(client, await sign_in(client, admin))
    assert created["accessible"] is True
    assert created["attributes"]["gender"] == "all_gender"
    assert created["attributes"]["free"] is True  # defaults filled in
    response = await client.get(f"/api/v1/venues/{created['id']}")
    assert response.status_code == 200
    venue = response.json()
    assert venue["opening_hours"] == "Mo-Fr 08:00-18:00; PH off"
    assert venue["open_now"] is True
    assert datetime.fromisoformat(venue["next_change"]) == WEDNESDAY_10AM.replace(hour=18)
    assert venue["next_change"].endswith("+08:00")
    assert venue["location"] == {"lat": 31.8206, "lng": 117.2272}
    # Same transaction: the outbox row and the audit entry exist.
    assert await IndexOutbox.filter(venue_public_id=created["id"]).count() == 1
    entry = await AuditEntry.get(action="venue.create")
    assert entry.actor == admin.public_id and entry.object_id == created["id"]


async def test_coordinates_in_gcj02_are_stored_as_wgs84_and_shown_as_asked(client):
    headers = await headers_for(client, Role.BUREAU_ADMIN)
    gcj = geo.from_wgs84(geo.Point(31.8206, 117.2272), "gcj02")
    created = await create(client, headers, lat=gcj.lat, lng=gcj.lng, coord="gcj02")
    stored = await Venue.get(public_id=created["id"])
    assert geo.geodesic_m(geo.Point(stored.lat, stored.lng), geo.Point(31.8206, 117.2272)) < 0.05
    shown = (await client.get(f"/api/v1/venues/{created['id']}?coord=gcj02")).json()
    assert shown["coord"] == "gcj02"
    assert abs(shown["location"]["lat"] - gcj.lat) < 1e-6
    assert abs(shown["location"]["lng"] - gcj.lng) < 1e-6
    bd = (await client.get(f"/api/v1/venues/{created['id']}?coord=bd09")).json()["location"]
    back = geo.to_wgs84(bd["lat"], bd["lng"], "bd09")
    assert geo.geodesic_m(back, geo.Point(stored.lat, stored.lng)) < 0.05


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"opening_hours": "Mo-Fr 25:00-26:00"}, "opening_hours"),
        ({"opening_hours": "whenever"}, "opening_hours"),
        ({"lat": 91}, "lat"),
        ({"lng": -180.5}, "lng"),
        ({"kind": "castle"}, "kind"),
        ({"coord": "mars"}, "coord"),
        ({"name": "   "}, "name"),
        ({"attributes": {"gender": "unisex"}}, "attributes.gender"),
        ({"attributes": {"sauna": True}}, "attributes.sauna"),
        ({"photos": ["not a url"]}, "photos.0"),
        ({"operator_id": "nobody"}, "operator_id"),
    ],
)
async def test_bad_venues_are_refused_naming_the_field(client, changes, field):
    headers = await headers_for(client, Role.BUREAU_ADMIN)
    response = await client.post("/api/v1/venues", headers=headers, json={**TOILET, **changes})
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["fields"], response.json()
    assert await Venue.all().count() == 0


async def test_parking_attributes_are_checked(client, ctx):
    headers = await headers_for(client, Role.BUREAU_ADMIN)
    base = {**TOILET, "kind": "parking_lot", "name": "滨湖停车场", "opening_hours": "24/7"}
    future = (ctx.clock.now() + timedelta(hours=1)).isoformat()
    cases = [
        (
            {"capacity": 10, "free_spaces": 11, "observed_at": ctx.clock.now().isoformat()},
            "attributes",
        ),
        ({"capacity": 10, "free_spaces": 3, "observed_at": future}, "attributes.observed_at"),
        ({"capacity": -1}, "attributes.capacity"),
        ({"max_height_m": 0}, "attributes.max_height_m"),
    ]
    for attributes, field in cases:
        response = await client.post(
            "/api/v1/venues", headers=headers, json={**base, "attributes": attributes}
        )
        assert response.status_code == 400, (attributes, response.text)
        assert field in response.json()["error"]["fields"], response.json()
    observed = ctx.clock.now() - timedelta(minutes=2)
    created = await create(
        client,
        headers,
        **{
            **base,
            "attributes": {
                "capacity": 200,
                "accessible_spaces": 4,
                "free_spaces": 120,
                "observed_at": observed.isoformat(),
            },
        },
    )
    assert created["accessible"] is True  # accessible spaces make a lot accessible
    assert created["parking_state"] == "many"
    assert created["stale"] is False


@pytest.mark.parametrize(
    "role", [Role.RESIDENT, Role.STREET_WORKER, Role.VENUE_OPERATOR, Role.CURATOR, Role.VENDOR]
)
async def test_only_the_bureau_creates_and_closes(client, role):
    headers = await headers_for(client, role)
    response = await client.post("/api/v1/venues", headers=headers, json=TOILET)
    assert response.status_code == 403
    venue = await create(client, await headers_for(client, Role.BUREAU_ADMIN))
    response = await client.post(
        f"/api/v1/venues/{venue['id']}/close", headers=headers, json={"reason": "维修"}
    )
    assert response.status_code == 403
    assert (await Venue.get(public_id=venue["id"])).status == VenueStatus.OPEN


async def test_anonymous_writes_are_refused(client):
    assert (await client.post("/api/v1/venues", json=TOILET)).status_code == 401
    assert (await client.patch("/api/v1/venues/x", json={"name": "n"})).status_code == 401


async def test_operators_edit_only_their_own_venues(client):
    admin = await headers_for(client, Role.BUREAU_ADMIN)
    operator = await make_user(Role.VENUE_OPERATOR)
    other = await make_user(Role.VENUE_OPERATOR)
    own = await create(client, admin, operator_id=operator.public_id)
    theirs = await create(client, admin, operator_id=other.public_id)
    headers = await sign_in(client, operator)
    response = await client.patch(
        f"/api/v1/venues/{own['id']}",
        headers=headers,
        json={"description": "新增母婴室", "attributes": {"open_24h": True}},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["description"] == "新增母婴室"
    assert body["attributes"]["open_24h"] is True
    assert body["attributes"]["baby_change"] is True  # merged, not replaced
    response = await client.patch(
        f"/api/v1/venues/{theirs['id']}", headers=headers, json={"description": "x"}
    )
    assert response.status_code == 403
    response = await client.patch(
        f"/api/v1/venues/{own['id']}", headers=headers, json={"operator_id": other.public_id}
    )
    assert response.status_code == 403
    response = await client.patch(
        f"/api/v1/venues/{own['id']}", headers=headers, json={"opening_hours": "sometimes"}
    )
    assert response.status_code == 400
    assert "opening_hours" in response.json()["error"]["fields"]
    assert (await Venue.get(public_id=own["id"])).opening_hours == TOILET["opening_hours"]


async def test_patch_moves_a_venue_and_requires_both_coordinates(client):
    admin = await headers_for(client, Role.BUREAU_ADMIN)
    venue = await create(client, admin)
    response = await client.patch(f"/api/v1/venues/{venue['id']}", headers=admin, json={"lat": 31})
    assert response.status_code == 400
    response = await client.patch(
        f"/api/v1/venues/{venue['id']}", headers=admin, json={"lat": 31.83, "lng": 117.25}
    )
    assert response.status_code == 200
    assert response.json()["location"] == {"lat": 31.83, "lng": 117.25}
    assert await IndexOutbox.filter(venue_public_id=venue["id"]).count() == 2


async def test_closing_and_removing(client, ctx):
    ctx.clock.set(WEDNESDAY_10AM)
    admin = await headers_for(client, Role.BUREAU_ADMIN)
    venue = await create(client, admin)
    response = await client.post(
        f"/api/v1/venues/{venue['id']}/close", headers=admin, json={"reason": "管道维修"}
    )
    assert response.status_code == 200
    shown = (await client.get(f"/api/v1/venues/{venue['id']}")).json()
    assert shown["status"] == "temporarily_closed"
    assert shown["closed_reason"] == "管道维修"
    assert shown["open_now"] is False and shown["next_change"] is None
    response = await client.post(f"/api/v1/venues/{venue['id']}/reopen", headers=admin)
    assert response.json()["open_now"] is True
    response = await client.post(f"/api/v1/venues/{venue['id']}/close", headers=admin, json={})
    assert response.status_code == 400 and "reason" in response.json()["error"]["fields"]
    response = await client.post(
        f"/api/v1/venues/{venue['id']}/close",
        headers=admin,
        json={"reason": "已拆除", "permanent": True},
    )
    assert response.json()["status"] == "removed"
    assert (await client.get(f"/api/v1/venues/{venue['id']}")).status_code == 404
    entry = await AuditEntry.get(action="venue.remove")
    assert entry.reason == "已拆除"


async def test_unknown_venue_is_404(client):
    response = await client.get("/api/v1/venues/does-not-exist")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "venue_not_found"


async def test_the_venue_and_its_outbox_row_commit_together(client, monkeypatch):
    from venues import outbox

    async def broken(**kwargs):
        raise RuntimeError("outbox unavailable")

    headers = await headers_for(client, Role.BUREAU_ADMIN)
    monkeypatch.setattr(outbox, "enqueue", broken)
    response = await client.post("/api/v1/venues", headers=headers, json=TOILET)
    assert response.status_code == 500
    assert await Venue.all().count() == 0
    assert await AuditEntry.filter(action="venue.create").count() == 0
