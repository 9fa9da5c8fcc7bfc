"""The book search's case-folded title and author, stored once on PostgreSQL.

The book search matches the user's text as Tortoise's ``icontains`` does, ``UPPER(title) LIKE
UPPER(?)``, over the whole catalogue (a leading wildcard can use no B-tree). PostgreSQL's
``UPPER`` of Chinese text costs ~1 µs a row, about half of a search's database time on the
3,000-title demo catalogue; stored generated columns compute it once per write instead, with the
same function, so the matches are the same. SQLite's ``UPPER`` (ASCII only) is cheap and it keeps
the expression: this migration does nothing there.
"""

from tortoise import migrations

from backend.migration_ops import RunSQLOn

FORWARD = [
    'ALTER TABLE "venues_book"'
    ' ADD COLUMN "title_upper" TEXT GENERATED ALWAYS AS (UPPER(CAST("title" AS VARCHAR))) STORED,'
    ' ADD COLUMN "author_upper" TEXT GENERATED ALWAYS AS (UPPER(CAST("author" AS VARCHAR))) STORED',
]

BACKWARD = [
    'ALTER TABLE "venues_book" DROP COLUMN IF EXISTS "title_upper",'
    ' DROP COLUMN IF EXISTS "author_upper"',
]


class Migration(migrations.Migration):
    dependencies = [("venues", "0007_venue_point_log")]

    initial = False

    operations = [RunSQLOn("postgres", FORWARD, reverse_sql=BACKWARD)]
