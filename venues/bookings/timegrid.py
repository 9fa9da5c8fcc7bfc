"""Time helpers: local days and weeks, the unit's grid of cells, opening hours, a requested time."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from backend import hours
from backend.clock import SHANGHAI, to_local
from venues.bookings.errors import rule
from venues.bookings.models import BookableUnit
from venues.models import Venue, VenueStatus


def utc(moment: datetime) -> datetime:
    """The same moment in UTC."""
    return moment.astimezone(UTC)


def day_bounds(day: date) -> tuple[datetime, datetime]:
    """Local midnight to the next local midnight."""
    start = datetime(day.year, day.month, day.day, tzinfo=SHANGHAI)
    return start, start + timedelta(days=1)


def week_bounds(moment: datetime) -> tuple[datetime, datetime]:
    """Local Monday midnight to the next one, around ``moment``."""
    local = moment.astimezone(SHANGHAI).date()
    monday = local - timedelta(days=local.weekday())
    start, _ = day_bounds(monday)
    return start, start + timedelta(days=7)


def cells(unit: BookableUnit, start: datetime, end: datetime) -> list[datetime]:
    """The grid cells a booking from start to end claims, its buffer included."""
    step = timedelta(minutes=unit.interval_minutes)
    stop = end + timedelta(minutes=unit.buffer_minutes)
    found = []
    moment = start
    while moment < stop:
        found.append(moment)
        moment += step
    return found


def on_grid(unit: BookableUnit, start: datetime) -> bool:
    """Whether a start lies on the unit's grid (minutes since local midnight)."""
    local = start.astimezone(SHANGHAI)
    if local.second or local.microsecond:
        return False
    return (local.hour * 60 + local.minute) % unit.interval_minutes == 0


def within_hours(venue: Venue, start: datetime, end: datetime) -> bool:
    """Whether start..end lies inside one open period of the venue."""
    if not venue.opening_hours:
        return False
    local = start.astimezone(SHANGHAI)
    lo, _ = day_bounds(local.date())
    periods = hours.open_intervals(venue.opening_hours, lo, max(end, lo + timedelta(days=1)))
    return any(a <= start and end <= b for a, b in periods)


def too_far(unit: BookableUnit, start: datetime, now: datetime) -> bool:
    """Whether a start lies beyond the days ahead the unit opens booking."""
    last_day = to_local(now).date() + timedelta(days=unit.opens_days_ahead)
    return start.astimezone(SHANGHAI).date() > last_day


def check_time(
    unit: BookableUnit, start: datetime, minutes: int, now: datetime, *, offer: bool = False
) -> datetime:
    """Raise the rule a requested time breaks; the end of the booking otherwise."""
    venue = unit.venue
    if not unit.active or venue.status != VenueStatus.OPEN:
        raise rule("unit_unavailable", "该单元暂停预约", "unit_id")
    if minutes % unit.interval_minutes or not unit.min_minutes <= minutes <= unit.max_minutes:
        raise rule(
            "duration_not_allowed",
            f"时长须为 {unit.min_minutes}–{unit.max_minutes} 分钟，"
            f"且为 {unit.interval_minutes} 分钟的整数倍",
            "minutes",
        )
    if not on_grid(unit, start):
        raise rule("start_off_grid", f"开始时间须为整 {unit.interval_minutes} 分钟的时刻", "start")
    end = start + timedelta(minutes=minutes)
    if start < now:
        raise rule("start_in_past", "开始时间已过", "start")
    if not offer:
        if start < now + timedelta(minutes=unit.min_notice_minutes):
            raise rule(
                "notice_too_short", f"需至少提前 {unit.min_notice_minutes} 分钟预约", "start"
            )
        if too_far(unit, start, now):
            raise rule("too_far_ahead", f"最多可提前 {unit.opens_days_ahead} 天预约", "start")
    if not within_hours(venue, start, end):
        raise rule("outside_opening_hours", "所选时间不在开放时间内", "start")
    return end
