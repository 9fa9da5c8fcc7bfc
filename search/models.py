"""The search index outbox: venue changes waiting to reach Elasticsearch."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model


class IndexOutbox(Model):
    """A venue whose index document must be rewritten (or deleted), written with the change."""

    id = fields.BigIntField(primary_key=True)
    venue_public_id = fields.CharField(max_length=32, db_index=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "search_index_outbox"
