"""Who may call what: every route declares its callers with ``@endpoint``; the default is deny.

``@endpoint`` is also the border: it checks path parameters (a malformed id is a 404), parses
and validates the query string and body into pydantic models (errors name the field path),
refuses text no field accepts and bodies of the wrong media type, and shapes the response. It
records the route's declaration (:class:`EndpointSpec`), from which ``backend.openapi`` builds
the OpenAPI document.
"""

from __future__ import annotations

import json
import math
import re
import typing
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from enum import Enum
from functools import wraps
from typing import Annotated, Any, Generic, TypeVar
from urllib.parse import parse_qs
from uuid import UUID

from pydantic import AnyUrl, BaseModel, StringConstraints, ValidationError
from sanic import DefaultSanic, Request
from sanic.request.form import parse_multipart_form
from sanic.response import HTTPResponse, empty
from sanic.response import json as json_response

from backend.auth.revocations import session_revoked
from backend.clock import Clock, to_local
from backend.config import Settings
from backend.context import AppContext
from backend.errors import (
    BadRequest,
    Forbidden,
    NotFound,
    Unauthorized,
    UnsupportedMediaType,
    ValidationFailed,
)
from backend.kv import KeyValue
from backend.methods import is_automatic
from backend.models import ApiKey, Role
from backend.security import TokenError, decode_access_token, digest

M = TypeVar("M", bound=BaseModel)
Q = TypeVar("Q")
B = TypeVar("B")
ACCESS_ATTR = "__smartcircle_access__"
SPEC_ATTR = "__smartcircle_endpoint__"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
MULTIPART = "multipart/form-data"


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


# -- the border: what any input may carry -----------------------------------------------------

# Characters no text field accepts: C0 and C1 control characters (tab, line feed and carriage
# return excepted), DEL, UTF-16 surrogates (a lone ``\udXXX`` escape in JSON decodes to one), the
# two non-characters U+FFFE/U+FFFF, and planes 4-13, where no Unicode version has assigned a
# character (a random pair of surrogate escapes lands there). None of them is typed by a person;
# each breaks something downstream (PostgreSQL refuses NUL, UTF-8 cannot encode a surrogate,
# spreadsheets and XML refuse control characters). Emoji and CJK extensions are welcome.
UNSAFE_TEXT = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff\U00040000-\U000dffff]"
)
# Deeper nesting than any request of this API needs; refused before a model sees it.
MAX_DEPTH = 32


def refuse_unsafe_text(data: Any, where: str) -> None:
    """Refuse input whose strings (object keys too) carry characters no text field accepts.

    Walks parsed input — a JSON body, a form or the query string — without recursion; a failure
    is a 400 ``validation_error`` naming each bad field by its path (``items.1.name``), or
    ``malformed_json`` for nesting deeper than :data:`MAX_DEPTH`.
    """
    fields: dict[str, str] = {}
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if len(path) > MAX_DEPTH:
            raise BadRequest("请求体嵌套过深", code="malformed_json")
        name = ".".join(path) or where
        if isinstance(value, str):
            if UNSAFE_TEXT.search(value):
                fields[name] = "含有不允许的控制字符或无效字符"
        elif isinstance(value, dict):
            for key, item in value.items():
                if isinstance(key, str) and UNSAFE_TEXT.search(key):
                    fields[name] = "字段名含有不允许的控制字符或无效字符"
                    continue
                stack.append((item, (*path, str(key))))
        elif isinstance(value, list):
            stack.extend((item, (*path, str(i))) for i, item in enumerate(value))
    if fields:
        raise ValidationFailed(fields=dict(sorted(fields.items())))


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
        raise ValidationFailed(
            fields={k[:64]: "unknown parameter" for k in sorted(unknown) if k.isprintable()}
            or {"query": "unknown parameter"}
        )
    refuse_unsafe_text(data, "query")
    return data


def _media_type(request: Request) -> str:
    header = request.headers.get("content-type", "")
    return header.split(";")[0].strip().lower()


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError("number out of range")
    return value


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _parse_json(raw: bytes) -> Any:
    try:
        return json.loads(raw, parse_float=_finite, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("请求体不是合法的 JSON", code="malformed_json") from None


def _parse_form(request: Request, media: str) -> dict[str, Any]:
    bad = BadRequest("请求体不是合法的表单编码", code="malformed_form")
    try:
        if media == FORM:
            pairs = parse_qs(request.body.decode("utf-8"), errors="strict")
        else:
            header = request.headers.get("content-type", "")
            boundary = header.partition("boundary=")[2].split(";")[0].strip().strip('"')
            if not boundary:
                raise bad
            pairs, _files = parse_multipart_form(  # type: ignore[no-untyped-call]
                request.body, boundary.encode("utf-8")
            )
    except (ValueError, UnicodeError, KeyError, IndexError):
        raise bad from None
    return {k: (v[-1] if len(v) == 1 else v) for k, v in pairs.items()}


def _body_data(request: Request, form: bool) -> Any:
    """The body as data: JSON (``application/json``), or a form where the route says so.

    An empty body is ``{}`` (a model whose fields all have defaults accepts it); any other media
    type is a 415.
    """
    raw = request.body
    if not raw:
        return {}
    media = _media_type(request)
    if form:
        if media not in (FORM, MULTIPART):
            raise UnsupportedMediaType("请求体应为表单编码（application/x-www-form-urlencoded）")
        data: Any = _parse_form(request, media)
    else:
        if media != JSON:
            raise UnsupportedMediaType("请求体应为 JSON（Content-Type: application/json）")
        data = _parse_json(raw)
    refuse_unsafe_text(data, "body")
    return data


PUBLIC_ID_PATTERN = r"^[A-Za-z0-9_-]+$"
# A public id in a body or a query (``backend.models.new_public_id``: URL-safe, ≤ 32 characters).
PublicId = Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=PUBLIC_ID_PATTERN)]


@dataclass(frozen=True)
class PathParam:
    """What a path parameter may be; anything else cannot name a resource: 404 ``not_found``."""

    pattern: str = PUBLIC_ID_PATTERN
    max_length: int = 32
    description: str = "公开编号 / public id"

    def accepts(self, value: str) -> bool:
        return 0 < len(value) <= self.max_length and re.fullmatch(self.pattern, value) is not None

    def schema(self) -> dict[str, Any]:
        return {
            "type": "string",
            "minLength": 1,
            "maxLength": self.max_length,
            "pattern": self.pattern,
        }


# Every path parameter of this API is a public id (``backend.models.new_public_id``: URL-safe,
# at most 32 characters) unless the route says otherwise.
PUBLIC_ID = PathParam()


def _check_path(path: dict[str, Any], rules: Mapping[str, PathParam]) -> None:
    for name, value in path.items():
        rule = rules.get(name, PUBLIC_ID)
        if not isinstance(value, str) or not rule.accepts(value):
            raise NotFound()


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


@dataclass(frozen=True)
class EndpointSpec:
    """What ``@endpoint`` declares about a route: the source of its OpenAPI operation."""

    summary: str
    tag: str
    description: str
    access: Access
    query: type[BaseModel] | None
    body: type[BaseModel] | None
    form: bool
    response: type[BaseModel] | None
    status: int
    errors: frozenset[int]
    produces: tuple[str, ...]
    error_model: type[BaseModel] | None
    responses: Mapping[int, type[BaseModel]] = field(default_factory=dict)
    path: Mapping[str, PathParam] = field(default_factory=dict)
    documented: bool = True

    def implied_errors(self, path_params: Iterable[str] = ()) -> set[int]:
        """Error statuses the border itself may answer for this route."""
        codes: set[int] = set()
        if self.query is not None or self.body is not None:
            codes.add(400)
        if self.body is not None:
            codes.add(415)
        codes.add(401)  # a bad bearer token is refused even where none is needed
        if self.access.roles or self.access.api_key:
            codes.add(403)
        if any(True for _ in path_params):
            codes.add(404)
        return codes


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
    produces: str | Iterable[str] = JSON,
    responses: Mapping[int, type[BaseModel]] | None = None,
    error_model: type[BaseModel] | None = None,
    path: Mapping[str, PathParam] | None = None,
    documented: bool = True,
) -> Callable[[Handler], Handler]:
    """Declare who may call a route and what it takes and answers.

    ``produces`` names the media types of the success answer (JSON by default; ``text/csv``,
    ``application/pdf``, ``text/html``… for routes that return an ``HTTPResponse`` of their own);
    ``responses`` documents other answers that carry a body of their own (``{503: Health}``);
    ``error_model`` is the body of the error answers (default: the error shape, as JSON in the
    first of ``produces``); ``path`` overrides the rule of a path parameter (default: a public id,
    :data:`PUBLIC_ID`); ``documented=False`` leaves the route out of the OpenAPI document.
    """
    access = Access(
        public=public, signed_in=signed_in or bool(roles), roles=frozenset(roles), api_key=api_key
    )
    if not (access.public or access.signed_in or access.api_key):
        raise ValueError("an endpoint must say who may call it")
    rules = dict(path or {})
    doc = (description or "") + f"\n\n调用者 / callers: {access.describe()}"
    spec = EndpointSpec(
        summary=summary,
        tag=tag,
        description=doc.strip(),
        access=access,
        query=query,
        body=body,
        form=form,
        response=response,
        status=status,
        errors=frozenset(errors),
        produces=(produces,) if isinstance(produces, str) else tuple(produces),
        error_model=error_model,
        responses=dict(responses or {}),
        path=rules,
        documented=documented,
    )

    def decorate(func: Handler) -> Handler:
        @wraps(func)
        async def handler(request: Request, **path: Any) -> HTTPResponse:
            ctx: AppContext = request.app.ctx.app_context
            principal = await authenticate(request, ctx, api_key=api_key)
            request.ctx.principal = principal
            _authorise(access, principal)
            _check_path(path, rules)
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
        setattr(handler, SPEC_ATTR, spec)
        return handler

    return decorate


def endpoint_spec(handler: Any) -> EndpointSpec | None:
    """The declaration ``@endpoint`` left on a route's handler."""
    spec = getattr(handler, SPEC_ATTR, None)
    return spec if isinstance(spec, EndpointSpec) else None


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


def declare_public(app: DefaultSanic, name: str) -> None:
    """Declare the route ``name`` that is not an ``@endpoint`` (a static directory) open to all."""
    full = f"{app.name}.{name}"
    routes = [r for r in app.router.routes if r.name == full]
    if not routes:
        raise LookupError(f"no route named {name}")
    for route in routes:
        setattr(route.handler, ACCESS_ATTR, Access(public=True))


def check_every_route_declared(app: DefaultSanic) -> None:
    """Refuse to start when a route does not say who may call it (default deny)."""
    missing = []
    for route in app.router.routes:
        if is_automatic(route):
            continue
        if getattr(route.handler, ACCESS_ATTR, None) is None:
            missing.append(f"{'/'.join(route.methods)} /{route.path}")
    if missing:
        raise RuntimeError("routes without an access declaration: " + ", ".join(missing))


def route_access(request: Request) -> Access | None:
    route = request.route
    if route is None:  # no route: routing answers 404/405 itself
        return Access(public=True)
    if is_automatic(route):
        return Access(public=True)
    return getattr(route.handler, ACCESS_ATTR, None)
