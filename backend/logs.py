"""Structured logs: one JSON object per line, each with the request id, with personal data redacted.

Handlers never log request bodies or query strings. As a second line of defence a filter masks
anything that looks like a citizen ID number or a mainland mobile number in every record.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import threading
import uuid
from contextvars import ContextVar
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from sanic import Request

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")
# A caller's X-Request-Id is kept only when it is short and plain (no spaces, no control
# characters, nothing a log reader or a terminal could be fooled by).
_PLAIN_REQUEST_ID = re.compile(r"[A-Za-z0-9._\-]{1,64}")

_ID_NUMBER = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


def request_id_for(request: Request) -> str:
    """This request's id, fixed at first use: the caller's ``X-Request-Id`` when short and plain,
    else a new one. The same id goes into the response header, error bodies and every log line
    (``request_id_var``)."""
    existing = getattr(request.ctx, "request_id", None)
    if isinstance(existing, str) and existing:
        return existing
    incoming = request.headers.get("x-request-id", "")
    request_id = incoming if _PLAIN_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
    request.ctx.request_id = request_id
    request_id_var.set(request_id)
    return request_id


def redact(text: str) -> str:
    """Mask ID numbers and mobile numbers."""
    text = _ID_NUMBER.sub("[id-number]", text)
    return _MOBILE.sub("[phone]", text)


class ContextFilter(logging.Filter):
    """Adds the request id and redacts personal data."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if record.args:
            args = record.args if isinstance(record.args, tuple) else (record.args,)
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in args)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "request_id": getattr(record, "request_id", "-"),
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in entry and not key.startswith("_"):
                entry[key] = value if isinstance(value, int | float | bool | None) else str(value)
        if record.exc_info:
            entry["exc"] = redact(self.formatException(record.exc_info))
        elif record.exc_text:
            entry["exc"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


class LineHandler(logging.Handler):
    """Writes each formatted record and a newline to the current ``sys.stderr``.

    Deliberately not a ``logging.StreamHandler``: tracerite (which the ``sanic`` command loads)
    patches ``StreamHandler.emit`` to print exceptions as multi-line boxes, bypassing the
    formatter. A record with a traceback must stay one JSON line.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            stream = sys.stderr
            stream.write(line + "\n")
            stream.flush()
        except RecursionError:
            raise
        except Exception:
            self.handleError(record)


def _log_uncaught(
    exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
) -> None:
    logging.getLogger("smartcircle.crash").critical(
        "uncaught exception", exc_info=(exc_type, exc, tb)
    )


def _log_uncaught_in_thread(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit:
        return
    exc = args.exc_value or args.exc_type()
    logging.getLogger("smartcircle.crash").error(
        "uncaught exception in a thread",
        exc_info=(args.exc_type, exc, args.exc_traceback),
        extra={"thread_name": args.thread.name if args.thread else None},
    )


def _log_unraisable(args: Any) -> None:
    exc = args.exc_value
    logging.getLogger("smartcircle.crash").error(
        args.err_msg or "exception ignored",
        exc_info=(args.exc_type, exc, args.exc_traceback) if exc is not None else None,
        extra={"object": repr(args.object)[:200]},
    )


def _take_over_exception_hooks() -> None:
    """Every traceback goes through logging (one JSON line), including uncaught ones."""
    tracerite = sys.modules.get("tracerite")
    if tracerite is not None:  # the sanic command loads it: multi-line boxes on stderr
        tracerite.unload()
    sys.excepthook = _log_uncaught
    threading.excepthook = _log_uncaught_in_thread
    sys.unraisablehook = _log_unraisable
    logging.captureWarnings(True)


_OURS = ("smartcircle", "sanic", "tortoise", "asyncio", "py")


def configure_logging(level: str = "INFO", as_json: bool = True) -> None:
    """Route every logger — the app's, Sanic's, asyncio's, warnings, uncaught exceptions —
    through one redacting handler on the root logger: one JSON object per line, the traceback
    (if any) in the line's ``exc`` field."""
    handler = LineHandler()
    handler.addFilter(ContextFilter())
    if as_json:
        handler.setFormatter(JsonFormatter())
        _take_over_exception_hooks()
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s")
        )
    root = logging.getLogger()
    root.handlers = [h for h in root.handlers if not isinstance(h, LineHandler)] + [handler]
    root.setLevel(max(logging.INFO, _level(level)))
    for name in (
        "smartcircle",
        "sanic.root",
        "sanic.error",
        "sanic.server",
        "sanic.websockets",
        "tortoise",
        "asyncio",
        "py.warnings",
    ):
        logger = logging.getLogger(name)
        logger.handlers = []  # Sanic's own configuration adds box-printing handlers here
        logger.propagate = True
        logger.setLevel(level if name == "smartcircle" else max(logging.INFO, _level(level)))
    # A library's logging.config.dictConfig (import-linter's, for one) disables every logger it
    # does not name; Sanic's own configuration used to re-enable them. Ours must not stay off.
    for name, existing in logging.root.manager.loggerDict.items():
        if isinstance(existing, logging.Logger) and name.split(".")[0] in _OURS:
            existing.disabled = False
    # Sanic's access log prints full URLs with query strings; we write our own (path only).
    logging.getLogger("sanic.access").disabled = True
    logging.getLogger("tortoise.db_client").setLevel(logging.WARNING)


def _level(level: str) -> int:
    value = logging.getLevelName(level.upper())
    return value if isinstance(value, int) else logging.INFO
