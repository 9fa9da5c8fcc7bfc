"""One exception hierarchy and one JSON error shape for every failure.

Shape: ``{"error": {"code": "snake_case", "message": "...", "fields": {"path": "reason"}}}``.
"""

from __future__ import annotations

import logging
import socket
import sqlite3
from typing import Any

import asyncpg.exceptions as asyncpg_errors
from sanic import DefaultSanic, Request
from sanic.exceptions import (
    BadRequest as SanicBadRequest,
)
from sanic.exceptions import (
    MethodNotAllowed,
    PayloadTooLarge,
    RequestCancelled,
    RequestTimeout,
    SanicException,
)
from sanic.exceptions import (
    NotFound as SanicNotFound,
)
from sanic.response import HTTPResponse, empty, json
from tortoise.exceptions import DBConnectionError, OperationalError

from backend.logs import request_id_for

log = logging.getLogger("smartcircle.errors")


class AppError(SanicException):
    """Base of every error the API answers on purpose."""

    status_code = 500
    code = "internal_error"
    default_message = "服务器内部错误"

    def __init__(
        self,
        message: str | None = None,
        *,
        code: str | None = None,
        fields: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message or self.default_message, headers=headers)
        self.message = message or self.default_message
        if code:
            self.code = code
        self.fields = fields or {}

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.fields:
            body["fields"] = self.fields
        return {"error": body}


class BadRequest(AppError):
    status_code = 400
    code = "bad_request"
    default_message = "请求有误"


class ValidationFailed(BadRequest):
    code = "validation_error"
    default_message = "请求参数校验失败"


class Unauthorized(AppError):
    status_code = 401
    code = "not_authenticated"
    default_message = "请先登录"


class Forbidden(AppError):
    status_code = 403
    code = "forbidden"
    default_message = "无权执行此操作"


class NotFound(AppError):
    status_code = 404
    code = "not_found"
    default_message = "未找到"


class Conflict(AppError):
    status_code = 409
    code = "conflict"
    default_message = "与当前状态冲突"


class Unprocessable(AppError):
    status_code = 422
    code = "rule_violation"
    default_message = "请求不符合业务规则"


class UnsupportedMediaType(AppError):
    status_code = 415
    code = "unsupported_media_type"
    default_message = "不支持该请求体类型"


class RateLimited(AppError):
    status_code = 429
    code = "rate_limited"
    default_message = "请求过于频繁，请稍后再试"

    def __init__(self, retry_after: float, message: str | None = None, **kwargs: Any) -> None:
        seconds = max(1, int(retry_after + 0.999))
        super().__init__(message, headers={"Retry-After": str(seconds)}, **kwargs)
        self.retry_after = seconds


class ServiceUnavailable(AppError):
    status_code = 503
    code = "service_unavailable"
    default_message = "服务暂不可用，请稍后再试"


def error_response(
    status: int,
    code: str,
    message: str,
    fields: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> HTTPResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if fields:
        body["fields"] = fields
    return json({"error": body}, status=status, headers=headers)


# How long a client should wait before trying again when the database is unreachable.
DATABASE_RETRY_AFTER = 5
# What a stopped, restarting or unreachable database raises, through Tortoise or directly:
# refused and reset connections, a pool or connect timeout, asyncpg's lost connections
# (ConnectionDoesNotExistError is a PostgresConnectionError), an administrator shutting the
# server down or a server still starting (OperatorInterventionError: AdminShutdownError,
# CannotConnectNowError, CrashShutdownError) and too many connections.
_DATABASE_DOWN: tuple[type[BaseException], ...] = (
    DBConnectionError,
    ConnectionError,  # ConnectionRefusedError, ConnectionResetError, …
    TimeoutError,  # asyncio.TimeoutError too: pool acquire and connect timeouts
    socket.gaierror,
    asyncpg_errors.PostgresConnectionError,
    asyncpg_errors.OperatorInterventionError,
    asyncpg_errors.TooManyConnectionsError,
)
# SQLite's own words for a database it cannot use right now (busy beyond the timeout, the file
# gone or unreadable).
_SQLITE_DOWN = ("database is locked", "unable to open database file", "disk i/o error")


def database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the database cannot be reached right now."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _DATABASE_DOWN):
            return True
        if isinstance(current, asyncpg_errors.InterfaceError) and "closed" in str(current):
            return True  # "connection is closed", "pool is closed"
        if isinstance(current, sqlite3.OperationalError | OperationalError) and any(
            words in str(current).lower() for words in _SQLITE_DOWN
        ):
            return True
        current = _cause(current)
    return False


def _cause(exc: BaseException) -> BaseException | None:
    """What ``exc`` explicitly wraps: ``raise … from cause``, or an exception passed as its first
    argument (Tortoise's ``OperationalError(exc)``). Not the implicit context: an error raised
    while some connection error was being handled is a different error."""
    if exc.__cause__ is not None:
        return exc.__cause__
    first = exc.args[0] if exc.args else None
    return first if isinstance(first, BaseException) else None


def _translate(exc: Exception) -> tuple[int, str, str, dict[str, str] | None]:
    if isinstance(exc, AppError):
        return exc.status_code, exc.code, exc.message, exc.fields
    if database_unavailable(exc):
        return 503, "database_unavailable", "数据库暂不可用，请稍后再试", None
    if isinstance(exc, SanicNotFound):
        return 404, "not_found", "请求的地址不存在", None
    if isinstance(exc, MethodNotAllowed):
        return 405, "method_not_allowed", "不支持该请求方法", None
    if isinstance(exc, PayloadTooLarge):
        return 413, "payload_too_large", "请求体过大", None
    if isinstance(exc, RequestTimeout):
        return 408, "request_timeout", "请求超时", None
    if isinstance(exc, SanicBadRequest):
        return 400, "bad_request", "请求格式有误", None
    if isinstance(exc, SanicException) and 400 <= exc.status_code < 500:
        return exc.status_code, "http_error", "请求有误", None
    return 500, "internal_error", "服务器内部错误", None


# nginx's "client closed request": the access log's status for a request whose client left
# before its answer could be written. Never sent (there is nobody to send it to).
CLIENT_CLOSED_REQUEST = 499


def install_error_handlers(app: DefaultSanic) -> None:
    """Answer every exception with the JSON error shape; log unexpected ones."""

    @app.exception(RequestCancelled)  # type: ignore[arg-type]  # a CancelledError: found by its class all the same
    async def client_gone(request: Request, exc: RequestCancelled) -> HTTPResponse:
        # A phone that lost its signal is not a server error: without this, Sanic's default
        # answer was a 500, and every such request counted as one in the access log.
        return empty(status=CLIENT_CLOSED_REQUEST)

    @app.exception(Exception)
    async def handle_any(request: Request, exc: Exception) -> HTTPResponse:
        request_id = request_id_for(request)
        status, code, message, fields = _translate(exc)
        headers = dict(getattr(exc, "headers", None) or {})
        if code == "database_unavailable":
            headers.setdefault("Retry-After", str(DATABASE_RETRY_AFTER))
            log.warning(
                "database unavailable",
                extra={"path": request.path, "method": request.method, "error": _name(exc)},
            )
        if isinstance(exc, MethodNotAllowed) and getattr(exc, "allowed_methods", None):
            headers["Allow"] = ", ".join(sorted(exc.allowed_methods or ()))
        if status >= 500 and code == "database_unavailable":
            message = f"{message}（请求编号 {request_id}）"
        elif status >= 500 and isinstance(exc, AppError):
            # An answer on purpose (a service we depend on is unavailable): a warning, no traceback.
            log.warning(
                "service unavailable: %s",
                code,
                extra={"path": request.path, "method": request.method, "status": status},
            )
            message = f"{message}（请求编号 {request_id}）"
        elif status >= 500:
            # The traceback goes to the log; the client sees only the request id.
            log.error(
                "unhandled error",
                exc_info=(type(exc), exc, exc.__traceback__),
                extra={"path": request.path, "method": request.method},
            )
            message = f"{message}（请求编号 {request_id}）"
        return error_response(status, code, message, fields, headers)


def _name(exc: BaseException) -> str:
    """The exception's type, and its cause's when there is one (for the log)."""
    cause = _cause(exc)
    return type(exc).__name__ + (f" <- {type(cause).__name__}" if cause is not None else "")
