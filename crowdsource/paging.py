"""Opaque, tamper-evident paging cursors for campaign and pain-point lists.

A cursor is ``base64url(json [sort key..., query fingerprint]) "." base64url(hmac)``, signed with
the app secret under a context of its own. The fingerprint binds it to the list it came from
(campaign, sort, filters). A damaged, forged or foreign cursor is a 400 naming ``cursor``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from typing import Any

from backend.errors import ValidationFailed

_CONTEXT = b"smartcircle/crowdsource-cursor/v1:"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(payload: bytes, secret: str) -> bytes:
    return hmac.new(secret.encode(), _CONTEXT + payload, hashlib.sha256).digest()[:16]


def fingerprint(*parts: Any) -> str:
    """A short digest of the list query a cursor belongs to."""
    canonical = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def encode(key: list[Any], *, query: str, secret: str) -> str:
    """A cursor for the position after ``key`` in the list identified by ``query``."""
    payload = json.dumps([*key, query], separators=(",", ":")).encode()
    return f"{_b64(payload)}.{_b64(_sign(payload, secret))}"


def decode(token: str, *, query: str, secret: str, shape: tuple[type, ...]) -> list[Any]:
    """The sort key of a cursor, checked against its signature, its list and ``shape``."""
    bad = ValidationFailed("分页游标无效", fields={"cursor": "游标无效或已被篡改"})
    try:
        head, dot, tail = token.partition(".")
        if not dot:
            raise bad
        payload, signature = _unb64(head), _unb64(tail)
    except (ValueError, binascii.Error, UnicodeError):
        raise bad from None
    if not hmac.compare_digest(signature, _sign(payload, secret)):
        raise bad
    try:
        items = json.loads(payload)
    except (ValueError, UnicodeDecodeError):
        raise bad from None
    if not isinstance(items, list) or len(items) != len(shape) + 1:
        raise bad
    *key, owner = items
    if owner != query:
        raise ValidationFailed("分页游标与查询条件不符", fields={"cursor": "游标属于另一次查询"})
    for value, kind in zip(key, shape, strict=True):
        if not isinstance(value, kind) or isinstance(value, bool):
            raise bad
    return key
