"""A log of the venues whose place in the search changed, so each process's in-memory point
index (``search/points.py``) follows every write on SQLite without re-reading the table.

``venues_venue_point_log`` gets one row, numbered in commit order (``AUTOINCREMENT``: SQLite has
one writer at a time and never reuses a number), whenever a venue is inserted or deleted, or an
update changes what the point index holds: its point, kind, accessibility, or whether it is
removed. Other updates (a parking lot's free spaces, a name) write nothing. Triggers write it on
every path: ORM saves, bulk inserts, raw updates and deletes. Only the last 4,096 rows are kept;
a process that finds a gap reloads its index. PostgreSQL searches through its B-tree without
such an index: this migration does nothing there.
"""

from tortoise import migrations

from backend.migration_ops import RunSQLOn

LOG = '"venues_venue_point_log"'

FORWARD = [
    f"CREATE TABLE {LOG} (seq INTEGER PRIMARY KEY AUTOINCREMENT, venue_id INTEGER NOT NULL)",
    f"""CREATE TRIGGER "venues_venue_point_log_trim" AFTER INSERT ON {LOG}
    WHEN NEW.seq % 1024 = 0
    BEGIN
        DELETE FROM {LOG} WHERE seq <= NEW.seq - 4096;
    END""",
    f"""CREATE TRIGGER "venues_venue_point_log_insert" AFTER INSERT ON "venues_venue"
    BEGIN
        INSERT INTO {LOG} (venue_id) VALUES (NEW."id");
    END""",
    f"""CREATE TRIGGER "venues_venue_point_log_update"
    AFTER UPDATE OF "id", "lat", "lng", "kind", "accessible", "status" ON "venues_venue"
    WHEN OLD."id" IS NOT NEW."id" OR OLD."lat" IS NOT NEW."lat" OR OLD."lng" IS NOT NEW."lng"
        OR OLD."kind" IS NOT NEW."kind" OR OLD."accessible" IS NOT NEW."accessible"
        OR (OLD."status" = 'removed') IS NOT (NEW."status" = 'removed')
    BEGIN
        INSERT INTO {LOG} (venue_id) VALUES (OLD."id");
        INSERT INTO {LOG} (venue_id) SELECT NEW."id" WHERE NEW."id" IS NOT OLD."id";
    END""",
    f"""CREATE TRIGGER "venues_venue_point_log_delete" AFTER DELETE ON "venues_venue"
    BEGIN
        INSERT INTO {LOG} (venue_id) VALUES (OLD."id");
    END""",
]

BACKWARD = [
    'DROP TRIGGER IF EXISTS "venues_venue_point_log_delete"',
    'DROP TRIGGER IF EXISTS "venues_venue_point_log_update"',
    'DROP TRIGGER IF EXISTS "venues_venue_point_log_insert"',
    'DROP TRIGGER IF EXISTS "venues_venue_point_log_trim"',
    f"DROP TABLE IF EXISTS {LOG}",
]


class Migration(migrations.Migration):
    dependencies = [("venues", "0006_holding_book_covering_index")]

    initial = False

    operations = [RunSQLOn("sqlite", FORWARD, reverse_sql=BACKWARD)]
