"""The error shape everywhere, request ids, structured logs without personal data, OpenAPI."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
from pydantic import BaseModel, Field
from sanic import Sanic

from backend.access import endpoint_spec, parse_model
from backend.errors import ValidationFailed, install_error_handlers
from backend.logs import ContextFilter, JsonFormatter, redact, request_id_var
from backend.methods import is_automatic


def assert_error_shape(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    return body["error"]


async def test_malformed_json_is_400(client):
    response = await client.post(
        "/api/v1/auth/login", content=b'{"username": ', headers={"content-type": "application/json"}
    )
    assert_error_shape(response, 400, "malformed_json")


async def test_validation_errors_name_every_field(client):
    response = await client.post("/api/v1/auth/login", json={"username": ""})
    error = assert_error_shape(response, 400, "validation_error")
    assert set(error["fields"]) == {"username", "password"}


async def test_json_body_must_be_an_object(client):
    response = await client.post("/api/v1/auth/login", json=["a", "b"])
    assert_error_shape(response, 400, "validation_error")


def test_nested_field_paths():
    class Item(BaseModel):
        name: str = Field(min_length=1)

    class Order(BaseModel):
        items: list[Item]

    with pytest.raises(ValidationFailed) as caught:
        parse_model(Order, {"items": [{"name": "ok"}, {"name": ""}]}, "body")
    assert list(caught.value.fields) == ["items.1.name"]


async def test_unknown_route_is_json_404(client):
    assert_error_shape(await client.get("/api/v1/no-such-thing"), 404, "not_found")


async def test_wrong_method_is_json_405(client):
    response = await client.delete("/api/v1/health")
    assert_error_shape(response, 405, "method_not_allowed")
    assert "GET" in response.headers.get("allow", "")


async def test_request_id_on_every_response(client):
    ok = await client.get("/api/v1/health")
    assert len(ok.headers["x-request-id"]) == 32
    error = await client.get("/api/v1/nothing")
    assert error.headers["x-request-id"]
    echoed = await client.get("/api/v1/health", headers={"X-Request-Id": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    sanitised = await client.get("/api/v1/health", headers={"X-Request-Id": "bad id\twith spaces"})
    assert sanitised.headers["x-request-id"] != "bad id\twith spaces"


async def test_access_log_is_structured_and_carries_the_request_id(client):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("smartcircle.access")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        response = await client.post(
            "/api/v1/auth/wechat?phone=13800138000", json={"code": "dev:张三"}
        )
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    entry = next(line for line in lines if line["path"] == "/api/v1/auth/wechat")
    assert entry["request_id"] == response.headers["x-request-id"]
    assert entry["status"] == 200
    assert entry["method"] == "POST"
    assert "13800138000" not in stream.getvalue()
    assert "张三" not in stream.getvalue()


def test_redaction_masks_id_numbers_and_phones():
    text = "id 11010519491231002X phone 13912345678 order 12345"
    assert redact(text) == "id [id-number] phone [phone] order 12345"
    record = logging.LogRecord(
        "smartcircle", logging.INFO, "", 0, "user %s", ("13912345678",), None
    )
    request_id_var.set("rid-1")
    ContextFilter().filter(record)
    entry = json.loads(JsonFormatter().format(record))
    assert entry["message"] == "user [phone]"
    assert entry["request_id"] == "rid-1"


async def test_unexpected_errors_are_json_500_without_details():
    app = Sanic("errors-probe")
    install_error_handlers(app)

    @app.get("/boom")
    async def boom(request):
        raise RuntimeError("secret detail 11010519491231002X")

    app.asgi = True
    await app._startup()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    errors_log = logging.getLogger("smartcircle.errors")
    errors_log.addHandler(handler)
    try:
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://probe") as http:
            response = await http.get("/boom")
    finally:
        errors_log.removeHandler(handler)
    error = assert_error_shape(response, 500, "internal_error")
    assert "secret" not in error["message"]
    assert "RuntimeError" in stream.getvalue()
    assert "11010519491231002X" not in stream.getvalue()


async def test_openapi_document_covers_every_route(client, app):
    response = await client.get("/docs/openapi.json")
    assert response.status_code == 200
    spec = response.json()
    paths = spec["paths"]
    for path, method in [
        ("/api/v1/health", "get"),
        ("/api/v1/auth/wechat", "post"),
        ("/api/v1/auth/login", "post"),
        ("/api/v1/auth/refresh", "post"),
        ("/api/v1/auth/logout", "post"),
        ("/api/v1/admin/users/{user_id}/api-keys", "post"),
    ]:
        assert method in paths[path], (path, method)
    login = paths["/api/v1/auth/login"]["post"]
    assert "PasswordSignIn" in json.dumps(login["requestBody"])
    assert "TokenOut" in json.dumps(login["responses"]["200"])
    assert "ErrorResponse" in json.dumps(login["responses"]["400"])
    assert {"TokenOut", "PasswordSignIn", "ErrorResponse", "UserOut"} <= set(
        spec["components"]["schemas"]
    )
    assert paths["/api/v1/me"]["get"]["security"] == [{"bearer": []}]
    for route in app.router.routes:
        if route.path.startswith("console"):  # the console's HTML pages are not API
            assert not any(p.startswith("/console") for p in paths)
            continue
        spec = endpoint_spec(route.handler)
        if is_automatic(route) or spec is None or not spec.documented:
            continue  # sanic-ext's OPTIONS/HEAD, /docs itself and its static assets
        template = "/" + _openapi_path(route.path)
        assert template in paths, template
        for method in route.methods:
            operation = paths[template][method.lower()]
            assert operation["summary"], (template, method)
            assert operation["responses"], (template, method)
            assert "callers" in operation["description"]


def _openapi_path(path: str) -> str:
    parts = []
    for part in path.split("/"):
        if part.startswith("<"):
            part = "{" + part[1:-1].split(":")[0] + "}"
        parts.append(part)
    return "/".join(parts)
