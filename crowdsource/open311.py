"""Open311 GeoReport v2 under ``/open311/v2`` (JSON and XML), and the bureau's client keys.

Paths, form fields, response fields and error bodies follow the GeoReport v2 specification, so
existing civic-reporting clients work unchanged: ``.json`` or ``.xml`` on every resource, UTF-8,
times ISO 8601 with offset (Asia/Shanghai), lat/long in WGS-84, errors as
``[{"code": 400, "description": "..."}]`` (XML: ``<errors><error>``) with the HTTP status. The
rules live in :mod:`crowdsource.open311_service`.
"""

from __future__ import annotations

import logging
import re
from typing import Any
from xml.etree import ElementTree as ET  # noqa: S405 - building XML, never parsing it

from sanic import Blueprint, Request
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse, raw
from sanic.response import json as json_response

from backend.access import Call, PathParam, endpoint
from backend.errors import AppError, ValidationFailed
from backend.models import Role
from crowdsource import open311_service as service
from crowdsource.schemas import (
    Open311ClientCreate,
    Open311ClientList,
    Open311ClientOut,
    Open311CreatedList,
    Open311Errors,
    Open311RequestIn,
    Open311Requests,
    Open311RequestsQuery,
    Open311Services,
)

log = logging.getLogger("smartcircle.open311")

bp = Blueprint("open311", url_prefix="/open311/v2")
clients_bp = Blueprint("open311_clients", url_prefix="/api/v1")
TAG = "open311"
XML_TYPE = "text/xml; charset=utf-8"
JSON_TYPE = "application/json; charset=utf-8"
# What the OpenAPI document says each format answers (errors too, in the spec's shape).
AS_JSON: dict[str, Any] = dict(produces="application/json", error_model=Open311Errors)
AS_XML: dict[str, Any] = dict(produces="text/xml", error_model=Open311Errors)
ERRORS_NOTE = (
    '错误按 GeoReport v2 规范返回：JSON `[{"code": 400, "description": "..."}]`，'
    "XML `<errors><error><code/><description/></error></errors>`，并带相应 HTTP 状态码。"
)


_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return _NOT_XML.sub("", str(value))  # characters XML 1.0 cannot carry


def to_xml(root: str, item: str, rows: list[dict[str, Any]]) -> bytes:
    """The spec's XML document: ``<root><item><field>…</field></item>…</root>``."""
    top = ET.Element(root)
    for row in rows:
        element = ET.SubElement(top, item)
        for key, value in row.items():
            ET.SubElement(element, key).text = _text(value)
    body = ET.tostring(top, encoding="unicode")
    return ('<?xml version="1.0" encoding="UTF-8"?>\n' + body).encode("utf-8")


def render(
    rows: list[dict[str, Any]], fmt: str, *, root: str, item: str, status: int = 200
) -> HTTPResponse:
    if fmt == "xml":
        return raw(to_xml(root, item, rows), status=status, content_type=XML_TYPE)
    return json_response(rows, status=status, content_type=JSON_TYPE)


def _fmt(request: Request) -> str:
    return "xml" if request.path.endswith(".xml") else "json"


@bp.exception(Exception)
async def open311_errors(request: Request, exc: Exception) -> HTTPResponse:
    """Every failure under /open311/v2 in the spec's error format."""
    headers: dict[str, str] = {}
    if isinstance(exc, ValidationFailed) and exc.fields:
        status = exc.status_code
        errors = [{"code": status, "description": f"{k}: {v}"} for k, v in exc.fields.items()]
    elif isinstance(exc, AppError):
        status = exc.status_code
        errors = [{"code": status, "description": exc.message}]
        headers = dict(exc.headers or {})
    elif isinstance(exc, SanicException) and 400 <= exc.status_code < 500:
        status = exc.status_code
        errors = [{"code": status, "description": "请求有误 (bad request)"}]
    else:
        status = 500
        log.error(
            "unhandled error",
            exc_info=(type(exc), exc, exc.__traceback__),
            extra={"path": request.path, "method": request.method},
        )
        errors = [{"code": 500, "description": f"服务器内部错误（请求编号 {request.id}）"}]
    response = render(errors, _fmt(request), root="errors", item="error", status=status)
    response.headers.update(headers)
    return response


# -- services ---------------------------------------------------------------------------

SERVICES: dict[str, Any] = dict(
    tag=TAG,
    public=True,
    description="当前征集活动的每个分类是一个服务（service_code 为分类代码）。" + ERRORS_NOTE,
)


@bp.get("/services.json")
@endpoint(summary="Open311 服务列表（JSON）", response=Open311Services, **SERVICES, **AS_JSON)
async def services_json(request: Request, call: Call[None, None]) -> HTTPResponse:
    rows = await service.list_services(ctx=call.ctx)
    return render(rows, "json", root="services", item="service")


@bp.get("/services.xml")
@endpoint(summary="Open311 服务列表（XML）", **SERVICES, **AS_XML)
async def services_xml(request: Request, call: Call[None, None]) -> HTTPResponse:
    rows = await service.list_services(ctx=call.ctx)
    return render(rows, "xml", root="services", item="service")


# -- requests ---------------------------------------------------------------------------

POST_DOC: dict[str, Any] = dict(
    tag=TAG,
    public=True,
    body=Open311RequestIn,
    form=True,
    status=201,
    description="表单编码（application/x-www-form-urlencoded），api_key 为 Open311 客户端密钥；"
    "在当前征集活动中创建痛点。email、first_name、last_name、phone 等个人字段不保存、不记录、"
    "不回显。" + ERRORS_NOTE,
)


async def _submit(call: Call, fmt: str) -> HTTPResponse:
    answer = await service.submit_request(ctx=call.ctx, data=call.body)
    return render([answer], fmt, root="service_requests", item="request", status=201)


@bp.post("/requests.json")
@endpoint(
    summary="Open311 提交请求（JSON 应答）", response=Open311CreatedList, **POST_DOC, **AS_JSON
)
async def post_request_json(request: Request, call: Call[None, None]) -> HTTPResponse:
    return await _submit(call, "json")


@bp.post("/requests.xml")
@endpoint(summary="Open311 提交请求（XML 应答）", **POST_DOC, **AS_XML)
async def post_request_xml(request: Request, call: Call[None, None]) -> HTTPResponse:
    return await _submit(call, "xml")


LIST_DOC: dict[str, Any] = dict(
    tag=TAG,
    public=True,
    query=Open311RequestsQuery,
    description="默认最近 90 天、最多 1000 条、最新在前；status 为 open（待审核、有效）或 closed"
    "（无效、重复、已合并，status_notes 说明原因）。" + ERRORS_NOTE,
)


@bp.get("/requests.json")
@endpoint(summary="Open311 请求列表（JSON）", response=Open311Requests, **LIST_DOC, **AS_JSON)
async def list_requests_json(
    request: Request, call: Call[Open311RequestsQuery, None]
) -> HTTPResponse:
    rows = await service.list_requests(ctx=call.ctx, query=call.query)
    return render(rows, "json", root="service_requests", item="request")


@bp.get("/requests.xml")
@endpoint(summary="Open311 请求列表（XML）", **LIST_DOC, **AS_XML)
async def list_requests_xml(
    request: Request, call: Call[Open311RequestsQuery, None]
) -> HTTPResponse:
    rows = await service.list_requests(ctx=call.ctx, query=call.query)
    return render(rows, "xml", root="service_requests", item="request")


@bp.get("/requests/<request_file:str>")
@endpoint(
    summary="Open311 一条请求（{id}.json 或 {id}.xml）",
    tag=TAG,
    public=True,
    errors=(400, 404),
    description="应答为只含一条的列表（规范如此）。" + ERRORS_NOTE,
    response=Open311Requests,
    produces=("application/json", "text/xml"),
    error_model=Open311Errors,
    path={
        "request_file": PathParam(
            pattern=r"^[A-Za-z0-9_-]{1,32}\.[a-z]{1,4}$",
            max_length=37,
            description="请求编号加格式后缀：{service_request_id}.json 或 .xml",
        )
    },
)
async def get_request(request: Request, call: Call[None, None], request_file: str) -> HTTPResponse:
    name, dot, fmt = request_file.rpartition(".")
    if not dot or fmt not in ("json", "xml") or not name:
        raise ValidationFailed(fields={"format": "地址应以 .json 或 .xml 结尾"})
    rows = await service.get_request(ctx=call.ctx, public_id=name)
    return render(rows, fmt, root="service_requests", item="request")


# -- client keys (the bureau) -------------------------------------------------------------


@clients_bp.post("/open311/clients")
@endpoint(
    summary="登记 Open311 客户端并签发密钥（明文只返回一次）",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN,),
    body=Open311ClientCreate,
    response=Open311ClientOut,
    status=201,
)
async def create_client(
    request: Request, call: Call[None, Open311ClientCreate]
) -> Open311ClientOut:
    return await service.create_client(ctx=call.ctx, actor=call.user, data=call.body)


@clients_bp.get("/open311/clients")
@endpoint(
    summary="Open311 客户端列表",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN,),
    response=Open311ClientList,
)
async def list_clients(request: Request, call: Call[None, None]) -> Open311ClientList:
    return await service.list_clients()


@clients_bp.delete("/open311/clients/<client_id:str>")
@endpoint(
    summary="吊销 Open311 客户端密钥",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN,),
    status=204,
    errors=(404,),
)
async def revoke_client(request: Request, call: Call[None, None], client_id: str) -> None:
    await service.revoke_client(ctx=call.ctx, actor=call.user, public_id=client_id)
