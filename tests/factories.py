"""Factories for accounts and signed-in clients."""

from __future__ import annotations

import itertools

import httpx

from backend.models import Role, User
from backend.security import hash_password

PASSWORD = "correct-horse-battery"  # noqa: S105 - test fixture
_seq = itertools.count(1)
_HASH = hash_password(PASSWORD)


async def make_user(
    role: Role, *, username: str | None = None, street: str | None = None, active: bool = True
) -> User:
    """A staff account with the shared test password (residents get an openid instead)."""
    n = next(_seq)
    if role == Role.RESIDENT:
        return await User.create(role=role, wechat_openid=f"o-factory-{n}", display_name=f"居民{n}")
    return await User.create(
        role=role,
        username=username or f"{role.value}{n}",
        password_hash=_HASH,
        street_code=street or ("340104011" if role == Role.STREET_WORKER else None),
        is_active=active,
        display_name=f"{role.value}-{n}",
    )


async def sign_in(client: httpx.AsyncClient, user: User) -> dict[str, str]:
    """Authorization headers for this user, through the real sign-in endpoints."""
    if user.role == Role.RESIDENT:
        assert user.wechat_openid
        # Demo sign-in derives the openid from the name: use the stub for real openids.
        response = await client.post(
            "/api/v1/auth/wechat", json={"code": f"ok-{user.wechat_openid[2:]}"}
        )
    else:
        response = await client.post(
            "/api/v1/auth/login", json={"username": user.username, "password": PASSWORD}
        )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def headers_for(client: httpx.AsyncClient, role: Role) -> dict[str, str]:
    return await sign_in(client, await make_user(role))
