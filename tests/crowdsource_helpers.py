"""Helpers for the crowdsourcing tests: campaigns through the API, many residents at once."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta
from typing import Any

import httpx
from stdnum.cn import uscc

from backend.context import AppContext
from backend.models import Role, User, new_public_id
from backend.security import encode_access_token
from crowdsource.challenges.models import Vendor, VendorMember, VendorStatus

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
    """A campaign created through the API (201 asserted).

    Post-moderated unless told otherwise, so the tests of other rules can vote on and list what
    they have just submitted; tests/test_crowdsource_moderation_policy.py covers both policies
    and the product's default (pre-moderation).
    """
    body = {"title": "2026 年城市痛难点征集", "description": "说出你身边的难题"}
    body |= schedule(ctx, **(hours or {}))
    body |= {"moderation": "post"} | fields
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


async def vendor_member(
    ctx: AppContext,
    *,
    status: VendorStatus = VendorStatus.VERIFIED,
    name: str | None = None,
    vendor: Vendor | None = None,
) -> tuple[dict[str, str], Vendor]:
    """Headers of a vendor account that is a member of a vendor (verified by default)."""
    n = next(_seq)
    if vendor is None:
        base = f"9134010{n:010d}"
        vendor = await Vendor.create(
            name=name or f"合肥示例科技有限公司{n}",
            uscc=base + uscc.calc_check_digit(base),
            contact_name="王经理",
            contact_phone="13800138000",
            status=status,
            created_at=ctx.clock.now(),
            verified_at=ctx.clock.now() if status == VendorStatus.VERIFIED else None,
        )
    user = await User.create(role=Role.VENDOR, username=f"member{n}", display_name=f"成员{n}")
    await VendorMember.create(vendor=vendor, user=user, created_at=ctx.clock.now())
    return token_headers(ctx, user), vendor
