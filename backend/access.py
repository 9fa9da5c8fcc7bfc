"""Who may call what: every route declares its callers with ``@endpoint``; the default is deny.

``@endpoint`` also parses and validates the query string and body into pydantic models (errors
name the field path), shapes the response, and writes the route's OpenAPI description.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from functools import wraps
from http import HTTPStatus
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import AnyUrl, BaseModel, ValidationError
from sanic import DefaultSanic, Request
from sanic.response import HTTPResponse, empty
from sanic.response import json as json_response
from sanic_ext.extensions.openapi import openapi
from sanic_ext.extensions.openapi.definitions import Component, Response

from backend.auth.revocations import session_revoked
from backend.clock import Clock, to_local
from backend.config import Settings
from backend.context import AppContext
from backend.errors import BadRequest, Forbidden, Unauthorized, ValidationFailed
from backend.kv import KeyValue
from backend.models import ApiKey, Role
from backend.security import TokenError, decode_access_token, digest

M = TypeVar("M", bound=BaseModel)
Q = TypeVar("Q")
B = TypeVar("B")
ACCESS_ATTR = "__smartcircle_access__"
# Routes added by libraries (the OpenAPI document and its UI) are public by nature.
LIBRARY_ROUTE_PREFIXES = ("openapi.",)


@dataclass(frozen=True)
class Principal:
    """The caller: a signed-in user (from the access token) or an operator key."""

    user_id: str
    role: Role
    session: str = ""
    street: str | None = None
    via_api_key: bool = False


@dataclass
class Call(Generic[Q, B]):
    """What a handler receives besides the request: ``Call[QueryModel, BodyModel]``.

    ``query`` and ``body`` are the models the route's ``@endpoint(query=..., body=...)`` declares,
    already validated (``None`` for a route that declares none).
    """

    request: Request
    ctx: AppContext
    principal: Principal | None
    query: Q
    body: B

    @property
    def user(self) -> Principal:
        if self.principal is None:  # pragma: no cover - guarded by @endpoint
            raise Unauthorized()
        return self.principal

    @property
    def settings(self) -> Settings:
        return self.ctx.settings

    @property
    def kv(self) -> KeyValue:
        return self.ctx.kv

    @property
    def clock(self) -> Clock:
        return self.ctx.clock

    @property
    def client_ip(self) -> str:
        return self.request.remote_addr or self.request.ip or "unknown"


@dataclass(frozen=True)
class Access:
    public: bool = False
    signed_in: bool = False
    roles: frozenset[Role] = frozenset()
    api_key: bool = False

    def describe(self) -> str:
        if self.public:
            return "anyone"
        parts = []
        if self.roles:
            parts.append("roles: " + ", ".join(sorted(self.roles)))
        elif self.signed_in:
            parts.append("any signed-in user")
        if self.api_key:
            parts.append("operator API key (X-Api-Key)")
        return "; ".join(parts)


def parse_model(model: type[M], data: Any, where: str) -> M:
    """Validate data into a model; a failure names every bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        fields = {}
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"]) or where
            fields[path] = err["msg"]
        raise ValidationFailed(fields=fields) from None


def _query_data(request: Request, model: type[BaseModel]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        key = info.alias or name
        values = request.args.getlist(key)
        if not values:
            continue
        origin = typing.get_origin(info.annotation)
        args = typing.get_args(info.annotation)
        is_list = origin is list or any(typing.get_origin(a) is list for a in args)
        if is_list:
            # Accept both ?kind=a&kind=b and ?kind=a,b
            data[key] = [v.strip() for value in values for v in value.split(",") if v.strip()]
        else:
            data[key] = values[-1]
    unknown = set(request.args) - {info.alias or n for n, info in model.model_fields.items()}
    if unknown and model.model_config.get("extra") == "forbid":
        raise ValidationFailed(fields={k: "unknown parameter" for k in sorted(unknown)})
    return data


def _body_data(request: Request, form: bool) -> Any:
    content_type = (request.content_type or "").split(";")[0].strip().lower()
    if form:
        if content_type not in ("application/x-www-form-urlencoded", "multipart/form-data"):
            raise BadRequest("请求体应为表单编码", code="unsupported_media_type")
        return {k: (v[-1] if len(v) == 1 else v) for k, v in (request.form or {}).items()}
    raw = request.body
    if not raw:
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("请求体不是合法的 JSON", code="malformed_json") from None


async def authenticate(request: Request, ctx: AppContext, *, api_key: bool) -> Principal | None:
    """The caller of this request, or None for an anonymous one."""
    if api_key and request.headers.get("x-api-key"):
        return await _principal_from_api_key(request.headers["x-api-key"], ctx)
    header = request.headers.get("authorization", "")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Authorization 头格式应为 Bearer <token>", code="invalid_token")
    try:
        claims = decode_access_token(
            token.strip(), secret=ctx.settings.token_key, now=ctx.clock.time()
        )
    except TokenError as exc:
        raise Unauthorized(exc.message, code=exc.code) from None
    if await session_revoked(ctx, claims.session):
        raise Unauthorized("登录已失效，请重新登录", code="session_revoked")
    try:
        role = Role(claims.role)
    except ValueError:
        raise Unauthorized("登录凭证无效", code="invalid_token") from None
    return Principal(
        user_id=claims.user_id, role=role, session=claims.session, street=claims.street
    )


async def _principal_from_api_key(key: str, ctx: AppContext) -> Principal:
    record = (
        await ApiKey.filter(key_hash=digest(key), revoked_at__isnull=True)
        .select_related("user")
        .first()
    )
    if record is None or not record.user.is_active:
        raise Unauthorized("API 密钥无效", code="invalid_api_key")
    now = ctx.clock.now()
    if record.last_used_at is None or (now - record.last_used_at).total_seconds() > 60:
        await ApiKey.filter(id=record.id).update(last_used_at=now)
    return Principal(
        user_id=record.user.public_id,
        role=record.user.role,
        street=record.user.street_code,
        via_api_key=True,
    )


def _authorise(access: Access, principal: Principal | None) -> None:
    if access.public:
        return
    if principal is None:
        raise Unauthorized()
    if access.roles and principal.role not in access.roles:
        raise Forbidden()
    if principal.via_api_key and not access.api_key:
        raise Forbidden("API 密钥不能调用此接口")


Handler = Callable[..., Awaitable[Any]]


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    schema = model.model_json_schema()
    props = schema.get("properties", {})
    required = set(schema.get("required", []))
    params = []
    for name, prop in props.items():
        entry: dict[str, Any] = {
            "name": name,
            "location": "query",
            "required": name in required,
            "schema": {k: v for k, v in prop.items() if k not in ("title",)},
        }
        if "description" in prop:
            entry["description"] = prop["description"]
        params.append(entry)
    return params


def endpoint(
    *,
    summary: str,
    tag: str,
    public: bool = False,
    signed_in: bool = False,
    roles: Iterable[Role] = (),
    api_key: bool = False,
    query: type[BaseModel] | None = None,
    body: type[BaseModel] | None = None,
    form: bool = False,
    response: type[BaseModel] | None = None,
    status: int = 200,
    errors: Iterable[int] = (),
    description: str | None = None,
) -> Callable[[Handler], Handler]:
    """Declare who may call a route and what it takes and answers."""
    access = Access(
        public=public, signed_in=signed_in or bool(roles), roles=frozenset(roles), api_key=api_key
    )
    if not (access.public or access.signed_in or access.api_key):
        raise ValueError("an endpoint must say who may call it")

    def decorate(func: Handler) -> Handler:
        @wraps(func)
        async def handler(request: Request, **path: Any) -> HTTPResponse:
            ctx: AppContext = request.app.ctx.app_context
            principal = await authenticate(request, ctx, api_key=api_key)
            request.ctx.principal = principal
            _authorise(access, principal)
            call: Call[Any, Any] = Call(
                request=request,
                ctx=ctx,
                principal=principal,
                query=parse_model(query, _query_data(request, query), "query") if query else None,
                body=parse_model(body, _body_data(request, form), "body") if body else None,
            )
            result = await func(request, call, **path)
            if isinstance(result, HTTPResponse):
                return result
            if result is None:
                return empty(status=204 if status == 200 else status)
            if isinstance(result, BaseModel):
                result = result.model_dump(mode="python")
            return json_response(result, status=status, default=_json_default)

        setattr(handler, ACCESS_ATTR, access)
        decorated: Any = handler
        responses: list[Response] = []
        if response is not None:
            responses.append(
                Response({"application/json": Component(response)}, status=status, description="OK")
            )
        else:
            responses.append(Response(None, status=status, description="OK"))
        for code in sorted(set(errors) | _implied_errors(access, query, body)):
            responses.append(
                Response(
                    {"application/json": Component(ErrorResponse)},
                    status=code,
                    description=HTTPStatus(code).phrase,
                )
            )
        secured: dict[str, Any] | None = None
        if not access.public:
            secured = {"apiKey": []} if access.api_key and not access.roles else {"bearer": []}
        doc = (description or "") + f"\n\n调用者 / callers: {access.describe()}"
        decorated = openapi.definition(
            summary=summary,
            description=doc.strip(),
            tag=tag,
            body=(
                {
                    (
                        "application/x-www-form-urlencoded" if form else "application/json"
                    ): Component(body)
                }
                if body is not None
                else None
            ),
            # list is invariant: sanic-ext wants list[dict | Parameter | str], this is list[dict].
            parameter=_query_parameters(query) if query is not None else None,  # type: ignore[arg-type]
            response=responses,
            secured=secured,
        )(decorated)
        setattr(decorated, ACCESS_ATTR, access)
        return typing.cast(Handler, decorated)

    return decorate


def _implied_errors(
    access: Access, query: type[BaseModel] | None, body: type[BaseModel] | None
) -> set[int]:
    codes: set[int] = set()
    if query is not None or body is not None:
        codes.add(400)
    if not access.public:
        codes.add(401)
    if access.roles:
        codes.add(403)
    return codes


def _json_default(value: Any) -> Any:
    """JSON for what ``json.dumps`` does not know; times in Asia/Shanghai with their offset."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return to_local(value).isoformat()
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, BaseModel):
        return value.model_dump(mode="python")
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, UUID | AnyUrl):
        return str(value)
    if isinstance(value, set | frozenset):
        return sorted(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


class ErrorBody(BaseModel):
    code: str
    message: str
    fields: dict[str, str] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


def _is_library_route(app: DefaultSanic, route: Any) -> bool:
    """Routes that sanic-ext adds itself: the OpenAPI document and automatic OPTIONS/HEAD."""
    if route.name.startswith(tuple(f"{app.name}.{p}" for p in LIBRARY_ROUTE_PREFIXES)):
        return True
    handler = getattr(route.handler, "func", route.handler)
    return str(getattr(handler, "__module__", "")).startswith("sanic_ext.")


def check_every_route_declared(app: DefaultSanic) -> None:
    """Refuse to start when a route does not say who may call it (default deny)."""
    missing = []
    for route in app.router.routes:
        if _is_library_route(app, route):
            continue
        if getattr(route.handler, ACCESS_ATTR, None) is None:
            missing.append(f"{'/'.join(route.methods)} /{route.path}")
    if missing:
        raise RuntimeError("routes without an access declaration: " + ", ".join(missing))


def route_access(request: Request) -> Access | None:
    route = request.route
    if route is None:  # no route: routing answers 404/405 itself
        return Access(public=True)
    if _is_library_route(request.app, route):
        return Access(public=True)
    return getattr(route.handler, ACCESS_ATTR, None)
