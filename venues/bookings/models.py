"""Bookable units, their bookings and the claims that make double bookings impossible."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from backend.models import User, new_public_id
from venues.models import Venue


class BookingStatus(StrEnum):
    HELD = "held"
    PENDING_APPROVAL = "pending_approval"
    CONFIRMED = "confirmed"
    CHECKED_IN = "checked_in"
    COMPLETED = "completed"
    CANCELLED = "cancelled"
    CANCELLED_BY_VENUE = "cancelled_by_venue"
    EXPIRED = "expired"
    NO_SHOW = "no_show"
    REJECTED = "rejected"


# Bookings that hold their cells and count towards a resident's quota.
ACTIVE = (
    BookingStatus.HELD,
    BookingStatus.PENDING_APPROVAL,
    BookingStatus.CONFIRMED,
    BookingStatus.CHECKED_IN,
)


class WaitStatus(StrEnum):
    WAITING = "waiting"
    OFFERED = "offered"
    ACCEPTED = "accepted"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


class MessageStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"


class BookableUnit(Model):
    """A court or room of a venue with its booking rules (minutes unless said otherwise)."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    venue: fields.ForeignKeyRelation[Venue] = fields.ForeignKeyField(
        "venues.Venue", related_name="bookable_units", on_delete=fields.CASCADE
    )
    venue_id: int
    name = fields.CharField(max_length=64)
    active = fields.BooleanField(default=True)
    slot_minutes = fields.IntField(default=60)
    interval_minutes = fields.IntField(default=30)
    min_minutes = fields.IntField(default=60)
    max_minutes = fields.IntField(default=120)
    buffer_minutes = fields.IntField(default=0)
    opens_days_ahead = fields.IntField(default=7)
    min_notice_minutes = fields.IntField(default=30)
    capacity = fields.IntField(default=1)
    requires_approval = fields.BooleanField(default=False)
    price_text = fields.CharField(max_length=100, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "bookings_unit"
        unique_together = (("venue", "name"),)


class VenuePolicy(Model):
    """Booking policy overrides of one venue over the city-wide defaults."""

    id = fields.IntField(primary_key=True)
    venue: fields.OneToOneRelation[Venue] = fields.OneToOneField(
        "venues.Venue", related_name="booking_policy", on_delete=fields.CASCADE
    )
    overrides: fields.Field[dict] = fields.JSONField(default=dict)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "bookings_venue_policy"


class Blackout(Model):
    """A period when a unit (or every unit of the venue) cannot be booked."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    venue: fields.ForeignKeyRelation[Venue] = fields.ForeignKeyField(
        "venues.Venue", related_name="blackouts", on_delete=fields.CASCADE
    )
    venue_id: int
    unit: fields.ForeignKeyNullableRelation[BookableUnit] = fields.ForeignKeyField(
        "bookings.BookableUnit", related_name="blackouts", null=True, on_delete=fields.CASCADE
    )
    unit_id: int | None
    starts_at = fields.DatetimeField()
    ends_at = fields.DatetimeField()
    reason = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField()

    class Meta:
        table = "bookings_blackout"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("venue_id",), ("unit_id",))


class Booking(Model):
    """One resident's booking of a unit from start to end (the buffer follows the end)."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    unit: fields.ForeignKeyRelation[BookableUnit] = fields.ForeignKeyField(
        "bookings.BookableUnit", related_name="bookings", on_delete=fields.CASCADE
    )
    unit_id: int
    venue: fields.ForeignKeyRelation[Venue] = fields.ForeignKeyField(
        "venues.Venue", related_name="bookings", on_delete=fields.CASCADE
    )
    venue_id: int
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="bookings", on_delete=fields.CASCADE
    )
    user_id: int
    start = fields.DatetimeField(db_index=True)
    end = fields.DatetimeField()
    party_size = fields.IntField(default=1)
    status = fields.CharEnumField(BookingStatus, max_length=20, db_index=True)
    hold_expires_at = fields.DatetimeField(null=True)
    qr_token = fields.CharField(max_length=64, unique=True, null=True)
    reminder_queued = fields.BooleanField(default=False)
    from_waitlist = fields.BooleanField(default=False)
    reason = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField()
    confirmed_at = fields.DatetimeField(null=True)
    checked_in_at = fields.DatetimeField(null=True)
    ended_at = fields.DatetimeField(null=True)

    class Meta:
        table = "bookings_booking"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("venue_id",), ("user_id",), ("unit_id",))


class SlotClaim(Model):
    """One grid cell of a unit claimed by an active booking: the unique pair forbids overlaps."""

    id = fields.BigIntField(primary_key=True)
    unit: fields.ForeignKeyRelation[BookableUnit] = fields.ForeignKeyField(
        "bookings.BookableUnit", related_name="claims", on_delete=fields.CASCADE
    )
    cell_start = fields.DatetimeField()
    booking: fields.ForeignKeyRelation[Booking] = fields.ForeignKeyField(
        "bookings.Booking", related_name="claims", on_delete=fields.CASCADE
    )

    class Meta:
        table = "bookings_claim"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("booking_id",),)
        unique_together = (("unit", "cell_start"),)


class ResidentState(Model):
    """Per resident booking state, locked first in every booking transaction."""

    id = fields.IntField(primary_key=True)
    user: fields.OneToOneRelation[User] = fields.OneToOneField(
        "core.User", related_name="booking_state", on_delete=fields.CASCADE
    )
    version = fields.IntField(default=0)
    suspended_until = fields.DatetimeField(null=True)

    class Meta:
        table = "bookings_resident_state"


class WaitlistEntry(Model):
    """A resident waiting for a taken slot, offered it in order of arrival."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    unit: fields.ForeignKeyRelation[BookableUnit] = fields.ForeignKeyField(
        "bookings.BookableUnit", related_name="waitlist", on_delete=fields.CASCADE
    )
    unit_id: int
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="waitlist_entries", on_delete=fields.CASCADE
    )
    user_id: int
    start = fields.DatetimeField()
    end = fields.DatetimeField()
    status = fields.CharEnumField(WaitStatus, max_length=12, default=WaitStatus.WAITING)
    booking: fields.ForeignKeyNullableRelation[Booking] = fields.ForeignKeyField(
        "bookings.Booking", related_name="waitlist_entries", null=True, on_delete=fields.SET_NULL
    )
    booking_id: int | None
    created_at = fields.DatetimeField()

    class Meta:
        table = "bookings_waitlist"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("user_id",), ("booking_id",))
        unique_together = (("unit", "user", "start"),)


class OutboxMessage(Model):
    """A WeChat subscription message to deliver once, claimed before sending."""

    id = fields.BigIntField(primary_key=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="outbox_messages", on_delete=fields.CASCADE
    )
    kind = fields.CharField(max_length=40)
    openid = fields.CharField(max_length=128)
    template_id = fields.CharField(max_length=100)
    page = fields.CharField(max_length=200, default="")
    data: fields.Field[dict] = fields.JSONField(default=dict)
    dedupe_key = fields.CharField(max_length=160, unique=True)
    status = fields.CharEnumField(MessageStatus, max_length=12, default=MessageStatus.PENDING)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(db_index=True)
    claimed_at = fields.DatetimeField(null=True)
    sent_at = fields.DatetimeField(null=True)
    last_error = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField()

    class Meta:
        table = "bookings_outbox"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("user_id",),)
