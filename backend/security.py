"""Password hashing (argon2id), access tokens (JWT, HS256) and opaque secret digests."""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("dummy-password-for-timing")
ISSUER = "smartcircle"


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; spends the same time when there is no account."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def digest(secret: str) -> str:
    """SHA-256 hex digest of a high-entropy secret (refresh tokens, API keys)."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(nbytes: int = 32) -> str:
    return secrets.token_urlsafe(nbytes)


@dataclass(frozen=True)
class AccessClaims:
    user_id: str
    role: str
    session: str
    street: str | None
    expires_at: int


class TokenError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def encode_access_token(
    *,
    secret: str,
    user_id: str,
    role: str,
    session: str,
    street: str | None,
    ttl: int,
    now: float | None = None,
) -> tuple[str, int]:
    """A signed access token and its lifetime in seconds."""
    issued = int(now if now is not None else time.time())
    payload: dict[str, Any] = {
        "iss": ISSUER,
        "sub": user_id,
        "role": role,
        "sid": session,
        "iat": issued,
        "exp": issued + ttl,
        "typ": "access",
    }
    if street:
        payload["street"] = street
    return jwt.encode(payload, secret, algorithm="HS256"), ttl


def decode_access_token(token: str, *, secret: str, now: float | None = None) -> AccessClaims:
    """Verify signature, issuer, type and expiry."""
    payload = _verified(token, secret)
    current = now if now is not None else time.time()
    if payload["exp"] <= current:
        raise TokenError("token_expired", "登录已过期，请刷新或重新登录")
    return AccessClaims(
        user_id=payload["sub"],
        role=payload["role"],
        session=payload["sid"],
        street=payload.get("street"),
        expires_at=payload["exp"],
    )


@lru_cache(maxsize=32_768)
def _verified(token: str, secret: str) -> dict[str, Any]:
    """The claims of a token whose signature, issuer, type and claim types hold (not its
    expiry, which moves with the clock). A session presents its token with every request, so
    each worker keeps the last verified ones (a few MB); a failure is never kept."""
    try:
        payload: dict[str, Any] = jwt.decode(
            token,
            secret,
            algorithms=["HS256"],
            issuer=ISSUER,
            options={
                "require": ["exp", "iat", "sub", "sid", "role"],
                "verify_exp": False,  # checked below against the app clock
                "verify_iat": False,
            },
        )
    except jwt.InvalidTokenError as exc:
        raise TokenError("invalid_token", "登录凭证无效") from exc
    if payload.get("typ") != "access" or not _well_typed(payload):
        raise TokenError("invalid_token", "登录凭证无效")
    return payload


def _is_time(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < 2**53


def _is_text(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64


def _well_typed(payload: dict[str, Any]) -> bool:
    """The claims we rely on have the types we issue (a signed token may still carry others)."""
    street = payload.get("street")
    return (
        _is_time(payload["exp"])
        and _is_time(payload["iat"])
        and all(_is_text(payload[claim]) for claim in ("sub", "sid", "role"))
        and (street is None or _is_text(street))
    )
