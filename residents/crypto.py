"""Encryption at rest (AES-256-GCM, a key id with each value) and blind indexes (HMAC-SHA256).

A stored value is ``<key id>:<base64url(nonce ‖ ciphertext ‖ tag)>``. The associated data binds
it to its purpose and owner (``name:<resident public id>``), so a ciphertext copied into another
row or field does not decrypt. The first key of the ring encrypts; every key of the ring
decrypts, so a value written before a rotation stays readable until it is re-encrypted.

A blind index is ``HMAC-SHA256(index key, purpose ‖ normalised value)`` in hex: equal values
find each other, and without the index key nobody can test a guessed ID number against it. The
index key is separate from the encryption keys and is not rotated with them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ID = re.compile(r"^[A-Za-z0-9_.-]{1,32}$")


class KeyRingError(ValueError):
    """The configured keys are unusable (wrong length, bad id, none at all)."""


class DecryptionFailed(Exception):
    """A stored value does not decrypt with any key of the ring (tampered or key missing)."""


def _b64e(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64d(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def decode_key(text: str) -> bytes:
    """A 32-byte key from standard or URL-safe base64."""
    try:
        raw = base64.b64decode(text.strip() + "=" * (-len(text.strip()) % 4), altchars=b"-_")
    except ValueError:
        raise KeyRingError("a resident key is not valid base64") from None
    if len(raw) != 32:
        raise KeyRingError("a resident key must be 32 bytes (AES-256), base64-encoded")
    return raw


def new_key() -> str:
    """A fresh random key, base64 (for configuration)."""
    return base64.b64encode(os.urandom(32)).decode("ascii")


@dataclass(frozen=True)
class KeyRing:
    """Encryption keys (the first is current) and the blind-index key."""

    keys: Sequence[tuple[str, bytes]]
    index_key: bytes
    _ciphers: dict[str, AESGCM] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.keys:
            raise KeyRingError("the resident key ring is empty")
        seen = set()
        for kid, key in self.keys:
            if not KEY_ID.match(kid):
                raise KeyRingError("a resident key id must be 1-32 letters, digits, _ . -")
            if kid in seen:
                raise KeyRingError(f"resident key id {kid} appears twice")
            if len(key) != 32:
                raise KeyRingError("a resident key must be 32 bytes (AES-256)")
            seen.add(kid)
            self._ciphers[kid] = AESGCM(key)
        if len(self.index_key) < 32:
            raise KeyRingError("the resident index key must be at least 32 bytes")

    @classmethod
    def parse(cls, spec: str, index_key: str) -> KeyRing:
        """``"id:base64key,id:base64key"`` (first is current) and a base64 index key."""
        keys = []
        for part in spec.split(","):
            if not part.strip():
                continue
            kid, sep, b64 = part.strip().partition(":")
            if not sep:
                raise KeyRingError("SMARTCIRCLE_RESIDENT_KEYS entries look like id:base64key")
            keys.append((kid, decode_key(b64)))
        return cls(keys=keys, index_key=decode_key(index_key))

    @property
    def current(self) -> str:
        return self.keys[0][0]

    @property
    def key_ids(self) -> tuple[str, ...]:
        return tuple(kid for kid, _ in self.keys)

    # -- encryption ---------------------------------------------------------------------
    def encrypt(self, plaintext: str, aad: str) -> str:
        nonce = os.urandom(12)
        sealed = self._ciphers[self.current].encrypt(nonce, plaintext.encode(), aad.encode())
        return f"{self.current}:{_b64e(nonce + sealed)}"

    def decrypt(self, stored: str, aad: str) -> str:
        kid, _, body = stored.partition(":")
        cipher = self._ciphers.get(kid)
        if cipher is None:
            raise DecryptionFailed(f"no key {kid} in the ring")
        try:
            raw = _b64d(body)
            return cipher.decrypt(raw[:12], raw[12:], aad.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise DecryptionFailed("a stored value failed authentication") from exc

    def encrypt_opt(self, plaintext: str | None, aad: str) -> str | None:
        return None if plaintext is None or plaintext == "" else self.encrypt(plaintext, aad)

    def decrypt_opt(self, stored: str | None, aad: str) -> str | None:
        return None if stored is None else self.decrypt(stored, aad)

    @staticmethod
    def key_of(stored: str) -> str:
        return stored.partition(":")[0]

    # -- blind indexes ------------------------------------------------------------------
    def index(self, purpose: str, normalised: str) -> str:
        message = f"{purpose}\x1f{normalised}".encode()
        return hmac.new(self.index_key, message, hashlib.sha256).hexdigest()

    def fingerprint(self, purpose: str, value: str) -> str:
        """A short keyed digest for tags in logs or the KV store (never reversible)."""
        return self.index("fp:" + purpose, value)[:16]
