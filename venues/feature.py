"""Venues: places, parking, books and holdings; bookings of courts and rooms."""

from __future__ import annotations

from backend.context import AppContext
from backend.features import Feature, JobDecl, ModelApp
from venues.bookings import scheduled as bookings
from venues.bookings.settings import BOOKING_SETTINGS, BookingSettings
from venues.bookings.views import bp as bookings_bp
from venues.views import bp as venues_bp


async def _read_booking_settings(ctx: AppContext) -> None:
    """City-wide booking rules and WeChat templates, from the environment, once."""
    ctx.provide(BOOKING_SETTINGS, BookingSettings.from_env())


FEATURE = Feature(
    name="venues",
    blueprints=(venues_bp, bookings_bp),
    jobs=(
        JobDecl("bookings.expire_holds", 30, bookings.expire_holds),
        JobDecl("bookings.no_shows", 60, bookings.mark_no_shows),
        JobDecl("bookings.complete", 300, bookings.complete_visits),
        JobDecl("bookings.reminders", 60, bookings.queue_reminders),
        JobDecl("bookings.waitlist", 60, bookings.promote_waitlist),
        JobDecl("bookings.deliver", 15, bookings.deliver),
    ),
    models={
        "venues": ModelApp(("venues.models",), "venues.migrations"),
        "bookings": ModelApp(("venues.bookings.models",), "venues.bookings.migrations"),
    },
    on_start=(_read_booking_settings,),
)
