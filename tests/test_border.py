"""No 5xx from input alone: what the border (``@endpoint``) refuses, and how.

Each case here was a 500 once (issue 10). Every answer is the error shape naming the field —
or Open311's own shape under ``/open311/v2``.
"""

from __future__ import annotations

import json
import logging
import re

import httpx
import jwt
import pytest

from backend.access import MAX_DEPTH, endpoint_spec
from backend.auth.wechat import WeChatClient
from backend.models import Role
from backend.paging import encode_cursor, scope_of
from backend.security import ISSUER
from crowdsource.models import PainPoint
from tests.crowdsource_helpers import create_campaign, submit, token_headers
from tests.factories import make_user

LONG_ID = "a" * 33
BAD_IDS = [
    LONG_ID,
    "abc%00def",  # NUL
    "ab%01cd",  # a control character
    "%F0%9F%98%80",  # outside the Basic Multilingual Plane
    "ab%E2%80%8Bcd",  # a zero-width space: not a character of any public id
    "ab%FFcd",  # not UTF-8 at all
]


def _error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    error = body["error"]
    assert set(error) <= {"code", "message", "fields"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


async def _headers_by_role(ctx) -> dict[Role, dict[str, str]]:
    return {role: token_headers(ctx, await make_user(role)) for role in Role}


def _caller(spec, headers: dict[Role, dict[str, str]]) -> dict[str, str]:
    if spec.access.public:
        return {}
    if spec.access.roles:
        return headers[sorted(spec.access.roles)[0]]
    return headers[Role.RESIDENT]


async def test_a_malformed_id_in_any_path_is_404(client, ctx, app):
    """33 characters, NUL, control characters, emoji… in any path parameter of any route."""
    headers = await _headers_by_role(ctx)
    checked = 0
    for route in app.router.routes:
        spec = endpoint_spec(route.handler)
        names = re.findall(r"<([^>:]+)", route.path)
        if spec is None or not names:
            continue
        for bad in BAD_IDS:
            value = bad + ".json" if "request_file" in names else bad
            path = "/" + re.sub(r"<[^>]+>", value, route.path)
            for method in route.methods:
                response = await client.request(
                    method, path, headers=_caller(spec, headers), json={}
                )
                assert response.status_code == 404, (method, path, response.text)
                if path.startswith("/open311/"):
                    assert response.json()[0]["code"] == 404
                else:
                    _error(response, 404, "not_found")
                checked += 1
    assert checked > 60 * len(BAD_IDS)


async def test_named_routes_answer_404_for_a_33_character_id(client, ctx):
    admin = token_headers(ctx, await make_user(Role.BUREAU_ADMIN))
    resident = token_headers(ctx, await make_user(Role.RESIDENT))
    for path, who in [
        (f"/api/v1/venues/{LONG_ID}", {}),
        (f"/api/v1/pain-points/{LONG_ID}", {}),
        (f"/api/v1/campaigns/{LONG_ID}", {}),
        (f"/api/v1/challenges/{LONG_ID}", {}),
        (f"/api/v1/proposals/{LONG_ID}", admin),
        (f"/api/v1/bookings/{LONG_ID}", resident),
        (f"/api/v1/vendors/{LONG_ID}", admin),
    ]:
        _error(await client.get(path, headers=who), 404, "not_found")
    _error(
        await client.post(f"/api/v1/me/notifications/{LONG_ID}/read", headers=resident),
        404,
        "not_found",
    )
    one = await client.get(f"/open311/v2/requests/{LONG_ID}.json")
    assert one.status_code == 404 and one.json()[0]["code"] == 404


async def test_ids_in_queries_are_bounded(client, ctx):
    operator = token_headers(ctx, await make_user(Role.VENUE_OPERATOR))
    error = _error(
        await client.get(
            f"/api/v1/operator/bookings?venue_id={LONG_ID}&date=2026-01-01", headers=operator
        ),
        400,
        "validation_error",
    )
    assert "venue_id" in error["fields"]
    error = _error(await client.get(f"/api/v1/challenges?campaign={LONG_ID}"), 400)
    assert "campaign" in error["fields"]
    listed = await client.get(f"/open311/v2/requests.json?service_request_id=ok,{LONG_ID}")
    assert listed.status_code == 400
    assert listed.json()[0]["description"].startswith("service_request_id:")


async def test_json_nested_too_deep_is_malformed_json(client):
    for depth in (10_000, 200, MAX_DEPTH + 2):
        body = "[" * depth + "]" * depth
        response = await client.post(
            "/api/v1/auth/login", content=body, headers={"content-type": "application/json"}
        )
        _error(response, 400, "malformed_json")
    deep = {"username": "u", "password": "p"}
    for _ in range(50):
        deep = {"x": deep}
    response = await client.post("/api/v1/auth/login", json=deep)
    _error(response, 400, "malformed_json")


async def test_numbers_json_cannot_carry_are_malformed_json(client):
    for text in ('{"code": NaN}', '{"code": Infinity}', '{"code": 1e999}', '{"code": -Infinity}'):
        response = await client.post(
            "/api/v1/auth/wechat", content=text, headers={"content-type": "application/json"}
        )
        _error(response, 400, "malformed_json")


async def test_lone_surrogates_and_control_characters_are_refused_naming_the_field(client, ctx):
    resident = token_headers(ctx, await make_user(Role.RESIDENT))
    admin = token_headers(ctx, await make_user(Role.BUREAU_ADMIN))
    campaign = await create_campaign(client, admin, ctx)
    url = f"/api/v1/campaigns/{campaign['id']}/pain-points"
    valid = {
        "title": "小区门口路灯不亮",
        "description": "晚上回家路上很黑，老人孩子容易摔倒，希望尽快修好路灯",
        "category": "transport",
    }
    for field, text in [
        ("description", "晚上回家路上很黑\\ud8d9老人孩子容易摔倒，希望尽快修好"),  # lone high
        ("title", "路灯\\udc4a不亮了"),  # lone low surrogate
        ("title", "路灯\\udafa\\udc4a不亮了"),  # a pair, but into unassigned plane 12
        ("title", "路灯\\u0000不亮了"),  # NUL
        ("description", "晚上回家路上很黑\\u001b[31m老人孩子容易摔倒，希望尽快修好"),  # ESC
        ("title", "路灯\\u0085不亮"),  # a C1 control character
        ("title", "路灯\\ufffe不亮"),  # a non-character
    ]:
        body = json.dumps(valid, ensure_ascii=False)
        body = body.replace(json.dumps(valid[field], ensure_ascii=False), f'"{text}"')
        response = await client.post(
            url, content=body.encode(), headers={**resident, "content-type": "application/json"}
        )
        error = _error(response, 400, "validation_error")
        assert list(error["fields"]) == [field], (text, error)
    # A nested field is named by its path; a key by its object.
    categories = [{"code": "parking", "label": "停车"}, {"code": "noise", "label": "噪\u0007音"}]
    response = await client.patch(
        f"/api/v1/campaigns/{campaign['id']}", headers=admin, json={"categories": categories}
    )
    assert _error(response, 400)["fields"] == {
        "categories.1.label": "含有不允许的控制字符或无效字符"
    }
    # Line breaks and tabs are text; a valid surrogate pair is one character (an emoji).
    text = "第一行：路灯不亮\\n第二行：\\t晚上很黑 \\ud83d\\ude00"
    body = json.dumps(valid, ensure_ascii=False).replace(valid["description"], text)
    response = await client.post(
        url, content=body.encode(), headers={**resident, "content-type": "application/json"}
    )
    assert response.status_code == 201, response.text
    created = response.json()
    item = await PainPoint.get(public_id=created["id"])
    assert "\n" in item.description and "😀" in item.description
    # Query strings too.
    error = _error(await client.get("/api/v1/venues/search?lat=31.8&lng=117.2&q=a%00b"), 400)
    assert list(error["fields"]) == ["q"]
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    response = await client.post(
        f"/api/v1/pain-points/{created['id']}/moderation",
        content=b'{"decision": "duplicate", "duplicate_of": "\\udafa\\udc4a"}',
        headers={**curator, "content-type": "application/json"},
    )
    assert list(_error(response, 400, "validation_error")["fields"]) == ["duplicate_of"]


async def test_a_pain_point_with_control_characters_cannot_break_the_xlsx_export(client, ctx):
    admin = token_headers(ctx, await make_user(Role.BUREAU_ADMIN))
    resident = token_headers(ctx, await make_user(Role.RESIDENT))
    campaign = await create_campaign(client, admin, ctx)
    refused = await client.post(
        f"/api/v1/campaigns/{campaign['id']}/pain-points",
        headers=resident,
        json={
            "title": "井盖\x0b松动",
            "description": "井盖松动\x00夜间行人容易踩空，希望尽快处理",
            "category": "transport",
        },
    )
    assert set(_error(refused, 400)["fields"]) == {"title", "description"}
    created = await submit(client, resident, campaign["id"], title="=井盖松动")
    # A row stored before the border refused such text still exports (PostgreSQL itself refuses
    # NUL, so the row carries the other control characters).
    await PainPoint.filter(public_id=created["id"]).update(
        title="井盖\x0b松动\x1f", district="\x01"
    )
    export = await client.get(
        f"/api/v1/campaigns/{campaign['id']}/pain-points/export.xlsx", headers=admin
    )
    assert export.status_code == 200, export.text
    assert export.content[:2] == b"PK"
    csv = await client.get(
        f"/api/v1/campaigns/{campaign['id']}/pain-points/export.csv", headers=admin
    )
    assert csv.status_code == 200


async def test_json_bodies_must_be_application_json(client, ctx):
    body = json.dumps({"username": "someone", "password": "secret-password"})
    for content_type in (
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/xml",
        "",
    ):
        response = await client.post(
            "/api/v1/auth/login", content=body, headers={"content-type": content_type}
        )
        _error(response, 415, "unsupported_media_type")
    ok = await client.post(
        "/api/v1/auth/login",
        content=body,
        headers={"content-type": "application/json; charset=utf-8"},
    )
    assert ok.status_code == 401  # parsed: an unknown account
    # A form route takes only forms (Open311), in its own error shape.
    response = await client.post("/open311/v2/requests.json", json={"api_key": "x"})
    assert response.status_code == 415 and response.json()[0]["code"] == 415
    broken = await client.post(
        "/open311/v2/requests.json",
        content=b"api_key=%FF%FE&service_code=x",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert broken.status_code == 400 and broken.json()[0]["code"] == 400


async def test_open311_dates_out_of_range_are_400_in_the_spec_shape(client):
    for query in (
        "start_date=9999-12-31T00:00:00%2B00:00",
        "end_date=0001-01-01T00:00:00%2B00:00",
        "start_date=2026-01-01T00:00:00%2B00:00&end_date=9999-12-31T23:59:59%2B14:00",
    ):
        for fmt in ("json", "xml"):
            response = await client.get(f"/open311/v2/requests.{fmt}?{query}")
            assert response.status_code == 400, (query, response.text)
            if fmt == "json":
                assert response.json()[0]["code"] == 400
                assert response.json()[0]["description"].split(":")[0] in (
                    "start_date",
                    "end_date",
                )
            else:
                assert b"<errors>" in response.content


@pytest.mark.parametrize("value", [2**63, 2**31, -1, 10**30, 1.5])
async def test_a_signed_cursor_out_of_range_is_400_naming_cursor(client, ctx, value):
    resident = await make_user(Role.RESIDENT)
    headers = token_headers(ctx, resident)
    secret = ctx.settings.cursor_key
    bookings = encode_cursor(
        [value], scope=scope_of("me/bookings", resident.public_id, None), secret=secret
    )
    error = _error(await client.get(f"/api/v1/me/bookings?cursor={bookings}", headers=headers), 400)
    assert "cursor" in error["fields"]
    admin = token_headers(ctx, await make_user(Role.BUREAU_ADMIN))
    vendors = encode_cursor([value], scope=scope_of("vendors", None), secret=secret)
    error = _error(await client.get(f"/api/v1/vendors?cursor={vendors}", headers=admin), 400)
    assert "cursor" in error["fields"]


async def test_a_signed_cursor_with_an_overlong_string_is_400(client, ctx):
    cursor = encode_cursor(
        ["2026-01-01T00:00:00+00:00" * 10, "x" * 500],
        scope=scope_of("campaigns", None, False),
        secret=ctx.settings.cursor_key,
    )
    response = await client.get(f"/api/v1/campaigns?cursor={cursor}")
    assert response.status_code == 400, response.text


@pytest.mark.parametrize(
    "claims",
    [
        {"exp": "abc"},
        {"exp": 1e300},
        {"exp": True},
        {"exp": None},
        {"exp": [1]},
        {"iat": "yesterday"},
        {"sub": 12345},
        {"sid": {"a": 1}},
        {"role": ["bureau_admin"]},
        {"street": 340104011},
    ],
)
async def test_a_signed_token_with_a_claim_of_the_wrong_type_is_401(client, ctx, claims):
    now = int(ctx.clock.time())
    payload = {
        "iss": ISSUER,
        "sub": "someone",
        "role": "resident",
        "sid": "session",
        "iat": now - 10,
        "exp": now + 600,
        "typ": "access",
    } | claims
    token = jwt.encode(payload, ctx.settings.token_key, algorithm="HS256")
    response = await client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    _error(response, 401, "invalid_token")


async def test_wechat_unreachable_is_503_with_a_warning_and_no_traceback(client, ctx, caplog):
    original = ctx.wechat
    async with httpx.AsyncClient(timeout=1) as http:
        ctx.wechat = WeChatClient(base_url="http://127.0.0.1:9", appid="a", secret="s", http=http)
        try:
            with caplog.at_level(logging.INFO):
                response = await client.post("/api/v1/auth/wechat", json={"code": "ok-dave"})
        finally:
            ctx.wechat = original
    _error(response, 503, "wechat_unavailable")
    assert "unhandled error" not in caplog.text
    assert not [r for r in caplog.records if r.exc_info], caplog.text
    assert [r for r in caplog.records if r.levelno == logging.WARNING]


async def test_an_unexpected_wechat_answer_is_503_not_500(client):
    for code in ("list-answer", "text-errcode"):
        response = await client.post("/api/v1/auth/wechat", json={"code": code})
        _error(response, 503, "wechat_bad_answer")
