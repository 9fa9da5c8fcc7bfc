"""Opaque, tamper-evident list cursors shared by every listing.

A cursor is ``base64url(json [scope, *values]) "." base64url(hmac)``, signed with the app's secret.
The scope binds a cursor to the listing (and query) it came from; values are the keyset of the
last item. A forged, damaged or foreign cursor is a 400 naming ``cursor``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

from backend.errors import ValidationFailed

_CONTEXT = b"smartcircle/cursor/v1:"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: bytes, secret: str) -> bytes:
    return hmac.new(secret.encode(), _CONTEXT + payload, hashlib.sha256).digest()[:16]


def scope_of(*parts: Any) -> str:
    """A short digest naming a listing and its filters."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode_cursor(values: list[Any], *, scope: str, secret: str) -> str:
    payload = json.dumps([scope, *values], separators=(",", ":"), ensure_ascii=False).encode()
    return f"{_b64(payload)}.{_b64(_sign(payload, secret))}"


def decode_cursor(
    token: str, *, scope: str, secret: str, shape: tuple[type, ...] | None = None
) -> list[Any]:
    """The keyset values of a cursor made for this scope (of these types, given ``shape``)."""
    bad = ValidationFailed("分页游标无效", fields={"cursor": "游标无效或已被篡改"})
    try:
        head, _, tail = token.partition(".")
        payload, signature = _unb64(head), _unb64(tail)
    except (ValueError, UnicodeError):
        raise bad from None
    if not hmac.compare_digest(signature, _sign(payload, secret)):
        raise bad
    try:
        decoded = json.loads(payload)
    except (ValueError, UnicodeError):
        raise bad from None
    if not isinstance(decoded, list) or not decoded:
        raise bad
    if decoded[0] != scope:
        raise ValidationFailed("分页游标与查询条件不符", fields={"cursor": "游标属于另一次查询"})
    values = decoded[1:]
    if shape is not None and (
        len(values) != len(shape)
        or not all(_fits(v, t) for v, t in zip(values, shape, strict=True))
    ):
        raise bad
    return values


# Keyset values the listings put in cursors: offsets, counts, distances and row ids (PostgreSQL
# ``integer``), public ids, ISO times and book titles (``venues.models.Book.title``, at most 200
# characters). A signed cursor holding anything else is refused rather than handed to the database.
MAX_INT = 2**31 - 1
MAX_TEXT = 200


def _fits(value: Any, kind: type) -> bool:
    if isinstance(value, bool) or not isinstance(value, kind):
        return False
    if isinstance(value, int):
        return 0 <= value <= MAX_INT
    if isinstance(value, str):
        return len(value) <= MAX_TEXT and value.isprintable()
    return True
