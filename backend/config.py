"""Settings, read from environment variables when the app is created (never at import time).

Every variable, its default and its meaning is listed in the README's configuration table.

The variables are read and validated by pydantic-settings. ``Settings(...)`` takes only its
arguments (tests and tools build settings that way); :meth:`Settings.from_env` reads the
environment (``os.environ`` or a given mapping), with keyword overrides taking precedence.
A bad value is a :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import timedelta
from functools import lru_cache
from pathlib import Path
from typing import Annotated, ClassVar, Self

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BeforeValidator, Field, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import (
    BaseSettings,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from backend import files

PROFILES = ("embedded", "services")
ENVIRONMENTS = ("development", "production")
# The development secret older versions shipped; treated as unset (never signs anything).
INSECURE_SECRET = "insecure-development-secret-change-me"  # noqa: S105
REPO_ROOT = Path(__file__).resolve().parent.parent

# HKDF ``info`` labels: one independent key per use of the configured secret.
TOKEN_KEY_INFO = b"smartcircle/access-token/v1"
CURSOR_KEY_INFO = b"smartcircle/list-cursor/v1"
ORIGIN_KEY_INFO = b"smartcircle/vote-origin/v1"


class SettingsError(ValueError):
    """Raised when the environment describes an impossible or unsafe configuration."""


SECRET_FILE = "secret.key"  # noqa: S105 - a file name
_SECRET_MIN = 32


def install_secret(var_dir: Path) -> str:
    """This install's secret: ``<var_dir>/secret.key``, created with a random value at first start.

    Outside production, when ``SMARTCIRCLE_JWT_SECRET`` is unset. The file is created atomically
    and readable by its owner only (0600) by :func:`backend.files.create_once`: several workers
    (or hosts on a shared directory) starting at once agree on one value, and no reader ever
    sees a half-written file. Two installs
    never share a value (256 random bits each); deleting the file rotates it (every token and
    cursor signed with the old one stops working).
    """
    path = var_dir / SECRET_FILE
    files.create_once(path, secrets.token_urlsafe(32) + "\n")
    text = path.read_text(encoding="utf-8").strip()
    if len(text) < _SECRET_MIN:
        raise SettingsError(
            f"{path} does not hold a secret of {_SECRET_MIN}+ characters; "
            "remove it to have a new one generated, or set SMARTCIRCLE_JWT_SECRET"
        )
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)
    return text


def parse_bool(value: str) -> bool:
    """An environment variable's boolean (1/0, true/false, yes/no, on/off)."""
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"not a boolean: {value!r}")


def _env_bool(value: object) -> object:
    return parse_bool(value) if isinstance(value, str) else value


# A boolean spelled the way :func:`parse_bool` reads it (pydantic's own set of words differs).
EnvBool = Annotated[bool, BeforeValidator(_env_bool)]


@lru_cache(maxsize=16)
def derive_key(secret: str, info: bytes) -> str:
    """A 256-bit key for one purpose (``info``) derived from ``secret`` with HKDF-SHA256.

    Returned as 64 hex characters, so it can stand wherever the secret string stood.
    """
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info)
    return hkdf.derive(secret.encode()).hex()


# The environment that :meth:`EnvSettings.read_env` is reading; None while plain construction.
_ENVIRONMENT: ContextVar[Mapping[str, str] | None] = ContextVar("_ENVIRONMENT", default=None)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping instead of ``os.environ``.

    Only the variables named by the fields' aliases are looked at. An empty variable counts as
    unset, except those listed in the model's ``empty_is_false`` (booleans where it means off).
    """

    def __init__(self, settings_cls: type[EnvSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        self._empty_is_false = settings_cls.empty_is_false
        self._names = {
            info.validation_alias
            for info in settings_cls.model_fields.values()
            if isinstance(info.validation_alias, str)
        }
        super().__init__(settings_cls, case_sensitive=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {
            name: value
            for name, value in self._environ.items()
            if name in self._names and (value != "" or name in self._empty_is_false)
        }


class EnvSettings(BaseSettings):
    """Frozen settings whose fields name their environment variable (``validation_alias``)."""

    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        case_sensitive=True,
        validate_by_name=True,
        validate_by_alias=True,
    )

    empty_is_false: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        environ = _ENVIRONMENT.get()
        if environ is None:
            return (init_settings,)
        return (init_settings, _MappingEnvSource(cls, environ))

    @classmethod
    def read_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Self:
        """Settings from ``env`` (default ``os.environ``); ``overrides`` win over it."""
        with _reading(os.environ if env is None else env):
            try:
                return cls(**overrides)
            except ValidationError as exc:
                problems = [cls.explain(cls.variable(err["loc"]), err) for err in exc.errors()]
                raise SettingsError("; ".join(problems)) from exc

    @classmethod
    def variable(cls, loc: tuple[str | int, ...]) -> str:
        """The environment variable of an error location (a field name or its alias)."""
        name = str(loc[0]) if loc else ""
        info = cls.model_fields.get(name)
        if info is not None and isinstance(info.validation_alias, str):
            return info.validation_alias
        return name

    @classmethod
    def explain(cls, variable: str, error: ErrorDetails) -> str:
        """One validation error as a message naming the variable."""
        if error["type"].startswith("int_"):
            return f"{variable} must be an integer"
        if error["type"] == "value_error":
            return f"{variable}: {error.get('ctx', {}).get('error', error['msg'])}"
        return f"{variable}: {error['msg']}"


@contextmanager
def _reading(environ: Mapping[str, str]) -> Iterator[None]:
    token = _ENVIRONMENT.set(environ)
    try:
        yield
    finally:
        _ENVIRONMENT.reset(token)


class Settings(EnvSettings):
    """Everything the app needs to know about its surroundings (immutable).

    Copies with changes: ``settings.model_copy(update={...})`` (not validated, like
    ``dataclasses.replace``).

    Keys: one secret is configured (``SMARTCIRCLE_JWT_SECRET``); each use gets its own key
    derived from it with HKDF-SHA256 under a distinct label: :attr:`token_key` (access tokens),
    :attr:`cursor_key` (list cursors), :attr:`origin_key` (vote-origin hashes). Each is a
    64-character hex string (256 bits), computed once per secret; knowing one reveals neither
    the others nor the secret. Use these, not ``jwt_secret`` itself.
    """

    # An empty boolean variable means off (as it always has); other empty variables are unset.
    empty_is_false: ClassVar[frozenset[str]] = frozenset(
        {
            "SMARTCIRCLE_DEBUG",
            "SMARTCIRCLE_DEMO_SIGNIN",
            "SMARTCIRCLE_SCHEDULER",
            "SMARTCIRCLE_LOG_JSON",
        }
    )

    profile: str = Field("embedded", validation_alias="SMARTCIRCLE_PROFILE")
    environment: str = Field("development", validation_alias="SMARTCIRCLE_ENV")
    debug: EnvBool = Field(False, validation_alias="SMARTCIRCLE_DEBUG")
    host: str = Field("127.0.0.1", validation_alias="SMARTCIRCLE_HOST")
    port: int = Field(8000, validation_alias="SMARTCIRCLE_PORT")
    workers: int = Field(1, validation_alias="SMARTCIRCLE_WORKERS")
    var_dir: Path = Field(REPO_ROOT / "var", validation_alias="SMARTCIRCLE_VAR_DIR")
    database_url: str = Field("", validation_alias="DATABASE_URL")
    redis_url: str = Field("", validation_alias="REDIS_URL")
    elasticsearch_url: str = Field("", validation_alias="ELASTICSEARCH_URL")
    es_index_prefix: str = Field("smartcircle", validation_alias="SMARTCIRCLE_ES_INDEX_PREFIX")
    kv_prefix: str = Field("sc:", validation_alias="SMARTCIRCLE_KV_PREFIX")
    kv_timeout: float = Field(1.0, gt=0, validation_alias="SMARTCIRCLE_KV_TIMEOUT")
    kv_retry_seconds: float = Field(5.0, gt=0, validation_alias="SMARTCIRCLE_KV_RETRY_SECONDS")
    jwt_secret: str = Field("", validation_alias="SMARTCIRCLE_JWT_SECRET")
    access_token_ttl: int = Field(900, validation_alias="SMARTCIRCLE_ACCESS_TOKEN_TTL")
    refresh_token_ttl: int = Field(30 * 24 * 3600, validation_alias="SMARTCIRCLE_REFRESH_TOKEN_TTL")
    demo_signin: EnvBool = Field(True, validation_alias="SMARTCIRCLE_DEMO_SIGNIN")
    wechat_base_url: str = Field("https://api.weixin.qq.com", validation_alias="WECHAT_BASE_URL")
    wechat_appid: str = Field("", validation_alias="WECHAT_APPID")
    wechat_secret: str = Field("", validation_alias="WECHAT_SECRET")
    wechat_timeout: float = Field(5.0, validation_alias="WECHAT_TIMEOUT")
    login_max_failures: int = Field(5, ge=1, validation_alias="SMARTCIRCLE_LOGIN_MAX_FAILURES")
    login_account_max_failures: int = Field(
        20, ge=1, validation_alias="SMARTCIRCLE_LOGIN_ACCOUNT_MAX_FAILURES"
    )
    login_address_max_failures: int = Field(
        100, ge=1, validation_alias="SMARTCIRCLE_LOGIN_ADDRESS_MAX_FAILURES"
    )
    login_lockout_seconds: int = Field(
        900, ge=1, validation_alias="SMARTCIRCLE_LOGIN_LOCKOUT_SECONDS"
    )
    password_hash_workers: int = Field(
        0, ge=0, validation_alias="SMARTCIRCLE_PASSWORD_HASH_WORKERS"
    )
    max_body_bytes: int = Field(10 * 1024 * 1024, validation_alias="SMARTCIRCLE_MAX_BODY_BYTES")
    db_pool_max: int = Field(20, validation_alias="SMARTCIRCLE_DB_POOL_MAX")
    scheduler_enabled: EnvBool = Field(True, validation_alias="SMARTCIRCLE_SCHEDULER")
    housekeeping_interval: int = Field(300, validation_alias="SMARTCIRCLE_HOUSEKEEPING_INTERVAL")
    parking_stale_minutes: int = Field(15, validation_alias="SMARTCIRCLE_PARKING_STALE_MINUTES")
    log_level: str = Field("INFO", validation_alias="SMARTCIRCLE_LOG_LEVEL")
    log_json: EnvBool = Field(True, validation_alias="SMARTCIRCLE_LOG_JSON")
    timezone: str = "Asia/Shanghai"
    extra: Mapping[str, str] = Field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from environment variables (``SMARTCIRCLE_*`` and the service URLs)."""
        settings = cls.read_env(env, **overrides)
        # Demo sign-in defaults to off in production, on elsewhere.
        if "demo_signin" not in settings.model_fields_set and settings.environment == "production":
            settings = settings.model_copy(update={"demo_signin": False})
        return settings.resolved()

    def resolved(self) -> Settings:
        """Fill profile-dependent defaults and check the combination."""
        if self.profile not in PROFILES:
            raise SettingsError(f"SMARTCIRCLE_PROFILE must be one of {PROFILES}")
        if self.environment not in ENVIRONMENTS:
            raise SettingsError(f"SMARTCIRCLE_ENV must be one of {ENVIRONMENTS}")
        updates: dict[str, object] = {}
        if self.profile == "embedded":
            if not self.database_url:
                updates["database_url"] = f"sqlite://{self.var_dir / 'smartcircle.sqlite3'}"
            if self.workers != 1:
                raise SettingsError("the embedded profile runs exactly one worker")
        else:
            missing = [
                name
                for name, value in (
                    ("DATABASE_URL", self.database_url),
                    ("REDIS_URL", self.redis_url),
                    ("ELASTICSEARCH_URL", self.elasticsearch_url),
                )
                if not value
            ]
            if missing:
                raise SettingsError(f"the services profile needs {', '.join(missing)}")
        if self.workers < 1:
            raise SettingsError("SMARTCIRCLE_WORKERS must be at least 1")
        result = self.model_copy(update=updates) if updates else self
        if result.environment == "production":
            result.check_production()
        elif not result.secret_configured:
            # Never the hard-coded value, never the same on two installs (see install_secret).
            result = result.model_copy(update={"jwt_secret": install_secret(result.var_dir)})
        return result

    @property
    def secret_configured(self) -> bool:
        """Whether ``SMARTCIRCLE_JWT_SECRET`` holds a secret of its own (not empty, not the old
        development value)."""
        return self.jwt_secret not in ("", INSECURE_SECRET)

    def check_production(self) -> None:
        """Refuse insecure defaults in production."""
        problems = []
        if not self.secret_configured or len(self.jwt_secret) < 32:
            problems.append("SMARTCIRCLE_JWT_SECRET must be set to a random value of 32+ chars")
        if self.demo_signin:
            problems.append("SMARTCIRCLE_DEMO_SIGNIN must be off")
        if self.debug:
            problems.append("SMARTCIRCLE_DEBUG must be off")
        if not self.wechat_appid or not self.wechat_secret:
            problems.append("WECHAT_APPID and WECHAT_SECRET must be set")
        if problems:
            raise SettingsError("refusing to start in production: " + "; ".join(problems))

    def _key(self, info: bytes) -> str:
        if not self.jwt_secret:
            raise SettingsError("no secret yet: build settings with from_env() or resolved()")
        return derive_key(self.jwt_secret, info)

    @property
    def token_key(self) -> str:
        """The key that signs and verifies access tokens (JWT HS256)."""
        return self._key(TOKEN_KEY_INFO)

    @property
    def cursor_key(self) -> str:
        """The key that signs list cursors (``backend.paging``)."""
        return self._key(CURSOR_KEY_INFO)

    @property
    def origin_key(self) -> str:
        """The key of the vote-origin HMAC hashes (IP, network, device)."""
        return self._key(ORIGIN_KEY_INFO)

    @property
    def parking_stale_after(self) -> timedelta:
        return timedelta(minutes=self.parking_stale_minutes)

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def describe(self) -> dict[str, object]:
        """Settings without secrets, for diagnostics."""
        hidden = {"jwt_secret", "wechat_secret", "database_url", "redis_url"}
        return {
            name: str(getattr(self, name)) for name in type(self).model_fields if name not in hidden
        }
