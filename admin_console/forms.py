"""Form fields → the API's own request models (so the console validates exactly like the API)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from backend.access import parse_model
from backend.clock import SHANGHAI
from backend.errors import ValidationFailed

M = TypeVar("M", bound=BaseModel)


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
