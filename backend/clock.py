"""Time in one place: the server clock (Asia/Shanghai for people, UTC for storage)."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

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
        """Aware datetime in Asia/Shanghai."""
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


__all__ = ["Clock", "SHANGHAI", "isoformat", "timedelta", "to_local"]
