"""Helpers for the crowdsourcing tests: campaigns through the API, many residents at once."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from typing import Any

import httpx

from backend.context import AppContext
from backend.models import Role, User, new_public_id
from backend.security import encode_access_token

_seq = itertools.count(1)


def schedule(ctx: AppContext, **offsets_hours: float) -> dict[str, str]:
    """A campaign schedule around the test clock: collecting and voting open now by default."""
    hours = {
        "collecting_starts_at": -1.0,
        "collecting_ends_at": 24.0,
        "voting_starts_at": -1.0,
        "voting_ends_at": 48.0,
        "closes_at": 96.0,
    } | offsets_hours
    now = ctx.clock.now()
    return {name: (now + timedelta(hours=h)).isoformat() for name, h in hours.items()}


async def create_campaign(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    ctx: AppContext,
    *,
    hours: dict[str, float] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A campaign created through the API (201 asserted)."""
    body = {"title": "2026 年城市痛难点征集", "description": "说出你身边的难题"}
    body |= schedule(ctx, **(hours or {}))
    body |= fields
    response = await client.post("/api/v1/campaigns", headers=headers, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def submit(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    campaign_id: str,
    *,
    title: str | None = None,
    description: str | None = None,
    category: str = "parking",
    expect: int = 201,
    **fields: Any,
) -> dict[str, Any]:
    n = next(_seq)
    body = {
        "title": title or f"停车难问题之{n}",
        "description": description or f"小区周边停车位严重不足，晚上回家找不到车位（{n}）",
        "category": category,
    } | fields
    response = await client.post(
        f"/api/v1/campaigns/{campaign_id}/pain-points", headers=headers, json=body
    )
    assert response.status_code == expect, response.text
    return response.json()


def token_headers(ctx: AppContext, user: User) -> dict[str, str]:
    """Authorization headers minted directly (no sign-in round trip)."""
    token, _ = encode_access_token(
        secret=ctx.settings.token_key,
        user_id=user.public_id,
        role=user.role.value,
        session=new_public_id(),
        street=user.street_code,
        # PyJWT refuses an "iat" in the real future: issue at the earlier of both clocks.
        ttl=7 * 24 * 3600,
        now=min(time.time(), ctx.clock.time()),
    )
    return {"Authorization": f"Bearer {token}"}


async def many_users(ctx: AppContext, count: int, role: Role = Role.RESIDENT) -> list[User]:
    """``count`` users created in bulk directly in the database."""
    batch = next(_seq)
    users = [
        User(
            public_id=new_public_id(),
            role=role,
            wechat_openid=f"o-bulk-{batch}-{i}" if role == Role.RESIDENT else None,
            username=None if role == Role.RESIDENT else f"bulk{batch}x{i}",
            display_name=f"居民{i}",
        )
        for i in range(count)
    ]
    await User.bulk_create(users, batch_size=500)
    return await User.filter(public_id__in=[u.public_id for u in users])


async def many_headers(
    ctx: AppContext, count: int, role: Role = Role.RESIDENT
) -> list[dict[str, str]]:
    return [token_headers(ctx, u) for u in await many_users(ctx, count, role)]
