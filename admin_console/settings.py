"""Console settings, read from the environment once at start-up (``feature.py``)."""

from __future__ import annotations

from pydantic import Field

from backend.config import EnvSettings
from backend.context import Slot


class ConsoleSettings(EnvSettings):
    """Session lifetimes of the console."""

    idle_minutes: int = Field(
        30, ge=1, le=24 * 60, validation_alias="SMARTCIRCLE_CONSOLE_IDLE_MINUTES"
    )
    session_hours: int = Field(
        12, ge=1, le=24 * 7, validation_alias="SMARTCIRCLE_CONSOLE_SESSION_HOURS"
    )


CONSOLE_SETTINGS: Slot[ConsoleSettings] = Slot("console.settings")
