"""Migrations: the index outbox moved from the ``search`` app to ``venues`` without losing rows."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

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
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEST_DATABASE_URL")}
    env.update(SMARTCIRCLE_PROFILE="embedded", SMARTCIRCLE_VAR_DIR=str(var_dir))
    done = subprocess.run(
        [sys.executable, "-m", "server", "migrate"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


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
