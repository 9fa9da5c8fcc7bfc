"""Booking rule errors: a 422 with its own code and, when one field is at fault, that field."""

from __future__ import annotations

from backend.errors import Unprocessable


def rule(code: str, message: str, field: str | None = None) -> Unprocessable:
    """The 422 for a broken booking rule (``fields`` names the field when there is one)."""
    return Unprocessable(message, code=code, fields={field: message} if field else None)
