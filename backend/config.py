"""Settings, read from environment variables when the app is created (never at import time).

Every variable, its default and its meaning is listed in the README's configuration table.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from datetime import timedelta
from pathlib import Path

PROFILES = ("embedded", "services")
ENVIRONMENTS = ("development", "production")
INSECURE_SECRET = "insecure-development-secret-change-me"  # noqa: S105 - documented default
REPO_ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """Raised when the environment describes an impossible or unsafe configuration."""


def parse_bool(value: str) -> bool:
    """An environment variable's boolean (1/0, true/false, yes/no, on/off)."""
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise SettingsError(f"not a boolean: {value!r}")


@dataclass(frozen=True)
class Settings:
    """Everything the app needs to know about its surroundings."""

    profile: str = "embedded"
    environment: str = "development"
    debug: bool = False
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    var_dir: Path = REPO_ROOT / "var"
    database_url: str = ""
    redis_url: str = ""
    elasticsearch_url: str = ""
    es_index_prefix: str = "smartcircle"
    kv_prefix: str = "sc:"
    jwt_secret: str = INSECURE_SECRET
    access_token_ttl: int = 900
    refresh_token_ttl: int = 30 * 24 * 3600
    demo_signin: bool = True
    wechat_base_url: str = "https://api.weixin.qq.com"
    wechat_appid: str = ""
    wechat_secret: str = ""
    wechat_timeout: float = 5.0
    login_max_failures: int = 5
    login_lockout_seconds: int = 900
    max_body_bytes: int = 10 * 1024 * 1024
    db_pool_max: int = 20
    scheduler_enabled: bool = True
    housekeeping_interval: int = 300
    parking_stale_minutes: int = 15
    log_level: str = "INFO"
    log_json: bool = True
    timezone: str = "Asia/Shanghai"
    extra: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Build settings from environment variables (``SMARTCIRCLE_*`` and the service URLs)."""
        env = os.environ if env is None else env
        values: dict[str, object] = {}
        simple = {
            "profile": "SMARTCIRCLE_PROFILE",
            "environment": "SMARTCIRCLE_ENV",
            "host": "SMARTCIRCLE_HOST",
            "database_url": "DATABASE_URL",
            "redis_url": "REDIS_URL",
            "elasticsearch_url": "ELASTICSEARCH_URL",
            "es_index_prefix": "SMARTCIRCLE_ES_INDEX_PREFIX",
            "kv_prefix": "SMARTCIRCLE_KV_PREFIX",
            "jwt_secret": "SMARTCIRCLE_JWT_SECRET",
            "wechat_base_url": "WECHAT_BASE_URL",
            "wechat_appid": "WECHAT_APPID",
            "wechat_secret": "WECHAT_SECRET",
            "log_level": "SMARTCIRCLE_LOG_LEVEL",
        }
        integers = {
            "port": "SMARTCIRCLE_PORT",
            "workers": "SMARTCIRCLE_WORKERS",
            "access_token_ttl": "SMARTCIRCLE_ACCESS_TOKEN_TTL",
            "refresh_token_ttl": "SMARTCIRCLE_REFRESH_TOKEN_TTL",
            "login_max_failures": "SMARTCIRCLE_LOGIN_MAX_FAILURES",
            "login_lockout_seconds": "SMARTCIRCLE_LOGIN_LOCKOUT_SECONDS",
            "max_body_bytes": "SMARTCIRCLE_MAX_BODY_BYTES",
            "db_pool_max": "SMARTCIRCLE_DB_POOL_MAX",
            "housekeeping_interval": "SMARTCIRCLE_HOUSEKEEPING_INTERVAL",
            "parking_stale_minutes": "SMARTCIRCLE_PARKING_STALE_MINUTES",
        }
        booleans = {
            "debug": "SMARTCIRCLE_DEBUG",
            "demo_signin": "SMARTCIRCLE_DEMO_SIGNIN",
            "scheduler_enabled": "SMARTCIRCLE_SCHEDULER",
            "log_json": "SMARTCIRCLE_LOG_JSON",
        }
        for attr, name in simple.items():
            if env.get(name):
                values[attr] = env[name]
        for attr, name in integers.items():
            if env.get(name):
                try:
                    values[attr] = int(env[name])
                except ValueError as exc:
                    raise SettingsError(f"{name} must be an integer") from exc
        for attr, name in booleans.items():
            if name in env:
                try:
                    values[attr] = parse_bool(env[name])
                except SettingsError as exc:
                    raise SettingsError(f"{name}: {exc}") from exc
        if env.get("SMARTCIRCLE_VAR_DIR"):
            values["var_dir"] = Path(env["SMARTCIRCLE_VAR_DIR"])
        if env.get("WECHAT_TIMEOUT"):
            values["wechat_timeout"] = float(env["WECHAT_TIMEOUT"])
        # Demo sign-in defaults to off in production, on elsewhere.
        if "demo_signin" not in values and values.get("environment") == "production":
            values["demo_signin"] = False
        values.update(overrides)
        settings = cls(**values)  # type: ignore[arg-type]
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
        result = replace(self, **updates) if updates else self  # type: ignore[arg-type]
        if result.environment == "production":
            result.check_production()
        return result

    def check_production(self) -> None:
        """Refuse insecure defaults in production."""
        problems = []
        if self.jwt_secret == INSECURE_SECRET or len(self.jwt_secret) < 32:
            problems.append("SMARTCIRCLE_JWT_SECRET must be set to a random value of 32+ chars")
        if self.demo_signin:
            problems.append("SMARTCIRCLE_DEMO_SIGNIN must be off")
        if self.debug:
            problems.append("SMARTCIRCLE_DEBUG must be off")
        if not self.wechat_appid or not self.wechat_secret:
            problems.append("WECHAT_APPID and WECHAT_SECRET must be set")
        if problems:
            raise SettingsError("refusing to start in production: " + "; ".join(problems))

    @property
    def parking_stale_after(self) -> timedelta:
        return timedelta(minutes=self.parking_stale_minutes)

    @property
    def uses_services(self) -> bool:
        return self.profile == "services"

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    def describe(self) -> dict[str, object]:
        """Settings without secrets, for diagnostics."""
        hidden = {"jwt_secret", "wechat_secret", "database_url", "redis_url"}
        return {f.name: str(getattr(self, f.name)) for f in fields(self) if f.name not in hidden}
