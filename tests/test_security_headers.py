"""Security headers on every response, no caching of tokens, and one request id everywhere."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
from sanic import Request, Sanic
from sanic.response import html
from sanic.response import json as json_response

from backend.access import Call, endpoint
from backend.errors import install_error_handlers
from backend.headers import DEFAULT_CSP, apply_security_headers, csp_for_inline_styles
from backend.logs import ContextFilter, JsonFormatter
from backend.models import Role
from server.app import _register_middleware
from tests.crowdsource_helpers import create_campaign, token_headers
from tests.factories import PASSWORD, make_user


def assert_framing_and_sniffing(response: httpx.Response) -> None:
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"


async def test_every_response_forbids_sniffing_and_framing(client):
    for response in (
        await client.get("/api/v1/health"),
        await client.get("/api/v1/no-such-route"),
        await client.delete("/api/v1/health"),
        await client.post("/api/v1/auth/login", json={}),
    ):
        assert_framing_and_sniffing(response)


async def test_token_responses_are_never_stored(client):
    user = await make_user(Role.CURATOR, username="no-store")
    signed = await client.post(
        "/api/v1/auth/login", json={"username": "no-store", "password": PASSWORD}
    )
    resident = await client.post("/api/v1/auth/wechat", json={"code": "dev:小明"})
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": signed.json()["refresh_token"]}
    )
    for response in (signed, resident, refreshed):
        assert response.status_code == 200, response.text
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["pragma"] == "no-cache"
    me = await client.get(
        "/api/v1/me", headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}
    )
    assert me.json()["id"] == user.public_id
    assert me.headers["cache-control"] == "no-store"  # answers to signed-in callers too
    assert "cache-control" not in (await client.get("/api/v1/health")).headers


async def test_the_booklet_page_has_a_strict_policy_of_its_own(client, ctx):
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    campaign = await create_campaign(client, curator, ctx)
    page = await client.get(f"/api/v1/campaigns/{campaign['id']}/booklet")
    assert page.status_code == 200, page.text
    assert page.headers["content-type"].startswith("text/html")
    assert_framing_and_sniffing(page)
    policy = page.headers["content-security-policy"]
    assert policy == csp_for_inline_styles(page.text)
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert "'sha256-" in policy and "unsafe-inline" not in policy and "script-src" not in policy


def test_html_without_a_policy_of_its_own_gets_the_default():
    app = Sanic("csp-probe")
    request = Request(b"/", {}, None, "GET", None, app)
    plain = html("<p>hi</p>")
    apply_security_headers(request, plain)
    assert plain.headers["content-security-policy"] == DEFAULT_CSP
    assert "frame-ancestors 'none'" in DEFAULT_CSP and "'unsafe-inline'" not in DEFAULT_CSP
    own = html("<p>hi</p>", headers={"Content-Security-Policy": "default-src 'none'"})
    apply_security_headers(request, own)
    assert own.headers["content-security-policy"] == "default-src 'none'"
    data = json_response({"a": 1})
    apply_security_headers(request, data)
    assert "content-security-policy" not in data.headers


async def test_docs_page_gets_a_policy(client):
    page = await client.get("/docs")
    if page.status_code == 200 and page.headers["content-type"].startswith("text/html"):
        assert page.headers["content-security-policy"]
    assert_framing_and_sniffing(page)


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("abc-123", True),
        ("A.b_c-9", True),
        ("x" * 64, True),
        ("x" * 65, False),
        ("bad id", False),
        ("id;drop", False),
        ("é-accent", False),
        ("", False),
    ],
)
async def test_a_client_request_id_is_kept_only_when_short_and_plain(client, sent, kept):
    response = await client.get("/api/v1/health", headers={"X-Request-Id": sent.encode()})
    echoed = response.headers["x-request-id"]
    if kept:
        assert echoed == sent
    else:
        assert echoed != sent and len(echoed) == 32 and echoed.isalnum()


@pytest.fixture
async def probe(ctx):
    """An app with the real middleware and error handlers and a route that fails unexpectedly."""
    app = Sanic("request-id-probe")
    app.config.CORS = False  # as in create_app
    app.ctx.app_context = ctx
    _register_middleware(app)
    install_error_handlers(app)

    @app.get("/boom")
    @endpoint(summary="boom", tag="probe", public=True)
    async def boom(request: Request, call: Call[None, None]) -> None:
        raise RuntimeError("unexpected")

    app.asgi = True
    await app._startup()
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as http:
        yield http


@pytest.mark.parametrize("sent", [None, "trace-42", "not plain!"])
async def test_the_request_id_in_an_error_body_is_the_header_and_the_log_line(probe, sent):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    loggers = [logging.getLogger("smartcircle.errors"), logging.getLogger("smartcircle.access")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
    try:
        headers = {"X-Request-Id": sent} if sent else {}
        response = await probe.get("/boom", headers=headers)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.removeHandler(handler)
            logger.setLevel(level)
    assert response.status_code == 500
    request_id = response.headers["x-request-id"]
    if sent == "trace-42":
        assert request_id == sent
    assert request_id in response.json()["error"]["message"]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    error = next(line for line in lines if line["message"] == "unhandled error")
    access = next(line for line in lines if line["message"] == "request")
    assert error["request_id"] == access["request_id"] == request_id
    assert_framing_and_sniffing(response)
