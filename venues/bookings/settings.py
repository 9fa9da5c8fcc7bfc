"""Booking settings: city-wide policy defaults and WeChat template ids, read from the environment.

Read once per app at start-up (never at import time) by ``venues/feature.py`` and kept in the app
context's :data:`BOOKING_SETTINGS` slot; tests may provide their own :class:`BookingSettings`.
Every variable is listed in docs (bookings section).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, get_type_hints

from pydantic import Field, create_model
from pydantic_core import ErrorDetails

from backend.config import EnvBool, EnvSettings
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
        read = _BookingEnvironment.read_env(env)
        policy = Policy(**{item.name: getattr(read, item.name) for item in fields(Policy)})
        templates = {
            kind: template
            for kind in TEMPLATE_KINDS
            if (template := getattr(read, f"template_{kind}"))
        }
        return cls(policy=policy, templates=templates, page=read.page)


class _BookingEnvironmentBase(EnvSettings):
    """The booking variables, read and validated by pydantic-settings (empty means unset).

    The policy rules (``SMARTCIRCLE_BOOKING_<RULE>``) are added from :class:`Policy`'s fields.
    """

    template_confirmed: str = Field("", validation_alias="WECHAT_TEMPLATE_BOOKING_CONFIRMED")
    template_cancelled: str = Field("", validation_alias="WECHAT_TEMPLATE_BOOKING_CANCELLED")
    template_reminder: str = Field("", validation_alias="WECHAT_TEMPLATE_BOOKING_REMINDER")
    template_waitlist_offer: str = Field(
        "", validation_alias="WECHAT_TEMPLATE_BOOKING_WAITLIST_OFFER"
    )
    page: str = Field(BookingSettings.page, validation_alias="WECHAT_PAGE_BOOKING")

    @classmethod
    def explain(cls, variable: str, error: ErrorDetails) -> str:
        if error["type"].startswith("int_"):
            return f"{variable} 应为整数"
        if error["type"] == "value_error":
            return f"{variable} 应为 true 或 false"
        return f"{variable}: {error['msg']}"


def _policy_fields() -> dict[str, Any]:
    """One field per policy rule, read from ``SMARTCIRCLE_BOOKING_<RULE>``."""
    hints = get_type_hints(Policy)
    return {
        item.name: (
            EnvBool if hints[item.name] is bool else hints[item.name],
            Field(item.default, validation_alias=POLICY_ENV_PREFIX + item.name.upper()),
        )
        for item in fields(Policy)
    }


# Built from Policy's fields, so a new rule is configurable from the environment at once.
_BookingEnvironment: type[_BookingEnvironmentBase] = create_model(
    "_BookingEnvironment", __base__=_BookingEnvironmentBase, **_policy_fields()
)


BOOKING_SETTINGS: Slot[BookingSettings] = Slot("bookings.settings")


def booking_settings(ctx: AppContext) -> BookingSettings:
    """This app's booking settings (read from the environment at start-up)."""
    return ctx.get(BOOKING_SETTINGS)
