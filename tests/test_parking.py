"""Live parking availability published by operators with their API key."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx

from backend.clock import SHANGHAI
from backend.models import Role, User
from tests.factories import headers_for, make_user, sign_in
from venues.models import ParkingObservation, Venue

NOW = datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI)
LOT = {
    "kind": "parking_lot",
    "name": "天鹅湖停车场",
    "lat": 31.8206,
    "lng": 117.2272,
    "opening_hours": "24/7",
    "attributes": {"capacity": 100, "ev_chargers": 6, "price_text": "首小时 5 元"},
}


async def api_key_for(client: httpx.AsyncClient, admin: dict, operator: User) -> dict:
    response = await client.post(
        f"/api/v1/admin/users/{operator.public_id}/api-keys", headers=admin, json={"name": "闸机"}
    )
    assert response.status_code == 201, response.text
    return {"X-Api-Key": response.json()["key"]}


async def setup(client, ctx, **lot):
    ctx.clock.set(NOW)
    admin = await sign_in(client, await make_user(Role.BUREAU_ADMIN))
    operator = await make_user(Role.VENUE_OPERATOR)
    response = await client.post(
        "/api/v1/venues", headers=admin, json={**LOT, **lot, "operator_id": operator.public_id}
    )
    assert response.status_code == 201, response.text
    return admin, operator, response.json()["id"], await api_key_for(client, admin, operator)


def at(minutes: float) -> str:
    return (NOW + timedelta(minutes=minutes)).isoformat()


async def test_operator_publishes_in_order_and_history_is_kept(client, ctx):
    _, _, lot, key = await setup(client, ctx)
    url = f"/api/v1/parking/{lot}/availability"
    response = await client.put(url, headers=key, json={"free_spaces": 40, "observed_at": at(-2)})
    assert response.status_code == 200, response.text
    assert response.json()["parking_state"] == "many"
    assert response.json()["stale"] is False
    response = await client.put(url, headers=key, json={"free_spaces": 3, "observed_at": at(-1)})
    assert response.json()["parking_state"] == "few"
    shown = (await client.get(f"/api/v1/venues/{lot}")).json()
    assert shown["attributes"]["free_spaces"] == 3
    assert shown["parking_state"] == "few"
    # Older or equal timestamps are refused and change nothing.
    for stamp in (at(-1), at(-5)):
        response = await client.put(url, headers=key, json={"free_spaces": 9, "observed_at": stamp})
        assert response.status_code == 409
        assert "observed_at" in response.json()["error"]["fields"]
    history = await ParkingObservation.filter(venue__public_id=lot).order_by("observed_at")
    assert [h.free_spaces for h in history] == [40, 3]
    chart = (await client.get(url)).json()
    assert chart["capacity"] == 100
    assert [p["free_spaces"] for p in chart["items"]] == [40, 3]
    assert chart["items"][0]["observed_at"] == (NOW - timedelta(minutes=2)).isoformat()
    # The live figures are not edited through PATCH (that would skip the ordering and history).
    response = await client.patch(
        f"/api/v1/venues/{lot}",
        headers=key,
        json={"attributes": {"free_spaces": 99, "ev_chargers": 8}},
    )
    assert response.status_code == 400
    assert "attributes.free_spaces" in response.json()["error"]["fields"]
    # Other attributes are merged into the current ones, live figures kept.
    response = await client.patch(
        f"/api/v1/venues/{lot}", headers=key, json={"attributes": {"ev_chargers": 8}}
    )
    assert response.status_code == 200, response.text
    assert response.json()["attributes"]["free_spaces"] == 3
    assert response.json()["attributes"]["ev_chargers"] == 8
    # Twenty minutes later nobody has published: the figure is stale.
    ctx.clock.set(NOW + timedelta(minutes=20))
    shown = (await client.get(f"/api/v1/venues/{lot}")).json()
    assert shown["stale"] is True and shown["parking_state"] == "unknown"


async def test_bad_availability_names_the_field(client, ctx):
    _, _, lot, key = await setup(client, ctx)
    url = f"/api/v1/parking/{lot}/availability"
    cases = [
        ({"free_spaces": 1, "observed_at": at(10)}, 400, "observed_at"),
        ({"free_spaces": 1, "observed_at": "2026-11-18T09:00:00"}, 400, "observed_at"),
        ({"free_spaces": 101, "observed_at": at(-1)}, 400, "free_spaces"),
        ({"free_spaces": -1, "observed_at": at(-1)}, 400, "free_spaces"),
        ({"observed_at": at(-1)}, 400, "free_spaces"),
    ]
    for body, status, field in cases:
        response = await client.put(url, headers=key, json=body)
        assert response.status_code == status, (body, response.text)
        assert field in response.json()["error"]["fields"], response.json()
    assert await ParkingObservation.all().count() == 0


async def test_only_the_lot_s_operator_publishes(client, ctx):
    admin, _, lot, _ = await setup(client, ctx)
    other = await make_user(Role.VENUE_OPERATOR)
    other_key = await api_key_for(client, admin, other)
    body = {"free_spaces": 1, "observed_at": at(-1)}
    response = await client.put(f"/api/v1/parking/{lot}/availability", headers=other_key, json=body)
    assert response.status_code == 403
    response = await client.put(f"/api/v1/parking/{lot}/availability", json=body)
    assert response.status_code == 401
    resident = await headers_for(client, Role.RESIDENT)
    response = await client.put(f"/api/v1/parking/{lot}/availability", headers=resident, json=body)
    assert response.status_code == 403
    response = await client.put(
        f"/api/v1/parking/{lot}/availability", headers={"X-Api-Key": "sc_bad_key"}, json=body
    )
    assert response.status_code == 401
    toilet = await client.post(
        "/api/v1/venues", headers=admin, json={**LOT, "kind": "public_toilet", "attributes": {}}
    )
    response = await client.put(
        f"/api/v1/parking/{toilet.json()['id']}/availability", headers=other_key, json=body
    )
    assert response.status_code == 404
    assert (await Venue.get(public_id=lot)).attributes.get("free_spaces") is None


async def test_the_staleness_age_is_a_setting(client, ctx):
    _, _, lot, key = await setup(client, ctx)
    url = f"/api/v1/parking/{lot}/availability"
    published = await client.put(url, headers=key, json={"free_spaces": 30, "observed_at": at(0)})
    assert published.status_code == 200, published.text
    if ctx.elastic is not None:  # services: the index holds this test's venues
        from search.index import reindex

        await reindex(ctx)
    ctx.clock.set(NOW + timedelta(minutes=6))
    search = {"lat": LOT["lat"], "lng": LOT["lng"], "kind": "parking_lot"}

    async def shown() -> tuple[dict, dict]:
        one = (await client.get(f"/api/v1/venues/{lot}")).json()
        hit = (await client.get("/api/v1/venues/search", params=search)).json()["items"][0]
        return one, hit

    for view in await shown():  # the default is 15 minutes
        assert view["stale"] is False and view["parking_state"] == "many"
    original = ctx.settings
    ctx.settings = original.model_copy(update={"parking_stale_minutes": 5})
    try:
        for view in await shown():
            assert view["stale"] is True and view["parking_state"] == "unknown"
    finally:
        ctx.settings = original
