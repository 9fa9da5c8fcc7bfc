"""Request and response types of the booking API."""

from __future__ import annotations

import datetime as dt
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from backend.clock import SHANGHAI, ServiceDate, ServiceMoment
from venues.bookings.models import BookingStatus


def _aware(value: datetime) -> datetime:
    """Times without an offset are Asia/Shanghai local times."""
    return value.replace(tzinfo=SHANGHAI) if value.tzinfo is None else value


class UnitRules(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slot_minutes: int = Field(60, ge=5, le=24 * 60, description="默认时长（分钟）")
    interval_minutes: int = Field(30, ge=5, le=24 * 60, description="起始时间网格（分钟）")
    min_minutes: int = Field(60, ge=5, le=24 * 60)
    max_minutes: int = Field(120, ge=5, le=24 * 60)
    buffer_minutes: int = Field(0, ge=0, le=240, description="两次预约之间的间隔（分钟）")
    opens_days_ahead: int = Field(7, ge=0, le=90, description="提前多少天开放预约")
    min_notice_minutes: int = Field(30, ge=0, le=7 * 24 * 60, description="最少提前多少分钟")
    capacity: int = Field(1, ge=1, le=1000, description="最多人数")
    requires_approval: bool = False
    price_text: str = Field("", max_length=100)


class UnitCreate(UnitRules):
    name: str = Field(min_length=1, max_length=64)
    active: bool = True


class UnitPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, min_length=1, max_length=64)
    active: bool | None = None
    slot_minutes: int | None = Field(None, ge=5, le=24 * 60)
    interval_minutes: int | None = Field(None, ge=5, le=24 * 60)
    min_minutes: int | None = Field(None, ge=5, le=24 * 60)
    max_minutes: int | None = Field(None, ge=5, le=24 * 60)
    buffer_minutes: int | None = Field(None, ge=0, le=240)
    opens_days_ahead: int | None = Field(None, ge=0, le=90)
    min_notice_minutes: int | None = Field(None, ge=0, le=7 * 24 * 60)
    capacity: int | None = Field(None, ge=1, le=1000)
    requires_approval: bool | None = None
    price_text: str | None = Field(None, max_length=100)


class UnitOut(UnitRules):
    model_config = ConfigDict(extra="ignore")

    id: str
    venue_id: str
    name: str
    active: bool


class UnitList(BaseModel):
    items: list[UnitOut]


class PolicyPatch(BaseModel):
    """Per-venue overrides; a null value returns that rule to the city-wide default."""

    model_config = ConfigDict(extra="forbid")

    hold_minutes: int | None = Field(None, ge=1, le=24 * 60)
    cancel_cutoff_minutes: int | None = Field(None, ge=0, le=14 * 24 * 60)
    checkin_before_minutes: int | None = Field(None, ge=0, le=240)
    checkin_after_minutes: int | None = Field(None, ge=0, le=240)
    max_active_bookings: int | None = Field(None, ge=1, le=100)
    max_hours_per_week: int | None = Field(None, ge=1, le=168)
    one_unit_at_a_time: bool | None = None
    no_show_limit: int | None = Field(None, ge=1, le=100)
    no_show_window_days: int | None = Field(None, ge=1, le=365)
    suspension_days: int | None = Field(None, ge=0, le=365)
    waitlist_offer_minutes: int | None = Field(None, ge=1, le=24 * 60)
    reminder_minutes: int | None = Field(None, ge=0, le=7 * 24 * 60)


class PolicyOut(BaseModel):
    venue_id: str
    hold_minutes: int
    cancel_cutoff_minutes: int
    checkin_before_minutes: int
    checkin_after_minutes: int
    max_active_bookings: int
    max_hours_per_week: int
    one_unit_at_a_time: bool
    no_show_limit: int
    no_show_window_days: int
    suspension_days: int
    waitlist_offer_minutes: int
    reminder_minutes: int
    overridden: list[str]


class SlotsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    date: ServiceDate = Field(description="日期 YYYY-MM-DD（北京时间）")


class SlotOut(BaseModel):
    start: datetime
    end: datetime
    state: str = Field(
        description="free | held | booked | blackout | past | too_soon | not_open_yet | closed"
    )


class UnitSlots(BaseModel):
    unit_id: str
    name: str
    slot_minutes: int
    interval_minutes: int
    capacity: int
    requires_approval: bool
    price_text: str
    slots: list[SlotOut]


class SlotsOut(BaseModel):
    venue_id: str
    date: dt.date
    units: list[UnitSlots]


class BookingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit_id: str = Field(min_length=1, max_length=32)
    start: ServiceMoment = Field(description="开始时间，ISO 8601；不带时区按北京时间")
    minutes: int | None = Field(None, ge=1, le=24 * 60, description="时长，默认为单元的默认时长")
    party_size: int = Field(1, ge=1, le=1000)
    venue_id: str | None = Field(None, max_length=32, description="可选：校验单元属于此场所")

    _start = field_validator("start")(_aware)


class WaitlistCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit_id: str = Field(min_length=1, max_length=32)
    start: ServiceMoment
    minutes: int | None = Field(None, ge=1, le=24 * 60)

    _start = field_validator("start")(_aware)


class WaitlistOut(BaseModel):
    id: str
    unit_id: str
    start: datetime
    end: datetime
    status: str
    position: int | None = None
    booking_id: str | None = None


class WaitlistList(BaseModel):
    items: list[WaitlistOut]


class BookingOut(BaseModel):
    id: str
    unit_id: str
    unit_name: str
    venue_id: str
    venue_name: str
    start: datetime
    end: datetime
    party_size: int
    status: str
    hold_expires_at: datetime | None = None
    reason: str = ""
    from_waitlist: bool = False
    checkin_token: str | None = Field(None, description="入场二维码内容，仅本人可见")
    created_at: datetime
    confirmed_at: datetime | None = None
    checked_in_at: datetime | None = None


class BookingList(BaseModel):
    items: list[BookingOut]
    next_cursor: str | None = None


class MyBookingsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: BookingStatus | None = Field(None, description="按状态筛选")
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = Field(None, max_length=500)


class DayBookingsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    venue_id: str = Field(min_length=1, max_length=32)
    date: ServiceDate


class OperatorBookingOut(BookingOut):
    resident: str = Field(description="预约人（已脱敏的称呼）")


class DayBookings(BaseModel):
    venue_id: str
    date: dt.date
    items: list[OperatorBookingOut]


class CheckinIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=8, max_length=64)


class ReasonIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=200)

    @field_validator("reason")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("原因不能为空")
        return value.strip()


class BlackoutCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    unit_id: str | None = Field(None, max_length=32, description="不填表示整个场所")
    starts_at: ServiceMoment
    ends_at: ServiceMoment
    reason: str = Field("", max_length=200)

    _times = field_validator("starts_at", "ends_at")(_aware)

    @field_validator("ends_at")
    @classmethod
    def _ordered(cls, value: datetime, info: ValidationInfo) -> datetime:
        starts = info.data.get("starts_at")
        if starts is not None and value <= starts:
            raise ValueError("结束时间必须晚于开始时间")
        return value


class BlackoutOut(BaseModel):
    id: str
    venue_id: str
    unit_id: str | None
    starts_at: datetime
    ends_at: datetime
    reason: str
    conflicting_bookings: list[str] = Field(default_factory=list)


class BlackoutList(BaseModel):
    items: list[BlackoutOut]
