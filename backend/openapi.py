"""The OpenAPI 3.1 document, built once from what every ``@endpoint`` declares.

Every route's declaration (:class:`backend.access.EndpointSpec`) becomes one operation: its
path parameters with the rule the border enforces, its query model's fields as query parameters
(type, bounds, enum), its body and answers as JSON Schemas (pydantic's, which are JSON Schema
2020-12 and so valid OpenAPI 3.1), each answer under the media type the route really sends, and
who may call it. All models are given to pydantic together, so ``$ref`` always points into
``components/schemas`` and two models of one name get distinct names.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from http import HTTPStatus
from typing import Any, Literal

from pydantic import BaseModel
from pydantic.json_schema import models_json_schema
from sanic import DefaultSanic

from backend.access import JSON, PUBLIC_ID, EndpointSpec, ErrorResponse, endpoint_spec

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-Api-Key"},
}
_PARAM = re.compile(r"<([^>:]+)(?::[^>]*)?>")
Mode = Literal["validation", "serialization"]


def _is_json(media: str) -> bool:
    return media == JSON or media.endswith("+json")


def _is_text(media: str) -> bool:
    return media.startswith("text/") or media.endswith(("+xml", "/xml"))


def _raw_schema(media: str) -> dict[str, Any]:
    """The schema of a body that is not JSON: text, or bytes (a spreadsheet, a PDF)."""
    if _is_text(media):
        return {"type": "string"}
    return {"type": "string", "format": "binary"}


def _routes(app: DefaultSanic) -> Iterator[tuple[str, str, str, EndpointSpec, list[str]]]:
    """(path template, method, name, declaration, path parameters) of each documented route."""
    for route in sorted(app.router.routes, key=lambda r: r.path):
        spec = endpoint_spec(route.handler)
        if spec is None or not spec.documented:
            continue
        template = "/" + _PARAM.sub(lambda m: "{" + m.group(1) + "}", route.path)
        params = [m.group(1) for m in _PARAM.finditer(route.path)]
        name = getattr(route.handler, "__name__", route.name.rsplit(".", 1)[-1])
        for method in sorted(route.methods):
            if method in ("HEAD", "OPTIONS"):
                continue
            yield template, method.lower(), name, spec, params


def _operation_ids(app: DefaultSanic) -> dict[tuple[str, str], str]:
    """Handler names as operation ids; a name used twice gets its path-derived prefix."""
    entries = [(t, m, n) for t, m, n, _, _ in _routes(app)]
    counts = Counter(n for _, _, n in entries)
    ids: dict[tuple[str, str], str] = {}
    for template, method, name in entries:
        if counts[name] > 1:
            words = [
                w for w in re.split(r"[^A-Za-z0-9]+", template) if w and w not in ("api", "v1")
            ]
            name = f"{method}_{'_'.join(words)}"
        ids[(template, method)] = name
    return ids


def _query_parameter(name: str, prop: dict[str, Any], required: bool) -> dict[str, Any]:
    """A query model's field as a parameter: ``None`` is not a value a query string can carry."""
    schema = {k: v for k, v in prop.items() if k not in ("title", "description")}
    variants = schema.pop("anyOf", None)
    if variants is not None:
        kept = [v for v in variants if v.get("type") != "null"]
        if len(kept) == 1:
            schema = {**kept[0], **schema}
        else:
            schema["anyOf"] = kept
    if schema.get("default", 0) is None:
        del schema["default"]
    parameter: dict[str, Any] = {"name": name, "in": "query", "required": required}
    if prop.get("description"):
        parameter["description"] = prop["description"]
    if schema.get("type") == "array":
        parameter["style"] = "form"
        parameter["explode"] = True
    parameter["schema"] = schema
    return parameter


def _refs(node: Any) -> Iterator[str]:
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            ref = item.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/components/schemas/"):
                yield ref.rsplit("/", 1)[-1]
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def build_document(
    app: DefaultSanic, *, title: str, version: str, description: str
) -> dict[str, Any]:
    """The OpenAPI 3.1 document of every documented route of ``app``."""
    routes = list(_routes(app))
    ids = _operation_ids(app)

    wanted: dict[tuple[type[BaseModel], Mode], None] = {(ErrorResponse, "serialization"): None}
    for _, _, _, spec, _ in routes:
        if spec.query is not None:
            wanted[(spec.query, "validation")] = None
        if spec.body is not None:
            wanted[(spec.body, "validation")] = None
        for model in (spec.response, spec.error_model, *spec.responses.values()):
            if model is not None:
                wanted[(model, "serialization")] = None
    refs, defs = models_json_schema(list(wanted), ref_template=REF_TEMPLATE)
    schemas: dict[str, Any] = defs.get("$defs", {})

    def ref(model: type[BaseModel], mode: Mode) -> dict[str, Any]:
        return dict(refs[(model, mode)])

    def model_schema(model: type[BaseModel], mode: Mode) -> dict[str, Any]:
        name = ref(model, mode)["$ref"].rsplit("/", 1)[-1]
        schema: dict[str, Any] = schemas[name]
        return schema

    paths: dict[str, dict[str, Any]] = {}
    tags: dict[str, None] = {}
    for template, method, _, spec, path_params in routes:
        tags[spec.tag] = None
        operation: dict[str, Any] = {
            "operationId": ids[(template, method)],
            "summary": spec.summary,
            "description": spec.description,
            "tags": [spec.tag],
        }
        parameters: list[dict[str, Any]] = []
        for name in path_params:
            rule = spec.path.get(name, PUBLIC_ID)
            parameters.append(
                {
                    "name": name,
                    "in": "path",
                    "required": True,
                    "description": rule.description,
                    "schema": rule.schema(),
                }
            )
        if spec.query is not None:
            query = model_schema(spec.query, "validation")
            required = set(query.get("required", []))
            for name, prop in query.get("properties", {}).items():
                parameters.append(_query_parameter(name, prop, name in required))
        if parameters:
            operation["parameters"] = parameters
        if spec.body is not None:
            media = "application/x-www-form-urlencoded" if spec.form else JSON
            body = model_schema(spec.body, "validation")
            operation["requestBody"] = {
                "required": bool(body.get("required")),
                "content": {media: {"schema": ref(spec.body, "validation")}},
            }
        operation["responses"] = _responses(spec, path_params, ref)
        operation["security"] = _security(spec)
        operation["x-access"] = _access(spec)
        paths.setdefault(template, {})[method] = operation

    document: dict[str, Any] = {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version, "description": description},
        "jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
        "paths": paths,
        "tags": [{"name": t} for t in sorted(tags)],
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }
    _prune(document)
    return document


def _responses(spec: EndpointSpec, path_params: list[str], ref: Any) -> dict[str, dict[str, Any]]:
    answers: dict[str, dict[str, Any]] = {}
    status = spec.status
    if status == 204:
        answers["204"] = {"description": "No Content"}
    else:
        content: dict[str, Any] = {}
        for media in spec.produces:
            if _is_json(media) and spec.response is not None:
                content[media] = {"schema": ref(spec.response, "serialization")}
            elif _is_json(media):
                content[media] = {"schema": {}}
            else:
                content[media] = {"schema": _raw_schema(media)}
        answers[str(status)] = {"description": HTTPStatus(status).phrase, "content": content}
    for code, model in sorted(spec.responses.items()):
        answers[str(code)] = {
            "description": HTTPStatus(code).phrase,
            "content": {JSON: {"schema": ref(model, "serialization")}},
        }
    error_media = [m for m in spec.produces if _is_json(m) or _is_text(m)] or [JSON]
    error_model = spec.error_model or ErrorResponse
    for code in sorted((spec.errors | spec.implied_errors(path_params)) - set(spec.responses)):
        content = {}
        for media in error_media if spec.error_model is not None else [JSON]:
            content[media] = {
                "schema": ref(error_model, "serialization")
                if _is_json(media)
                else _raw_schema(media)
            }
        answers[str(code)] = {"description": HTTPStatus(code).phrase, "content": content}
    return answers


def _security(spec: EndpointSpec) -> list[dict[str, list[str]]]:
    access = spec.access
    if access.public:
        return [{}, {"bearer": []}]  # anyone; a bearer token, if sent, must be valid
    schemes: list[dict[str, list[str]]] = []
    if access.signed_in:
        schemes.append({"bearer": []})
    if access.api_key:
        schemes.append({"apiKey": []})
    return schemes


def _access(spec: EndpointSpec) -> dict[str, Any]:
    """Who may call the operation, for machines (the description says it for people)."""
    access = spec.access
    if access.public:
        return {"public": True}
    described: dict[str, Any] = {"roles": sorted(access.roles) or ["any"]}
    if access.api_key:
        described["api_key"] = True
    return described


def _prune(document: dict[str, Any]) -> None:
    """Drop component schemas nothing refers to (the query models, once they are parameters)."""
    schemas = document["components"]["schemas"]
    used: set[str] = set()
    pending = list(_refs(document["paths"]))
    while pending:
        name = pending.pop()
        if name in used or name not in schemas:
            continue
        used.add(name)
        pending.extend(_refs(schemas[name]))
    for name in list(schemas):
        if name not in used:
            del schemas[name]
