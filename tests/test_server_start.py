"""A server that cannot start, or a migration that fails, exits non-zero saying why: it never
hangs half-done (once the database was open, the SQLite client's thread kept a failed process
alive for ever, and a test waiting for a server to answer waited out its deadline)."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from tests.fault_helpers import free_port
from tests.server_process import REPO, migrate, process_env, run_migrate, server_command


def _env(var_dir: Path) -> dict[str, str]:
    return process_env(var_dir, "start", profile="embedded")


def _serve(env: dict[str, str], *processes: str) -> subprocess.CompletedProcess[str]:
    # A hang shows as TimeoutExpired (subprocess.run kills the process first). Its own session:
    # when a worker fails, Sanic's manager kills its workers' whole process group.
    return subprocess.run(
        server_command(
            free_port(), app="server.app:create_app", processes=processes or ("--single-process",)
        ),
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
        start_new_session=True,
    )


def test_a_server_on_an_unmigrated_database_exits(tmp_path: Path):
    with sqlite3.connect(tmp_path / "smartcircle.sqlite3"):
        pass  # an empty database
    done = _serve(_env(tmp_path))
    assert done.returncode != 0
    assert "the database is not migrated" in done.stdout + done.stderr


def test_workers_without_a_database_exit_saying_so_and_create_none(tmp_path: Path):
    """Two workers at once: each says there is no database (they raced to create an empty
    one before, and one of them only said "database is locked")."""
    done = _serve(_env(tmp_path), "--workers", "2")
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "there is no database at" in output and "make migrate" in output
    assert "database is locked" not in output
    assert not (tmp_path / "smartcircle.sqlite3").exists()


def test_a_server_whose_feature_cannot_start_exits(tmp_path: Path):
    env = _env(tmp_path)
    migrate(env)
    # The residents feature starts after the database is open: half a key configuration.
    done = _serve({**env, "SMARTCIRCLE_RESIDENT_KEYS": "dev-a:" + "A" * 43 + "="})
    assert done.returncode != 0
    assert "set both SMARTCIRCLE_RESIDENT_KEYS and SMARTCIRCLE_RESIDENT_INDEX_KEY" in (
        done.stdout + done.stderr
    )


def test_a_failed_migration_exits(tmp_path: Path):
    with sqlite3.connect(tmp_path / "smartcircle.sqlite3") as conn:
        conn.execute("CREATE TABLE core_user (x INTEGER)")  # in the way of the first migration
    done = run_migrate(_env(tmp_path), timeout=90)
    assert done.returncode != 0
    assert 'table "core_user" already exists' in done.stderr
