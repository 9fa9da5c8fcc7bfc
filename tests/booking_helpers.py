"""Helpers for the booking tests: a court venue with its operator, units and residents."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from backend.clock import SHANGHAI
from backend.context import AppContext
from backend.models import Role, User
from tests.crowdsource_helpers import many_users, token_headers
from tests.factories import make_user, sign_in
from venues.bookings.settings import BOOKING_SETTINGS, BookingSettings, Policy

# Monday 2026-11-23, 09:05 in Hefei.
NOW = datetime(2026, 11, 23, 9, 5, tzinfo=SHANGHAI)
TEMPLATES = {
    "confirmed": "tpl-confirmed",
    "cancelled": "tpl-cancelled",
    "reminder": "tpl-reminder",
    "waitlist_offer": "tpl-waitlist",
}
COURT = {
    "kind": "sports_venue",
    "name": "天鹅湖羽毛球馆",
    "lat": 31.8206,
    "lng": 117.2272,
    "opening_hours": "Mo-Su 08:00-12:00,14:00-22:00",
    "attributes": {"sports": ["羽毛球"]},
}


def at(hour: int, minute: int = 0, *, days: int = 0) -> str:
    """A local time on the test day (or ``days`` later), as ISO 8601 with offset."""
    moment = NOW.replace(hour=hour, minute=minute) + timedelta(days=days)
    return moment.isoformat()


def use_settings(ctx: AppContext, **policy: Any) -> BookingSettings:
    """Booking settings for one test: WeChat templates on, fast retries, policy overrides."""
    settings = BookingSettings(
        policy=Policy(**policy), templates=TEMPLATES, retry_base_seconds=10, max_attempts=4
    )
    ctx.provide(BOOKING_SETTINGS, settings)
    return settings


@dataclass
class Site:
    admin: dict[str, str]
    operator: User
    operator_headers: dict[str, str]
    key: dict[str, str]
    venue_id: str
    units: list[dict[str, Any]] = field(default_factory=list)


async def make_site(
    client: httpx.AsyncClient,
    ctx: AppContext,
    *,
    units: int = 1,
    venue: dict[str, Any] | None = None,
    rules: dict[str, Any] | None = None,
    **policy: Any,
) -> Site:
    """A court venue (through the API) with its operator, an API key and ``units`` courts."""
    ctx.clock.set(NOW)
    use_settings(ctx, **policy)
    admin = await sign_in(client, await make_user(Role.BUREAU_ADMIN))
    operator = await make_user(Role.VENUE_OPERATOR)
    response = await client.post(
        "/api/v1/venues",
        headers=admin,
        json={**COURT, **(venue or {}), "operator_id": operator.public_id},
    )
    assert response.status_code == 201, response.text
    venue_id = response.json()["id"]
    response = await client.post(
        f"/api/v1/admin/users/{operator.public_id}/api-keys", headers=admin, json={"name": "前台"}
    )
    assert response.status_code == 201, response.text
    site = Site(
        admin=admin,
        operator=operator,
        operator_headers=token_headers(ctx, operator),
        key={"X-Api-Key": response.json()["key"]},
        venue_id=venue_id,
    )
    for n in range(units):
        body = {"name": f"{n + 1}号场", "price_text": "每小时 30 元"} | (rules or {})
        response = await client.post(
            f"/api/v1/venues/{venue_id}/units", headers=site.key, json=body
        )
        assert response.status_code == 201, response.text
        site.units.append(response.json())
    return site


async def resident(ctx: AppContext) -> tuple[User, dict[str, str]]:
    """A resident with a WeChat openid and minted headers."""
    user = (await many_users(ctx, 1))[0]
    return user, token_headers(ctx, user)


async def book(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    unit_id: str,
    start: str,
    *,
    expect: int = 201,
    confirm: bool = True,
    **extra: Any,
) -> dict[str, Any]:
    """Hold (and by default confirm) a slot, asserting the statuses."""
    response = await client.post(
        "/api/v1/bookings", headers=headers, json={"unit_id": unit_id, "start": start, **extra}
    )
    assert response.status_code == expect, response.text
    body: dict[str, Any] = response.json()
    if expect == 201 and confirm:
        response = await client.post(f"/api/v1/bookings/{body['id']}/confirm", headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
    return body
