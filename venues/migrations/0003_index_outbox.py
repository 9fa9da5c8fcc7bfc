# ruff: noqa: E501
"""The search index outbox moves from the ``search`` app to ``venues``; its table stays as it is."""
from tortoise import fields, migrations

from backend.migration_ops import AdoptOrCreateModel


class Migration(migrations.Migration):
    dependencies = [("venues", "0002_books_holdings")]

    initial = False

    operations = [
        AdoptOrCreateModel(
            name="IndexOutbox",
            fields=[
                (
                    "id",
                    fields.BigIntField(
                        generated=True, primary_key=True, unique=True, db_index=True
                    ),
                ),
                ("venue_public_id", fields.CharField(db_index=True, max_length=32)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "search_index_outbox",
                "app": "venues",
                "pk_attr": "id",
                "table_description": "A venue whose index document must be rewritten (or deleted), written with the change.",
            },
            bases=["Model"],
        ),
    ]
