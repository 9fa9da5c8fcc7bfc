"""Settings from the environment: profiles, defaults and the production switch."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.config import INSECURE_SECRET, Settings, SettingsError
from backend.db import database_url

GOOD_PRODUCTION = {
    "SMARTCIRCLE_ENV": "production",
    "SMARTCIRCLE_JWT_SECRET": "s" * 40,
    "WECHAT_APPID": "wx123",
    "WECHAT_SECRET": "secret",
}


def test_embedded_is_the_default(tmp_path: Path):
    settings = Settings.from_env({"SMARTCIRCLE_VAR_DIR": str(tmp_path)})
    assert settings.profile == "embedded"
    assert settings.database_url == f"sqlite://{tmp_path / 'smartcircle.sqlite3'}"
    assert settings.workers == 1
    assert settings.redis_url == "" and settings.elasticsearch_url == ""
    assert settings.demo_signin is True
    assert "busy_timeout" in database_url(settings)


def test_embedded_runs_one_worker():
    with pytest.raises(SettingsError, match="one worker"):
        Settings.from_env({"SMARTCIRCLE_WORKERS": "4"})


def test_services_profile_needs_its_urls():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"SMARTCIRCLE_PROFILE": "services", "REDIS_URL": "redis://x"})
    assert "DATABASE_URL" in str(caught.value)
    assert "ELASTICSEARCH_URL" in str(caught.value)
    assert "REDIS_URL" not in str(caught.value)


def test_services_profile_allows_workers_and_pools(tmp_path: Path):
    settings = Settings.from_env(
        {
            "SMARTCIRCLE_VAR_DIR": str(tmp_path),
            "SMARTCIRCLE_PROFILE": "services",
            "DATABASE_URL": "postgres://u:p@127.0.0.1:5432/db",
            "REDIS_URL": "redis://127.0.0.1:6379/0",
            "ELASTICSEARCH_URL": "http://127.0.0.1:9200",
            "SMARTCIRCLE_WORKERS": "4",
            "SMARTCIRCLE_DB_POOL_MAX": "7",
        }
    )
    assert settings.workers == 4
    assert database_url(settings).endswith("?minsize=1&maxsize=7")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"SMARTCIRCLE_PROFILE": "cloud"}, "SMARTCIRCLE_PROFILE"),
        ({"SMARTCIRCLE_PORT": "eighty"}, "SMARTCIRCLE_PORT"),
        ({"SMARTCIRCLE_DEBUG": "maybe"}, "SMARTCIRCLE_DEBUG"),
    ],
)
def test_bad_values_are_named(env, message):
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env)


def test_production_refuses_insecure_defaults():
    with pytest.raises(SettingsError) as caught:
        Settings.from_env(
            {
                "SMARTCIRCLE_ENV": "production",
                "SMARTCIRCLE_DEMO_SIGNIN": "1",
                "SMARTCIRCLE_DEBUG": "1",
            }
        )
    text = str(caught.value)
    for part in (
        "SMARTCIRCLE_JWT_SECRET",
        "SMARTCIRCLE_DEMO_SIGNIN",
        "SMARTCIRCLE_DEBUG",
        "WECHAT_APPID",
    ):
        assert part in text


@pytest.mark.parametrize(
    "change",
    [
        {"SMARTCIRCLE_JWT_SECRET": INSECURE_SECRET},
        {"SMARTCIRCLE_JWT_SECRET": "short"},
        {"SMARTCIRCLE_DEMO_SIGNIN": "true"},
        {"SMARTCIRCLE_DEBUG": "true"},
        {"WECHAT_SECRET": ""},
    ],
)
def test_production_refuses_each_insecure_setting(change):
    with pytest.raises(SettingsError, match="refusing to start in production"):
        Settings.from_env({**GOOD_PRODUCTION, **change})


def test_production_with_secure_settings_starts_without_demo_sign_in():
    settings = Settings.from_env(GOOD_PRODUCTION)
    assert settings.environment == "production"
    assert settings.demo_signin is False


def test_describe_hides_secrets():
    settings = Settings.from_env(GOOD_PRODUCTION)
    described = settings.describe()
    assert "jwt_secret" not in described and "wechat_secret" not in described


def test_derived_keys_are_independent_stable_and_follow_the_secret():
    settings = Settings(jwt_secret="a" * 40)
    keys = [settings.token_key, settings.cursor_key, settings.origin_key]
    assert len(set(keys)) == 3
    assert settings.jwt_secret not in keys
    assert all(len(key) == 64 and int(key, 16) >= 0 for key in keys)
    again = Settings(jwt_secret="a" * 40)
    assert [again.token_key, again.cursor_key, again.origin_key] == keys
    rotated = settings.model_copy(update={"jwt_secret": "b" * 40})
    for old, new in zip(
        keys, [rotated.token_key, rotated.cursor_key, rotated.origin_key], strict=True
    ):
        assert old != new


def test_construction_takes_only_its_arguments(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("SMARTCIRCLE_VAR_DIR", str(tmp_path))
    monkeypatch.setenv("SMARTCIRCLE_PORT", "9999")
    monkeypatch.setenv("SMARTCIRCLE_DEBUG", "1")
    assert Settings().port == 8000 and Settings().debug is False
    from_env = Settings.from_env()
    assert from_env.port == 9999 and from_env.debug is True
    assert Settings.from_env(port=1234).port == 1234


def test_empty_variables_mean_unset_except_booleans_which_mean_off(tmp_path: Path):
    settings = Settings.from_env(
        {
            "SMARTCIRCLE_VAR_DIR": str(tmp_path),
            "SMARTCIRCLE_PORT": "",
            "SMARTCIRCLE_PROFILE": "",
            "SMARTCIRCLE_DEMO_SIGNIN": "",
        }
    )
    assert settings.port == 8000 and settings.profile == "embedded"
    assert settings.demo_signin is False


def test_settings_are_immutable():
    settings = Settings()
    with pytest.raises(ValueError, match="frozen"):
        settings.port = 1  # type: ignore[misc]
