"""Form fields → the API's own request models (so the console validates exactly like the API)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from backend.access import parse_model
from backend.clock import SHANGHAI
from backend.errors import AppError, ValidationFailed

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def local_moment(value: str) -> str | None:
    """``<input type="datetime-local">`` (Beijing time) → ISO 8601 with the +08:00 offset."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return value  # the model names the field
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=SHANGHAI)
    return moment.isoformat()


def number(value: str) -> int | str | None:
    if value == "":
        return None
    try:
        return int(value)
    except ValueError:
        return value


def build(model: type[M], data: dict[str, Any]) -> tuple[M | None, dict[str, str]]:
    """The model, or the errors keyed by field (for inline messages)."""
    try:
        return parse_model(model, data, "body"), {}
    except ValidationFailed as exc:
        return None, dict(exc.fields)


def without_none(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if v is not None}


async def attempt(
    model: type[M],
    data: dict[str, Any],
    call: Callable[[M], Awaitable[T]],
    *,
    refusals: type[AppError] = AppError,
) -> tuple[T | None, dict[str, str]]:
    """Build the request model and call the service with it: its answer, or the errors to show
    next to the fields (empty exactly when it went through). A refusal of the kind given
    becomes field errors (one without fields is shown as a whole, under ``_``); a missing
    object stays a 404 page, and other errors are raised as they are."""
    body, errors = build(model, data)
    if body is None:
        return None, errors
    try:
        return await call(body), {}
    except refusals as exc:
        if exc.status_code == 404:
            raise
        fields = {k: str(v) for k, v in (exc.fields or {}).items()}
        return None, fields or {"_": exc.message}
