"""Migrations: the index outbox moved from the ``search`` app to ``venues`` without losing rows;
campaigns became pre-moderated; existing venues fill the R*Tree of venues 0005 (SQLite); the
server refuses to start on a database that lacks a migration."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from backend.db import NotMigrated, migrations_on_disk, pending_migrations, require_migrated
from backend.features import ModelApp
from server.orm import apps
from tests.server_process import migrate, process_env

REPO = Path(__file__).resolve().parent.parent

# The table as the ``search`` app's migration created it before the move.
OLD_TABLE = """
CREATE TABLE "search_index_outbox" (
    "id" INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    "venue_public_id" VARCHAR(32) NOT NULL,
    "created_at" TIMESTAMP NOT NULL
);
CREATE INDEX "idx_search_inde_venue_p_5b77a4" ON "search_index_outbox" ("venue_public_id");
INSERT INTO "search_index_outbox" ("venue_public_id", "created_at")
    VALUES ('waiting-venue', '2026-11-30 08:00:00');
"""


def _migrate(var_dir: Path) -> None:
    migrate(process_env(var_dir, "migrations", profile="embedded"))


def test_an_existing_outbox_table_is_adopted_with_its_rows(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "smartcircle.sqlite3") as conn:
        conn.executescript(OLD_TABLE)
    _migrate(tmp_path)
    with sqlite3.connect(tmp_path / "smartcircle.sqlite3") as conn:
        rows = conn.execute('SELECT venue_public_id FROM "search_index_outbox"').fetchall()
    assert rows == [("waiting-venue",)]


def test_a_new_database_gets_the_outbox_table(tmp_path: Path) -> None:
    _migrate(tmp_path)
    with sqlite3.connect(tmp_path / "smartcircle.sqlite3") as conn:
        columns = [row[1] for row in conn.execute('PRAGMA table_info("search_index_outbox")')]
    assert columns == ["id", "venue_public_id", "created_at"]


# A campaign row as it was before migration crowdsource 0005 (no moderation column).
OLD_CAMPAIGN = """
INSERT INTO "crowdsource_campaign" (
    "public_id", "title", "description", "categories", "audiences", "collecting_starts_at",
    "collecting_ends_at", "voting_starts_at", "voting_ends_at", "closes_at", "phase_state",
    "phase", "submission_cap", "report_threshold", "votes_per_minute_person",
    "votes_per_minute_ip", "created_by", "created_at", "updated_at"
) VALUES (
    'running-campaign', '进行中的活动', '', '[]', '["resident"]', '2026-07-01 00:00:00',
    '2026-08-01 00:00:00', '2026-07-01 00:00:00', '2026-08-01 00:00:00',
    '2026-09-01 00:00:00', 'collecting+voting', 'collecting', 5, 5, 30, 600, '',
    '2026-07-01 00:00:00', '2026-07-01 00:00:00'
);
"""


def test_existing_campaigns_become_pre_moderated(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env.update(SMARTCIRCLE_PROFILE="embedded", SMARTCIRCLE_VAR_DIR=str(tmp_path))
    before = subprocess.run(
        [sys.executable, "-m", "tortoise", "-c", "server.orm.TORTOISE_ORM", "migrate"]
        + ["crowdsource", "0004_vote_integrity"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert before.returncode == 0, before.stderr[-2000:]
    with sqlite3.connect(tmp_path / "smartcircle.sqlite3") as conn:
        conn.executescript(OLD_CAMPAIGN)
    _migrate(tmp_path)
    with sqlite3.connect(tmp_path / "smartcircle.sqlite3") as conn:
        rows = conn.execute('SELECT public_id, moderation FROM "crowdsource_campaign"').fetchall()
    assert rows == [("running-campaign", "pre")]


# Venues as they were before migration venues 0005 (no R*Tree): two open, one removed.
OLD_VENUES = """
INSERT INTO "venues_venue" (
    "public_id", "kind", "name", "address", "district", "street", "lat", "lng", "phone",
    "description", "photos", "status", "closed_reason", "attributes", "accessible",
    "created_at", "updated_at"
) VALUES
    ('near', 'public_toilet', '公厕甲', '', '', '', 31.8206, 117.2272, '', '', '[]', 'open', '',
     '{}', 0, '2026-11-30 08:00:00', '2026-11-30 08:00:00'),
    ('closed', 'public_toilet', '公厕乙', '', '', '', 31.8306, 117.2372, '', '', '[]',
     'temporarily_closed', '维修', '{}', 0, '2026-11-30 08:00:00', '2026-11-30 08:00:00'),
    ('gone', 'public_toilet', '公厕丙', '', '', '', 31.8106, 117.2172, '', '', '[]', 'removed',
     '撤除', '{}', 0, '2026-11-30 08:00:00', '2026-11-30 08:00:00');
"""


def _rtree(conn: sqlite3.Connection) -> dict[str, tuple[float, float, float, float]]:
    rows = conn.execute(
        'SELECT v."public_id", r.min_lat, r.max_lat, r.min_lng, r.max_lng '
        'FROM "venues_venue_rtree" AS r JOIN "venues_venue" AS v ON v."id" = r.id'
    ).fetchall()
    return {row[0]: row[1:] for row in rows}


def test_existing_venues_fill_the_rtree_and_later_writes_keep_it(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env.update(SMARTCIRCLE_PROFILE="embedded", SMARTCIRCLE_VAR_DIR=str(tmp_path))
    before = subprocess.run(
        [sys.executable, "-m", "tortoise", "-c", "server.orm.TORTOISE_ORM", "migrate"]
        + ["venues", "0004_foreign_key_indexes"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert before.returncode == 0, before.stderr[-2000:]
    path = tmp_path / "smartcircle.sqlite3"
    with sqlite3.connect(path) as conn:
        assert not conn.execute(
            "SELECT name FROM sqlite_master WHERE name = 'venues_venue_rtree'"
        ).fetchall()
        conn.executescript(OLD_VENUES)
    _migrate(tmp_path)
    with sqlite3.connect(path) as conn:
        index = _rtree(conn)
        assert sorted(index) == ["closed", "near"]
        min_lat, max_lat, min_lng, max_lng = index["near"]
        assert min_lat <= 31.8206 <= max_lat and min_lng <= 117.2272 <= max_lng
        # Raw writes after the migration: the triggers keep the index.
        conn.execute('UPDATE "venues_venue" SET "status" = \'open\' WHERE "public_id" = \'gone\'')
        conn.execute('UPDATE "venues_venue" SET "lat" = 40.0 WHERE "public_id" = \'near\'')
        conn.execute('DELETE FROM "venues_venue" WHERE "public_id" = \'closed\'')
        index = _rtree(conn)
    assert sorted(index) == ["gone", "near"]
    assert index["near"][0] <= 40.0 <= index["near"][1]


async def test_the_server_refuses_a_database_that_lacks_a_migration(ctx) -> None:
    # The suite's database is migrated: nothing is pending for the real apps.
    assert await pending_migrations(apps()) == []
    await require_migrated(apps())
    # An app whose migrations the database never applied (the venues' files under another
    # label): the start fails naming them, not later on a missing table.
    behind = {**apps(), "unapplied": ModelApp(modules=(), migrations="venues.migrations")}
    missing = await pending_migrations(behind)
    on_disk = sorted(name for label, name in migrations_on_disk(behind) if label == "unapplied")
    assert missing == [f"unapplied.{name}" for name in on_disk] and len(missing) >= 8
    with pytest.raises(NotMigrated, match=r"unapplied\.0001_.* and \d+ more.*make migrate"):
        await require_migrated(behind)
