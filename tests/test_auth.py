"""Sign-in paths and their failures, token expiry, refresh rotation and reuse detection, logout."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from backend.auth.wechat import WeChatClient
from backend.models import RefreshToken, Role, User
from tests.factories import PASSWORD, make_user, sign_in


async def wechat(client: httpx.AsyncClient, code: str) -> httpx.Response:
    return await client.post("/api/v1/auth/wechat", json={"code": code})


# --- WeChat ---------------------------------------------------------------------------------


async def test_wechat_sign_in_creates_resident_and_answers_token_shape(client, wechat_calls):
    response = await wechat(client, "ok-alice")
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"access_token", "refresh_token", "token_type", "expires_in", "user"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 900
    assert body["user"]["role"] == "resident"
    call = wechat_calls[-1]
    assert call["js_code"] == "ok-alice"
    assert call["grant_type"] == "authorization_code"
    user = await User.get(public_id=body["user"]["id"])
    assert user.wechat_openid == "o-alice"

    again = await wechat(client, "ok-alice")
    assert again.json()["user"]["id"] == body["user"]["id"]
    assert await User.filter(role=Role.RESIDENT).count() == 1


async def test_wechat_unionid_is_kept(client):
    response = await wechat(client, "union-bob")
    assert response.status_code == 200
    user = await User.get(public_id=response.json()["user"]["id"])
    assert user.wechat_unionid == "u-bob"


@pytest.mark.parametrize(
    ("code", "status", "error_code"),
    [
        ("invalid", 400, "wechat_code_invalid"),
        ("used", 400, "wechat_code_invalid"),
        ("limited", 429, "wechat_rate_limited"),
        ("busy", 503, "wechat_busy"),
        ("risky", 403, "wechat_user_blocked"),
        ("crash", 503, "wechat_unavailable"),
        ("garbage", 503, "wechat_bad_answer"),
        ("slow", 503, "wechat_unavailable"),
    ],
)
async def test_wechat_errors_become_clear_answers(client, code, status, error_code):
    response = await wechat(client, code)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == error_code
    if status == 429:
        assert int(response.headers["Retry-After"]) > 0
    assert await User.filter(role=Role.RESIDENT).count() == 0


async def test_wechat_unreachable_is_503(client, ctx):
    original = ctx.wechat
    async with httpx.AsyncClient(timeout=1) as http:
        ctx.wechat = WeChatClient(base_url="http://127.0.0.1:9", appid="a", secret="s", http=http)
        try:
            response = await wechat(client, "ok-carol")
        finally:
            ctx.wechat = original
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "wechat_unavailable"


async def test_wechat_code_is_required(client):
    response = await client.post("/api/v1/auth/wechat", json={})
    assert response.status_code == 400
    assert response.json()["error"]["fields"] == {"code": "Field required"}
    response = await client.post("/api/v1/auth/wechat", json={"code": "ok-x", "extra": 1})
    assert response.status_code == 400
    assert "extra" in response.json()["error"]["fields"]


async def test_demo_sign_in_and_its_switch(client, ctx):
    response = await wechat(client, "dev:小明")
    assert response.status_code == 200
    assert response.json()["user"]["display_name"] == "小明"
    assert (await wechat(client, "dev:小明")).json()["user"]["id"] == response.json()["user"]["id"]
    assert (await wechat(client, "dev:")).status_code == 400

    original = ctx.settings
    ctx.settings = original.model_copy(update={"demo_signin": False})
    try:
        refused = await wechat(client, "dev:小明")
    finally:
        ctx.settings = original
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "demo_signin_disabled"


# --- password -------------------------------------------------------------------------------


async def login(client: httpx.AsyncClient, username: str, password: str) -> httpx.Response:
    return await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )


async def test_password_sign_in(client):
    user = await make_user(Role.CURATOR, username="curator-a")
    response = await login(client, "curator-a", PASSWORD)
    assert response.status_code == 200, response.text
    assert response.json()["user"] == {
        "id": user.public_id,
        "role": "curator",
        "display_name": user.display_name,
        "username": "curator-a",
        "street_code": None,
    }
    stored = await User.get(id=user.id)
    assert stored.password_hash and stored.password_hash.startswith("$argon2id$")
    assert stored.last_login_at is not None


async def test_password_failures_look_alike(client):
    await make_user(Role.CURATOR, username="curator-b")
    await make_user(Role.JUDGE, username="judge-off", active=False)
    for username, password in (
        ("curator-b", "wrong-password"),
        ("nobody", PASSWORD),
        ("judge-off", PASSWORD),
    ):
        response = await login(client, username, password)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "invalid_credentials"


async def test_lockout_after_repeated_failures(client, ctx):
    """Deterministic: the windows run on the app clock, which the test moves (no sleeping, so a
    slow password check on a loaded machine cannot let the window run out mid-test)."""
    await make_user(Role.BUREAU_ADMIN, username="admin-x")
    original = ctx.settings
    ctx.settings = original.model_copy(
        update={"login_max_failures": 3, "login_lockout_seconds": 600}
    )
    try:
        for _ in range(3):
            assert (await login(client, "admin-x", "nope-nope-nope")).status_code == 401
        locked = await login(client, "admin-x", PASSWORD)
        assert locked.status_code == 429
        assert locked.json()["error"]["code"] == "login_locked"
        wait = int(locked.headers["Retry-After"])
        assert 1 <= wait <= 2 * 600
        ctx.clock.advance(wait - 2)
        assert (await login(client, "admin-x", PASSWORD)).status_code == 429  # not yet
        ctx.clock.advance(2)
        assert (await login(client, "admin-x", PASSWORD)).status_code == 200
        # success resets the count
        for _ in range(2):
            assert (await login(client, "admin-x", "nope-nope-nope")).status_code == 401
        assert (await login(client, "admin-x", PASSWORD)).status_code == 200
        for _ in range(3):
            assert (await login(client, "admin-x", "nope-nope-nope")).status_code == 401
        assert (await login(client, "admin-x", PASSWORD)).status_code == 429
    finally:
        ctx.settings = original


async def test_lockout_is_per_account(client, ctx):
    await make_user(Role.CURATOR, username="c1")
    await make_user(Role.CURATOR, username="c2")
    original = ctx.settings
    ctx.settings = original.model_copy(update={"login_max_failures": 2})
    try:
        for _ in range(2):
            await login(client, "c1", "bad-password!")
        assert (await login(client, "c1", PASSWORD)).status_code == 429
        assert (await login(client, "c2", PASSWORD)).status_code == 200
    finally:
        ctx.settings = original


# --- tokens ---------------------------------------------------------------------------------


async def test_access_token_expires(client, ctx):
    headers = await sign_in(client, await make_user(Role.CURATOR))
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 200
    ctx.clock.advance(ctx.settings.access_token_ttl + 1)
    response = await client.get("/api/v1/me", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "token_expired"


@pytest.mark.parametrize(
    "header",
    ["Bearer not-a-jwt", "Basic abc", "Bearer ", "Token x"],
)
async def test_bad_authorization_headers(client, header):
    response = await client.get("/api/v1/me", headers={"Authorization": header})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_token"


async def test_tampered_token_is_refused(client):
    headers = await sign_in(client, await make_user(Role.CURATOR))
    token = headers["Authorization"].split()[1]
    head, payload, signature = token.split(".")
    forged = f"{head}.{payload}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {forged}"})
    assert response.status_code == 401


async def test_tokens_are_signed_with_the_token_key_not_the_secret(client, ctx):
    from backend.security import encode_access_token

    user = await make_user(Role.CURATOR)
    for key, status in ((ctx.settings.jwt_secret, 401), (ctx.settings.token_key, 200)):
        token, _ = encode_access_token(
            secret=key,
            user_id=user.public_id,
            role=user.role.value,
            session="s-" + str(status),
            street=None,
            ttl=60,
            now=min(time.time(), ctx.clock.time()),
        )
        response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == status, response.text


async def test_me_requires_sign_in(client):
    response = await client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"


async def test_refresh_rotates_and_detects_reuse(client):
    first = (await wechat(client, "ok-dave")).json()
    rotated = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert rotated.status_code == 200, rotated.text
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert second["user"]["id"] == first["user"]["id"]
    new_headers = {"Authorization": f"Bearer {second['access_token']}"}
    assert (await client.get("/api/v1/me", headers=new_headers)).status_code == 200

    # The old token again: reuse. The whole family is revoked.
    reused = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reused.status_code == 401
    assert reused.json()["error"]["code"] == "refresh_token_reused"
    after = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert after.status_code == 401
    assert after.json()["error"]["code"] == "session_revoked"
    me = await client.get("/api/v1/me", headers=new_headers)
    assert me.status_code == 401
    assert me.json()["error"]["code"] == "session_revoked"


async def test_reuse_does_not_touch_other_sessions(client):
    one = (await wechat(client, "ok-erin")).json()
    other = (await wechat(client, "ok-erin")).json()
    await client.post("/api/v1/auth/refresh", json={"refresh_token": one["refresh_token"]})
    await client.post("/api/v1/auth/refresh", json={"refresh_token": one["refresh_token"]})
    still = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]}
    )
    assert still.status_code == 200


async def test_concurrent_refresh_with_one_token_succeeds_once(client):
    tokens = (await wechat(client, "ok-frank")).json()
    responses = await asyncio.gather(
        *(
            client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
            for _ in range(10)
        )
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses.count(200) == 1
    assert statuses.count(401) == 9


async def test_refresh_token_expiry_and_unknown_token(client, ctx):
    tokens = (await wechat(client, "ok-gina")).json()
    ctx.clock.advance(ctx.settings.refresh_token_ttl + 1)
    expired = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "refresh_token_expired"
    unknown = await client.post("/api/v1/auth/refresh", json={"refresh_token": "made-up"})
    assert unknown.status_code == 401
    assert unknown.json()["error"]["code"] == "invalid_refresh_token"


async def test_refresh_tokens_are_stored_hashed(client):
    tokens = (await wechat(client, "ok-hank")).json()
    stored = await RefreshToken.all().values_list("token_hash", flat=True)
    assert tokens["refresh_token"] not in stored
    assert all(len(h) == 64 for h in stored)


async def test_logout_ends_the_session(client):
    tokens = (await wechat(client, "ok-ivy")).json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    response = await client.post(
        "/api/v1/auth/logout", headers=headers, json={"refresh_token": tokens["refresh_token"]}
    )
    assert response.status_code == 204
    assert (await client.get("/api/v1/me", headers=headers)).status_code == 401
    refresh = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refresh.status_code == 401
    assert refresh.json()["error"]["code"] == "session_revoked"
    assert (await client.post("/api/v1/auth/logout", json={})).status_code == 401
