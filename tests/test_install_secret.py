"""The install's own secret: generated at first start outside production, kept under var/
(0600, created atomically), never the hard-coded development value, never shared by two
installs; production still refuses to start without a configured one."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import jwt
import pytest

from backend.config import INSECURE_SECRET, SECRET_FILE, Settings, SettingsError
from backend.security import encode_access_token

REPO = Path(__file__).resolve().parent.parent


def settings_in(var_dir: Path, **env: str) -> Settings:
    return Settings.from_env({"SMARTCIRCLE_VAR_DIR": str(var_dir), **env})


def test_first_start_generates_a_private_secret_and_later_starts_reuse_it(tmp_path: Path):
    first = settings_in(tmp_path)
    path = tmp_path / SECRET_FILE
    assert path.is_file()
    assert path.stat().st_mode & 0o777 == 0o600
    assert first.jwt_secret == path.read_text().strip()
    assert len(first.jwt_secret) >= 32 and first.jwt_secret != INSECURE_SECRET
    assert settings_in(tmp_path).jwt_secret == first.jwt_secret
    assert settings_in(tmp_path).token_key == first.token_key
    assert [p.name for p in tmp_path.iterdir()] == [SECRET_FILE]  # no temporary left behind


def test_two_installs_never_share_a_secret(tmp_path: Path):
    one = settings_in(tmp_path / "one")
    two = settings_in(tmp_path / "two")
    assert one.jwt_secret != two.jwt_secret
    token, _ = encode_access_token(
        secret=one.token_key, user_id="u", role="bureau_admin", session="s", street=None, ttl=60
    )
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(token, two.token_key, algorithms=["HS256"], options={"verify_iss": False})


def test_the_old_development_value_counts_as_unset(tmp_path: Path):
    settings = settings_in(tmp_path, SMARTCIRCLE_JWT_SECRET=INSECURE_SECRET)
    assert settings.jwt_secret != INSECURE_SECRET
    assert (tmp_path / SECRET_FILE).exists()


def test_a_configured_secret_is_used_and_nothing_is_written(tmp_path: Path):
    settings = settings_in(tmp_path, SMARTCIRCLE_JWT_SECRET="c" * 40)
    assert settings.jwt_secret == "c" * 40
    assert not (tmp_path / SECRET_FILE).exists()


def test_production_refuses_to_start_without_a_configured_secret(tmp_path: Path):
    env = {"SMARTCIRCLE_ENV": "production", "WECHAT_APPID": "wx1", "WECHAT_SECRET": "s"}
    with pytest.raises(SettingsError, match="SMARTCIRCLE_JWT_SECRET"):
        settings_in(tmp_path, **env)
    (tmp_path / SECRET_FILE).write_text("f" * 64)  # a file from a development run does not do
    with pytest.raises(SettingsError, match="SMARTCIRCLE_JWT_SECRET"):
        settings_in(tmp_path, **env)


def test_a_damaged_secret_file_stops_the_start_and_says_which(tmp_path: Path):
    (tmp_path / SECRET_FILE).write_text("short\n")
    with pytest.raises(SettingsError, match="secret.key"):
        settings_in(tmp_path)


def test_a_too_open_secret_file_is_made_private(tmp_path: Path):
    path = tmp_path / SECRET_FILE
    path.write_text("k" * 43 + "\n")
    path.chmod(0o644)
    assert settings_in(tmp_path).jwt_secret == "k" * 43
    assert path.stat().st_mode & 0o777 == 0o600


def test_unresolved_settings_have_no_keys():
    with pytest.raises(SettingsError, match="no secret"):
        _ = Settings().token_key


def test_workers_starting_at_once_agree_on_one_secret(tmp_path: Path):
    """Eight processes start together on an empty var dir: one secret, read by all."""
    script = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from backend.config import Settings\n"
        "root = Path(sys.argv[1])\n"
        "(root / f'ready-{sys.argv[2]}').touch()\n"
        "while not (root / 'go').exists(): time.sleep(0.001)\n"
        "print(Settings.from_env({'SMARTCIRCLE_VAR_DIR': sys.argv[1] + '/var'}).jwt_secret)\n"
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), str(i)],
            cwd=REPO,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(8)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 8:  # all imported, waiting at the line
        assert time.monotonic() < deadline
        time.sleep(0.01)
    (tmp_path / "go").touch()
    secrets = set()
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        secrets.add(out.strip())
    assert len(secrets) == 1
    (secret,) = secrets
    assert secret == (tmp_path / "var" / SECRET_FILE).read_text().strip()
    assert [p.name for p in (tmp_path / "var").iterdir()] == [SECRET_FILE]
