"""Booking settings: city-wide policy defaults and WeChat template ids, read from the environment.

Read once per app at start-up (never at import time) by ``venues/feature.py`` and kept in the app
context's :data:`BOOKING_SETTINGS` slot; tests may provide their own :class:`BookingSettings`.
Every variable is listed in docs (bookings section).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from backend.config import SettingsError, parse_bool
from backend.context import AppContext, Slot

POLICY_ENV_PREFIX = "SMARTCIRCLE_BOOKING_"
TEMPLATE_KINDS = ("confirmed", "cancelled", "reminder", "waitlist_offer")


@dataclass(frozen=True)
class Policy:
    """Booking rules for residents (minutes unless said otherwise)."""

    hold_minutes: int = 10
    cancel_cutoff_minutes: int = 120
    checkin_before_minutes: int = 15
    checkin_after_minutes: int = 15
    max_active_bookings: int = 3
    max_hours_per_week: int = 6
    one_unit_at_a_time: bool = True
    no_show_limit: int = 3
    no_show_window_days: int = 30
    suspension_days: int = 14
    waitlist_offer_minutes: int = 15
    reminder_minutes: int = 120

    def with_overrides(self, overrides: Mapping[str, Any]) -> Policy:
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in overrides.items() if k in known})


@dataclass(frozen=True)
class BookingSettings:
    """City-wide policy, WeChat subscription templates and delivery retry tuning."""

    policy: Policy = field(default_factory=Policy)
    templates: Mapping[str, str] = field(default_factory=dict)
    page: str = "pages/bookings/detail"
    retry_base_seconds: int = 30
    retry_max_seconds: int = 3600
    max_attempts: int = 8
    sending_timeout_seconds: int = 600

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BookingSettings:
        """Settings from ``SMARTCIRCLE_BOOKING_*`` and ``WECHAT_TEMPLATE_BOOKING_*``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for item in fields(Policy):
            raw = env.get(POLICY_ENV_PREFIX + item.name.upper())
            if raw is None or raw == "":
                continue
            if item.type in (bool, "bool"):
                try:
                    values[item.name] = parse_bool(raw)
                except SettingsError:
                    raise SettingsError(
                        f"{POLICY_ENV_PREFIX}{item.name.upper()} 应为 true 或 false"
                    ) from None
                continue
            try:
                values[item.name] = int(raw)
            except ValueError:
                raise SettingsError(f"{POLICY_ENV_PREFIX}{item.name.upper()} 应为整数") from None
        templates = {
            kind: env[f"WECHAT_TEMPLATE_BOOKING_{kind.upper()}"]
            for kind in TEMPLATE_KINDS
            if env.get(f"WECHAT_TEMPLATE_BOOKING_{kind.upper()}")
        }
        page = env.get("WECHAT_PAGE_BOOKING") or cls.page
        return cls(policy=Policy(**values), templates=templates, page=page)


BOOKING_SETTINGS: Slot[BookingSettings] = Slot("bookings.settings")


def booking_settings(ctx: AppContext) -> BookingSettings:
    """This app's booking settings (read from the environment at start-up)."""
    return ctx.get(BOOKING_SETTINGS)
