"""Resident settings: the key ring and the limits, read once at start-up into a slot.

Keys come from ``SMARTCIRCLE_RESIDENT_KEYS`` (``"id:base64key,..."``, first is current) and
``SMARTCIRCLE_RESIDENT_INDEX_KEY`` (base64, the blind-index key, never rotated with the others).
In production both must be set, or the app refuses to start. Elsewhere, when unset, keys are
generated once per installation and kept in ``<var dir>/resident-keys.json`` (mode 0600, never
committed: ``var/`` is ignored), so two installations never share keys.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from backend import files
from backend.config import Settings, SettingsError
from backend.context import AppContext, Slot
from residents.crypto import KeyRing, KeyRingError, new_key

KEYS_VAR = "SMARTCIRCLE_RESIDENT_KEYS"
INDEX_KEY_VAR = "SMARTCIRCLE_RESIDENT_INDEX_KEY"
DEV_KEY_FILE = "resident-keys.json"


@dataclass(frozen=True)
class ResidentSettings:
    """The key ring and the tunable limits of the residents feature."""

    ring: KeyRing
    bind_max_attempts: int = 5
    bind_window_seconds: int = 3600
    import_max_rows: int = 100_000
    rotation_batch: int = 500

    @classmethod
    def from_env(cls, settings: Settings, env: Mapping[str, str] | None = None) -> ResidentSettings:
        env = os.environ if env is None else env
        ring = load_key_ring(settings, env)

        def integer(name: str, default: int) -> int:
            raw = env.get(name)
            if not raw:
                return default
            try:
                value = int(raw)
            except ValueError:
                raise SettingsError(f"{name} must be an integer") from None
            if value < 1:
                raise SettingsError(f"{name} must be at least 1")
            return value

        return cls(
            ring=ring,
            bind_max_attempts=integer("SMARTCIRCLE_RESIDENT_BIND_MAX_ATTEMPTS", 5),
            bind_window_seconds=integer("SMARTCIRCLE_RESIDENT_BIND_WINDOW_SECONDS", 3600),
            import_max_rows=integer("SMARTCIRCLE_RESIDENT_IMPORT_MAX_ROWS", 100_000),
            rotation_batch=integer("SMARTCIRCLE_RESIDENT_ROTATION_BATCH", 500),
        )


def load_key_ring(settings: Settings, env: Mapping[str, str] | None = None) -> KeyRing:
    """The configured ring; in development a generated one kept under the var dir."""
    env = os.environ if env is None else env
    spec, index_key = env.get(KEYS_VAR, "").strip(), env.get(INDEX_KEY_VAR, "").strip()
    if spec or index_key:
        if not (spec and index_key):
            raise SettingsError(f"set both {KEYS_VAR} and {INDEX_KEY_VAR}")
        try:
            return KeyRing.parse(spec, index_key)
        except KeyRingError as exc:
            raise SettingsError(str(exc)) from None
    if settings.environment == "production":
        raise SettingsError(
            f"refusing to start in production: {KEYS_VAR} and {INDEX_KEY_VAR} must be set"
        )
    return _development_ring(settings.var_dir / DEV_KEY_FILE)


def _development_ring(path: Path) -> KeyRing:
    data = {"keys": [["dev-" + os.urandom(3).hex(), new_key()]], "index_key": new_key()}
    # Several workers start at once: exactly one ring is kept, and none reads it half-written.
    files.create_once(path, json.dumps(data))
    data = json.loads(path.read_text(encoding="utf-8"))
    spec = ",".join(f"{kid}:{key}" for kid, key in data["keys"])
    return KeyRing.parse(spec, data["index_key"])


def add_development_key(settings: Settings) -> str:
    """Put a new current key at the front of the development ring (for trying a rotation)."""
    path = settings.var_dir / DEV_KEY_FILE
    _development_ring(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    kid = "dev-" + os.urandom(3).hex()
    data["keys"].insert(0, [kid, new_key()])
    files.replace(path, json.dumps(data))
    return kid


RESIDENT_SETTINGS: Slot[ResidentSettings] = Slot("residents.settings")


def resident_settings(ctx: AppContext) -> ResidentSettings:
    return ctx.get(RESIDENT_SETTINGS)


def key_ring(ctx: AppContext) -> KeyRing:
    return ctx.get(RESIDENT_SETTINGS).ring
