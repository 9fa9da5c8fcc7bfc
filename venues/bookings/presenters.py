"""Presenters: bookings, units, policy, blackouts, slots and waitlist entries as the API shows."""

from __future__ import annotations

from datetime import date
from typing import Any

from venues.bookings.models import Blackout, BookableUnit, Booking, BookingStatus, WaitlistEntry
from venues.bookings.schemas import (
    BlackoutOut,
    BookingOut,
    DayBookings,
    OperatorBookingOut,
    PolicyOut,
    SlotOut,
    SlotsOut,
    UnitOut,
    UnitSlots,
    WaitlistOut,
)
from venues.bookings.settings import Policy
from venues.models import Venue


def unit_out(unit: BookableUnit, venue_id: str) -> UnitOut:
    """A unit with its rules."""
    return UnitOut.model_validate(
        {**{k: getattr(unit, k) for k in UnitOut.model_fields if hasattr(unit, k)}}
        | {"id": unit.public_id, "venue_id": venue_id}
    )


def booking_out(booking: Booking, *, owner: bool) -> BookingOut:
    """A booking; the check-in token only for its owner, once confirmed."""
    shown_token = owner and booking.status == BookingStatus.CONFIRMED
    return BookingOut(
        id=booking.public_id,
        unit_id=booking.unit.public_id,
        unit_name=booking.unit.name,
        venue_id=booking.venue.public_id,
        venue_name=booking.venue.name,
        start=booking.start,
        end=booking.end,
        party_size=booking.party_size,
        status=booking.status.value,
        hold_expires_at=booking.hold_expires_at,
        reason=booking.reason,
        from_waitlist=booking.from_waitlist,
        checkin_token=booking.qr_token if shown_token else None,
        created_at=booking.created_at,
        confirmed_at=booking.confirmed_at,
        checked_in_at=booking.checked_in_at,
    )


def masked(name: str) -> str:
    """A resident's name as operators see it: the first character only."""
    return (name[:1] + "*" * max(1, len(name) - 1)) if name else "居民"


def day_bookings_out(venue: Venue, day: date, rows: list[Booking]) -> DayBookings:
    """A venue's bookings on one day, residents' names masked."""
    return DayBookings(
        venue_id=venue.public_id,
        date=day,
        items=[
            OperatorBookingOut(
                **booking_out(b, owner=False).model_dump(), resident=masked(b.user.display_name)
            )
            for b in rows
        ],
    )


def policy_out(venue_id: str, policy: Policy, overridden: list[str]) -> PolicyOut:
    """A venue's effective policy and which rules it overrides."""
    return PolicyOut(venue_id=venue_id, overridden=overridden, **policy.__dict__)


def blackout_out(
    blackout: Blackout, venue_id: str, conflicts: list[str] | None = None
) -> BlackoutOut:
    """A blackout, with the bookings it overlaps when just created."""
    unit = blackout.unit if blackout.unit_id else None
    return BlackoutOut(
        id=blackout.public_id,
        venue_id=venue_id,
        unit_id=unit.public_id if isinstance(unit, BookableUnit) else None,
        starts_at=blackout.starts_at,
        ends_at=blackout.ends_at,
        reason=blackout.reason,
        conflicting_bookings=conflicts or [],
    )


def slots_out(
    venue: Venue, day: date, units: list[tuple[BookableUnit, list[dict[str, Any]]]]
) -> SlotsOut:
    """Every unit's slots on one day with their states."""
    return SlotsOut(
        venue_id=venue.public_id,
        date=day,
        units=[
            UnitSlots(
                unit_id=unit.public_id,
                name=unit.name,
                slot_minutes=unit.slot_minutes,
                interval_minutes=unit.interval_minutes,
                capacity=unit.capacity,
                requires_approval=unit.requires_approval,
                price_text=unit.price_text,
                slots=[SlotOut(**s) for s in found],
            )
            for unit, found in units
        ],
    )


def waitlist_out(entry: WaitlistEntry, unit_id: str, position: int | None) -> WaitlistOut:
    """A waitlist entry, its place in line while waiting and the offered booking."""
    booking = entry.booking if entry.booking_id else None
    return WaitlistOut(
        id=entry.public_id,
        unit_id=unit_id,
        start=entry.start,
        end=entry.end,
        status=entry.status.value,
        position=position,
        booking_id=booking.public_id if isinstance(booking, Booking) else None,
    )
