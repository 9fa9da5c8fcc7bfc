"""Neighbourhood resources: venues of every kind and the history of parking availability."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from backend.models import User, new_public_id


class VenueKind(StrEnum):
    READING_SPACE = "reading_space"
    SPORTS_VENUE = "sports_venue"
    PUBLIC_TOILET = "public_toilet"
    PARKING_LOT = "parking_lot"
    ACTIVITY_ROOM = "activity_room"
    ELDERLY_CARE = "elderly_care"
    SERVICE_CENTRE = "service_centre"


class VenueStatus(StrEnum):
    OPEN = "open"
    TEMPORARILY_CLOSED = "temporarily_closed"
    REMOVED = "removed"


class Venue(Model):
    """A place residents can find: location in WGS-84, hours in OSM opening_hours syntax."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    kind = fields.CharEnumField(VenueKind, max_length=20, db_index=True)
    name = fields.CharField(max_length=100)
    address = fields.CharField(max_length=200, default="")
    district = fields.CharField(max_length=32, default="")
    street = fields.CharField(max_length=64, default="")
    lat = fields.FloatField()
    lng = fields.FloatField()
    phone = fields.CharField(max_length=32, default="")
    description = fields.TextField(default="")
    photos: fields.Field[list] = fields.JSONField(default=list)
    opening_hours = fields.CharField(max_length=500, null=True)
    status = fields.CharEnumField(VenueStatus, max_length=20, default=VenueStatus.OPEN)
    closed_reason = fields.CharField(max_length=200, default="")
    verified_at = fields.DatetimeField(null=True)
    attributes: fields.Field[dict] = fields.JSONField(default=dict)
    accessible = fields.BooleanField(default=False)
    operator: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="operated_venues", null=True, on_delete=fields.SET_NULL
    )
    operator_id: int | None
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "venues_venue"
        indexes = (("lat", "lng"), ("operator_id",))


class ParkingObservation(Model):
    """One published free-spaces count of a parking lot, kept for charts."""

    id = fields.BigIntField(primary_key=True)
    venue: fields.ForeignKeyRelation[Venue] = fields.ForeignKeyField(
        "venues.Venue", related_name="parking_observations", on_delete=fields.CASCADE
    )
    venue_id: int
    free_spaces = fields.IntField()
    observed_at = fields.DatetimeField()
    received_at = fields.DatetimeField()

    class Meta:
        table = "venues_parking_observation"
        unique_together = (("venue", "observed_at"),)


class Book(Model):
    """A title in the city's reading catalogue, identified by its ISBN-13."""

    id = fields.IntField(primary_key=True)
    isbn13 = fields.CharField(max_length=13, unique=True)
    title = fields.CharField(max_length=200, db_index=True)
    author = fields.CharField(max_length=200, default="")
    publisher = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "venues_book"


class Holding(Model):
    """How many copies of a book a reading space holds, and how many are on the shelf."""

    id = fields.BigIntField(primary_key=True)
    venue: fields.ForeignKeyRelation[Venue] = fields.ForeignKeyField(
        "venues.Venue", related_name="holdings", on_delete=fields.CASCADE
    )
    venue_id: int
    book: fields.ForeignKeyRelation[Book] = fields.ForeignKeyField(
        "venues.Book", related_name="holdings", on_delete=fields.CASCADE
    )
    book_id: int
    copies = fields.IntField()
    copies_available = fields.IntField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "venues_holding"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear. The book's
        # index also covers what the book search reads of a holding (its venue and copies), so
        # the holdings of the matching titles are read from the index alone
        # (venues/migrations/0006_holding_book_covering_index.py).
        indexes = (("book_id", "venue_id", "copies", "copies_available"),)
        unique_together = (("venue", "book"),)


# The outbox of the search projection: written in the transaction that changes the venue
# (venues/outbox.py) and drained into Elasticsearch by ``search.index.drain``. It moved here from
# the ``search`` app; the table keeps its name (venues/migrations/0003_index_outbox.py).
class IndexOutbox(Model):
    """A venue whose index document must be rewritten (or deleted), written with the change."""

    id = fields.BigIntField(primary_key=True)
    venue_public_id = fields.CharField(max_length=32, db_index=True)
    created_at = fields.DatetimeField()

    class Meta:
        table = "search_index_outbox"
