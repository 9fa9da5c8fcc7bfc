"""An R*Tree of venue points on SQLite, so the database search reads the box, not the band.

``venues_venue_rtree`` holds one entry per venue that is not removed: its point as a degenerate
box (SQLite stores 32-bit bounds, lower ones rounded down and upper ones up, so the stored box
always contains the exact point). Triggers keep it equal to ``venues_venue`` on every write path:
ORM saves, bulk inserts, raw updates and deletes. Existing venues are copied in here. PostgreSQL
keeps its ``(lat, lng)`` B-tree: this migration does nothing there.
"""

from tortoise import migrations

from backend.migration_ops import RunSQLOn

FORWARD = [
    'CREATE VIRTUAL TABLE "venues_venue_rtree" USING rtree(id, min_lat, max_lat, min_lng, max_lng)',
    """INSERT INTO "venues_venue_rtree" (id, min_lat, max_lat, min_lng, max_lng)
    SELECT "id", "lat", "lat", "lng", "lng" FROM "venues_venue" WHERE "status" <> 'removed'""",
    """CREATE TRIGGER "venues_venue_rtree_insert" AFTER INSERT ON "venues_venue"
    WHEN NEW."status" <> 'removed'
    BEGIN
        INSERT OR REPLACE INTO "venues_venue_rtree" (id, min_lat, max_lat, min_lng, max_lng)
        VALUES (NEW."id", NEW."lat", NEW."lat", NEW."lng", NEW."lng");
    END""",
    """CREATE TRIGGER "venues_venue_rtree_update"
    AFTER UPDATE OF "id", "lat", "lng", "status" ON "venues_venue"
    BEGIN
        DELETE FROM "venues_venue_rtree" WHERE id = OLD."id";
        INSERT OR REPLACE INTO "venues_venue_rtree" (id, min_lat, max_lat, min_lng, max_lng)
        SELECT NEW."id", NEW."lat", NEW."lat", NEW."lng", NEW."lng"
        WHERE NEW."status" <> 'removed';
    END""",
    """CREATE TRIGGER "venues_venue_rtree_delete" AFTER DELETE ON "venues_venue"
    BEGIN
        DELETE FROM "venues_venue_rtree" WHERE id = OLD."id";
    END""",
]

BACKWARD = [
    'DROP TRIGGER IF EXISTS "venues_venue_rtree_delete"',
    'DROP TRIGGER IF EXISTS "venues_venue_rtree_update"',
    'DROP TRIGGER IF EXISTS "venues_venue_rtree_insert"',
    'DROP TABLE IF EXISTS "venues_venue_rtree"',
]


class Migration(migrations.Migration):
    dependencies = [("venues", "0004_foreign_key_indexes")]

    initial = False

    operations = [RunSQLOn("sqlite", FORWARD, reverse_sql=BACKWARD)]
