"""Time in one place: the server clock (Asia/Shanghai for people, UTC for storage)."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo

from pydantic import AfterValidator

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock:
    """The real clock, with an optional offset that tests move forward or back."""

    def __init__(self) -> None:
        self._offset = 0.0

    def time(self) -> float:
        """Seconds since the epoch."""
        return time.time() + self._offset

    def now(self) -> datetime:
        """Aware datetime in UTC."""
        return datetime.fromtimestamp(self.time(), UTC)

    def local_now(self) -> datetime:
        """Aware datetime in Asia/Shanghai (for dates people see: ages, "today")."""
        return self.now().astimezone(SHANGHAI)

    def advance(self, seconds: float) -> None:
        """Move this clock (tests only)."""
        self._offset += seconds

    def set(self, moment: datetime) -> None:
        """Pin the clock's reading near ``moment`` (tests only)."""
        self._offset = moment.timestamp() - time.time()

    def reset(self) -> None:
        self._offset = 0.0


def to_local(moment: datetime) -> datetime:
    """Present a stored time in Asia/Shanghai."""
    return moment.astimezone(SHANGHAI)


def isoformat(moment: datetime | None) -> str | None:
    return None if moment is None else to_local(moment).isoformat(timespec="seconds")


# Dates and times the service deals in; anything outside is a mistake, refused with a 400 (and
# never left to overflow date arithmetic into a 500).
FIRST_YEAR, LAST_YEAR = 2000, 2100


def _check_year(value: date) -> None:
    if not FIRST_YEAR <= value.year <= LAST_YEAR:
        raise ValueError(f"须在 {FIRST_YEAR}–{LAST_YEAR} 年之间")


def _service_date(value: date) -> date:
    _check_year(value)
    return value


def in_service_years(value: datetime) -> datetime:
    """The moment, if its year is one the service deals in (a pydantic validator)."""
    _check_year(value.date())
    return value


ServiceDate = Annotated[date, AfterValidator(_service_date)]
ServiceMoment = Annotated[datetime, AfterValidator(in_service_years)]


__all__ = [
    "Clock",
    "SHANGHAI",
    "ServiceDate",
    "ServiceMoment",
    "in_service_years",
    "isoformat",
    "timedelta",
    "to_local",
]
