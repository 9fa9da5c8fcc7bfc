"""The OpenAPI document is a contract: valid, typed, and usable by a client generator.

- it validates with ``openapi-spec-validator``;
- every query and path parameter has its real type, bounds and enum (``$ref`` resolve into
  ``components/schemas``), every answer its real media type, 204s carry no content;
- every request field is bounded (integers within PostgreSQL's ``integer``, strings with a
  length), so no input can reach the database out of range;
- ``openapi-python-client`` generates a client without a warning, with typed parameters.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

from backend.access import endpoint_spec

REPO = Path(__file__).resolve().parent.parent
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
INT32 = (-(2**31), 2**31 - 1)


@pytest.fixture
async def document(client) -> dict[str, Any]:
    response = await client.get("/docs/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def _operations(document: dict[str, Any]):
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


def _resolve(document: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        schema = {
            **document["components"]["schemas"][name],
            **{k: v for k, v in schema.items() if k != "$ref"},
        }
    return schema


def _parameter(document, path, method, name) -> dict[str, Any]:
    operation = document["paths"][path][method]
    (found,) = [p for p in operation["parameters"] if p["name"] == name]
    return found


async def test_the_document_validates(document):
    validate(document)  # raises on any violation of the OpenAPI 3.1 schema
    assert document["openapi"].startswith("3.1")


async def test_query_parameters_have_their_real_types_and_bounds(document):
    lat = _parameter(document, "/api/v1/venues/search", "get", "lat")
    assert lat["in"] == "query" and lat["required"] is True
    assert lat["schema"] == {"type": "number", "minimum": -90, "maximum": 90}
    radius = _parameter(document, "/api/v1/venues/search", "get", "radius_m")["schema"]
    assert (radius["type"], radius["minimum"], radius["maximum"]) == ("integer", 1, 50000)
    coord = _parameter(document, "/api/v1/venues/search", "get", "coord")["schema"]
    assert set(_resolve(document, coord)["enum"]) == {"wgs84", "gcj02", "bd09"}
    kind = _parameter(document, "/api/v1/venues/search", "get", "kind")
    assert kind["schema"]["type"] == "array"
    assert "reading_space" in _resolve(document, kind["schema"]["items"])["enum"]
    q = _parameter(document, "/api/v1/venues/search", "get", "q")["schema"]
    assert q == {"type": "string", "minLength": 1, "maxLength": 50}
    status = _parameter(document, "/api/v1/me/bookings", "get", "status")["schema"]
    assert "confirmed" in _resolve(document, status)["enum"]
    for path, _method, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            # Never an object wrapping a JSON Schema, never a nullable query parameter.
            assert schema.get("type") != "object", (path, parameter["name"])
            assert "null" not in json.dumps(schema), (path, parameter["name"])


async def test_every_reference_resolves(document):
    text = json.dumps(document)
    assert "$defs" not in text
    names = set(re.findall(r'"\$ref": "#/components/schemas/([^"]+)"', text))
    assert names and names <= set(document["components"]["schemas"])
    assert not re.findall(r'"\$ref": "(?!#/components/schemas/)', text)


async def test_path_parameters_are_documented_with_the_rule_the_border_enforces(document, app):
    for route in app.router.routes:
        spec = endpoint_spec(route.handler)
        if spec is None or not spec.documented:
            continue
        template = "/" + re.sub(r"<([^>:]+)(?::[^>]*)?>", r"{\1}", route.path)
        names = re.findall(r"\{([^}]+)\}", template)
        for method in route.methods:
            operation = document["paths"][template][method.lower()]
            documented = {p["name"]: p for p in operation.get("parameters", [])}
            for name in names:
                parameter = documented[name]
                assert parameter["in"] == "path" and parameter["required"] is True
                schema = parameter["schema"]
                assert schema["type"] == "string" and schema["maxLength"] <= 37, template
                assert schema["minLength"] == 1 and schema["pattern"].startswith("^")
            if names:
                assert "404" in operation["responses"], template
    venue = _parameter(document, "/api/v1/venues/{venue_id}", "get", "venue_id")
    assert venue["schema"] == {
        "type": "string",
        "minLength": 1,
        "maxLength": 32,
        "pattern": "^[A-Za-z0-9_-]+$",
    }


async def test_every_answer_has_its_real_media_type(document):
    paths = document["paths"]

    def media(path: str, method: str = "get", status: str = "200") -> set[str]:
        return set(paths[path][method]["responses"][status].get("content", {}))

    assert media("/api/v1/campaigns/{campaign_id}/pain-points/export.csv") == {"text/csv"}
    assert media("/api/v1/campaigns/{campaign_id}/pain-points/export.xlsx") == {XLSX}
    assert media("/api/v1/campaigns/{campaign_id}/booklet") == {"text/html"}
    assert media("/api/v1/campaigns/{campaign_id}/booklet.pdf") == {"application/pdf"}
    assert media("/api/v1/bookings/{booking_id}/qr.svg") == {"image/svg+xml"}
    assert media("/open311/v2/services.xml") == {"text/xml"}
    assert media("/open311/v2/services.json") == {"application/json"}
    assert media("/open311/v2/requests.xml", "post", "201") == {"text/xml"}
    assert media("/open311/v2/requests/{request_file}") == {"application/json", "text/xml"}
    # Open311 errors in the spec's shape, not ours.
    error = paths["/open311/v2/requests.json"]["get"]["responses"]["400"]["content"]
    assert "Open311Error" in json.dumps(error)
    assert "ErrorResponse" not in json.dumps(error)
    # Health answers its own body with 503.
    assert "Health" in json.dumps(paths["/api/v1/health"]["get"]["responses"]["503"])
    for path, method, operation in _operations(document):
        for status, answer in operation["responses"].items():
            content = answer.get("content", {})
            assert "*/*" not in content, (path, method, status)
            if status == "204":
                assert not content, (path, method)
            else:
                assert content, (path, method, status)
            for media_type, body in content.items():
                schema = body["schema"]
                if media_type == "application/json":
                    assert schema, (path, method, status)
                else:
                    assert schema.get("type") == "string", (path, method, status)
    logout = paths["/api/v1/auth/logout"]["post"]["responses"]
    assert set(logout["204"]) == {"description"}


def _unbounded(document: dict[str, Any], schema: dict[str, Any], where: str, seen=()) -> list:
    """Request fields a client could fill with a value the database cannot hold."""
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        if name in seen:
            return []
        return _unbounded(document, document["components"]["schemas"][name], where, (*seen, name))
    found = []
    for key in ("anyOf", "oneOf", "allOf"):
        for variant in schema.get(key, []):
            found += _unbounded(document, variant, where, seen)
    kind = schema.get("type")
    if kind == "integer":
        low, high = schema.get("minimum"), schema.get("maximum")
        if low is None or high is None or low < INT32[0] or high > INT32[1]:
            found.append((where, schema))
    if kind == "number" and ("minimum" not in schema or "maximum" not in schema):
        found.append((where, schema))
    if kind == "string" and not (
        "maxLength" in schema
        or "enum" in schema
        or "const" in schema
        or schema.get("format") in ("date", "date-time", "binary")
        or _bounded_pattern(schema.get("pattern"))
    ):
        found.append((where, schema))
    for name, prop in schema.get("properties", {}).items():
        found += _unbounded(document, prop, f"{where}.{name}", seen)
    if isinstance(schema.get("items"), dict):
        found += _unbounded(document, schema["items"], f"{where}[]", seen)
    if isinstance(schema.get("additionalProperties"), dict):
        found += _unbounded(document, schema["additionalProperties"], f"{where}{{}}", seen)
    if isinstance(schema.get("propertyNames"), dict):
        found += _unbounded(document, schema["propertyNames"], f"{where}{{key}}", seen)
    return found


def _bounded_pattern(pattern: str | None) -> bool:
    """An anchored pattern without an unbounded repetition bounds the length."""
    if not pattern or not (pattern.startswith("^") and pattern.endswith("$")):
        return False
    outside_classes = re.sub(r"\[(\\.|[^\]])*\]", "", pattern)
    return not re.search(r"(?<!\\)[*+]|\{\d+,\}", outside_classes)


async def test_every_request_field_is_bounded(document):
    """Integers fit PostgreSQL's ``integer``, strings have a length, numbers a range."""
    found = []
    for path, method, operation in _operations(document):
        for parameter in operation.get("parameters", []):
            found += _unbounded(
                document, parameter["schema"], f"{method} {path} {parameter['name']}"
            )
        for body in operation.get("requestBody", {}).get("content", {}).values():
            found += _unbounded(document, body["schema"], f"{method} {path} body")
    assert not found, found


async def test_a_generated_client_is_complete_and_typed(document, tmp_path):
    """openapi-python-client generates without a warning; parameters are typed."""
    spec = tmp_path / "openapi.json"
    spec.write_text(json.dumps(document))
    # The generator reads JSON, text and octet-stream answers; the spreadsheet, the PDF and the
    # SVG are bytes to it (its documented content_type_overrides).
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "content_type_overrides": {
                    XLSX: "application/octet-stream",
                    "application/pdf": "application/octet-stream",
                    "image/svg+xml": "application/octet-stream",
                }
            }
        )
    )
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    done = subprocess.run(
        [
            str(Path(bin_dir) / "openapi-python-client"),
            "generate",
            "--path",
            str(spec),
            "--meta",
            "none",
            "--output-path",
            str(tmp_path / "client"),
            "--config",
            str(config),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-3000:]
    for word in ("Warning", "WARNING", "Unsupported", "will be omitted", "Skipping", "Cannot"):
        assert word not in output, output[-3000:]
    api = tmp_path / "client" / "api"
    functions = {p.stem for p in api.rglob("*.py") if p.stem != "__init__"}
    operations = {op["operationId"] for _, _, op in _operations(document)}
    assert operations <= functions, operations - functions
    source = (api / "search" / "search_venues.py").read_text()
    assert re.search(r"\blat: float,", source), source[:2000]
    assert re.search(r"\bradius_m: int \| Unset = 3000,", source)
    assert re.search(r"\bkind: list\[VenueKind\] \| Unset", source)
    assert "GetsearchSearchVenuesLat" not in source
    export = (api / "crowdsource" / "export_xlsx.py").read_text()
    assert "File" in export or "bytes" in export
