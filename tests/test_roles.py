"""Roles: every route declares its callers (default deny), each role refused where it must be."""

from __future__ import annotations

import pytest
from sanic import Sanic

from backend.access import ACCESS_ATTR, check_every_route_declared
from backend.methods import is_automatic
from backend.models import ApiKey, AuditEntry, Role, User
from server.app import create_app
from tests.factories import headers_for, make_user, sign_in

NON_ADMIN_ROLES = [r for r in Role if r != Role.BUREAU_ADMIN]
ADMIN_ROUTES = [
    (
        "POST",
        "/api/v1/admin/users",
        {"username": "x-user", "password": "long-enough-pw", "role": "judge"},
    ),
    ("GET", "/api/v1/admin/users", None),
    ("POST", "/api/v1/admin/users/someone/deactivate", None),
    ("POST", "/api/v1/admin/users/someone/api-keys", {"name": "k"}),
    ("DELETE", "/api/v1/admin/api-keys/some-key", None),
]


@pytest.mark.parametrize("role", NON_ADMIN_ROLES, ids=lambda r: r.value)
async def test_admin_routes_refuse_every_other_role(client, role):
    headers = await headers_for(client, role)
    for method, path, body in ADMIN_ROUTES:
        response = await client.request(method, path, headers=headers, json=body)
        assert response.status_code == 403, (method, path, response.text)
        assert response.json()["error"]["code"] == "forbidden"
    assert await User.filter(username="x-user").count() == 0


async def test_admin_routes_refuse_anonymous(client):
    for method, path, body in ADMIN_ROUTES:
        response = await client.request(method, path, json=body)
        assert response.status_code == 401, (method, path)


async def test_admin_creates_accounts_with_audit(client):
    admin = await make_user(Role.BUREAU_ADMIN)
    headers = await sign_in(client, admin)
    response = await client.post(
        "/api/v1/admin/users",
        headers=headers,
        json={
            "username": "worker-1",
            "password": "long-enough-pw",
            "role": "street_worker",
            "street_code": "340104011",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["street_code"] == "340104011"
    entry = await AuditEntry.get(action="user.create")
    assert entry.actor == admin.public_id
    assert entry.object_id == response.json()["id"]
    login = await client.post(
        "/api/v1/auth/login", json={"username": "worker-1", "password": "long-enough-pw"}
    )
    assert login.status_code == 200
    assert login.json()["user"]["street_code"] == "340104011"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"username": "w22", "password": "long-enough-pw", "role": "street_worker"}, "street_code"),
        ({"username": "r11", "password": "long-enough-pw", "role": "resident"}, "role"),
        ({"username": "s11", "password": "short", "role": "judge"}, "password"),
        ({"username": "bad name!", "password": "long-enough-pw", "role": "judge"}, "username"),
        ({"username": "s22", "password": "long-enough-pw", "role": "king"}, "role"),
    ],
)
async def test_account_validation_names_the_field(client, body, field):
    headers = await headers_for(client, Role.BUREAU_ADMIN)
    response = await client.post("/api/v1/admin/users", headers=headers, json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["fields"]


async def test_duplicate_username_is_409(client):
    headers = await headers_for(client, Role.BUREAU_ADMIN)
    body = {"username": "dup", "password": "long-enough-pw", "role": "judge"}
    assert (await client.post("/api/v1/admin/users", headers=headers, json=body)).status_code == 201
    second = await client.post("/api/v1/admin/users", headers=headers, json=body)
    assert second.status_code == 409
    assert second.json()["error"]["fields"] == {"username": "taken"}


async def test_operator_api_keys(client):
    admin_headers = await headers_for(client, Role.BUREAU_ADMIN)
    operator = await make_user(Role.VENUE_OPERATOR)
    created = await client.post(
        f"/api/v1/admin/users/{operator.public_id}/api-keys",
        headers=admin_headers,
        json={"name": "停车场数据推送"},
    )
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert key.startswith("sc_")
    stored = await ApiKey.get(public_id=created.json()["id"])
    assert stored.key_hash != key and key not in stored.key_hash

    ok = await client.get("/api/v1/operator/me", headers={"X-Api-Key": key})
    assert ok.status_code == 200
    assert ok.json()["id"] == operator.public_id

    wrong = await client.get("/api/v1/operator/me", headers={"X-Api-Key": key + "x"})
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"

    # A key is not a sign-in for routes that do not accept keys.
    assert (await client.get("/api/v1/me", headers={"X-Api-Key": key})).status_code == 401

    resident = await headers_for(client, Role.RESIDENT)
    assert (await client.get("/api/v1/operator/me", headers=resident)).status_code == 403

    revoked = await client.delete(
        f"/api/v1/admin/api-keys/{created.json()['id']}", headers=admin_headers
    )
    assert revoked.status_code == 204
    after = await client.get("/api/v1/operator/me", headers={"X-Api-Key": key})
    assert after.status_code == 401
    again = await client.delete(
        f"/api/v1/admin/api-keys/{created.json()['id']}", headers=admin_headers
    )
    assert again.status_code == 404


async def test_api_keys_only_for_operators(client):
    headers = await headers_for(client, Role.BUREAU_ADMIN)
    judge = await make_user(Role.JUDGE)
    response = await client.post(
        f"/api/v1/admin/users/{judge.public_id}/api-keys", headers=headers, json={}
    )
    assert response.status_code == 400
    assert "user" in response.json()["error"]["fields"]
    missing = await client.post("/api/v1/admin/users/nobody/api-keys", headers=headers, json={})
    assert missing.status_code == 404


async def test_deactivation_ends_sessions_and_keys(client):
    admin_headers = await headers_for(client, Role.BUREAU_ADMIN)
    curator = await make_user(Role.CURATOR)
    headers = await sign_in(client, curator)
    response = await client.post(
        f"/api/v1/admin/users/{curator.public_id}/deactivate", headers=admin_headers
    )
    assert response.status_code == 200
    me = await client.get("/api/v1/me", headers=headers)
    assert me.status_code == 401
    assert me.json()["error"]["code"] == "session_revoked"
    login = await client.post(
        "/api/v1/auth/login",
        json={"username": curator.username, "password": "correct-horse-battery"},
    )
    assert login.status_code == 401


def test_every_route_of_the_app_declares_its_callers(app):
    declared = 0
    for route in app.router.routes:
        if is_automatic(route):
            continue
        declared += 1
        assert getattr(route.handler, ACCESS_ATTR, None) is not None, route.path
    assert declared >= 10


def test_a_route_without_declaration_stops_start_up(app, settings):
    other = create_app(settings)

    @other.get("/api/v1/undeclared")
    async def undeclared(request):  # pragma: no cover - never served
        return None

    other.router.finalize()
    with pytest.raises(RuntimeError, match="undeclared"):
        check_every_route_declared(other)
    Sanic._app_registry[app.name] = app


async def test_head_answers_as_get_does_and_options_lists_the_methods(app, client):
    """HEAD runs the GET handler (the same check of the caller, the same status); OPTIONS
    names the path's methods. Every GET path has HEAD, every path OPTIONS."""
    for path in ("/api/v1/me", "/api/v1/admin/users"):
        head = await client.head(path)
        assert head.status_code == 401 == (await client.get(path)).status_code
    admin = await sign_in(client, await make_user(role=Role.BUREAU_ADMIN))
    head = await client.head("/api/v1/admin/users", headers=admin)
    assert head.status_code == 200 and head.headers["content-type"].startswith("application/json")
    health = await client.head("/api/v1/health")
    assert health.status_code == 200
    options = await client.options("/api/v1/admin/users")
    assert options.status_code == 204
    assert options.headers["allow"] == "GET,HEAD,POST,OPTIONS"
    for group in app.router.groups.values():
        assert "OPTIONS" in group.methods, group.uri
        assert "GET" not in group.methods or "HEAD" in group.methods, group.uri
