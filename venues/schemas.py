"""Request and response types of venues, and the typed attributes of each kind."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator, model_validator
from stdnum import isbn as stdnum_isbn
from stdnum.exceptions import ValidationError as StdnumError

from backend import hours
from backend.clock import ServiceMoment
from backend.geo import CoordSystem
from venues.models import VenueKind, VenueStatus

# --- kind attributes ---------------------------------------------------------------------


class _Attributes(BaseModel):
    model_config = ConfigDict(extra="forbid")
    accessible: bool = Field(default=False, description="无障碍（轮椅可达）")

    def is_accessible(self) -> bool:
        return self.accessible


class ContactPerson(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=32)
    phone: str = Field(min_length=3, max_length=32, pattern=r"^[0-9+\-() ]+$")
    role: str = Field(default="", max_length=32, description="如：社区网格员")


class ReadingSpaceAttributes(_Attributes):
    """Reading space or library (book holdings live in their own table, later)."""


class SportsVenueAttributes(_Attributes):
    sports: list[str] = Field(default_factory=list, max_length=20, description="如：羽毛球")


class PublicToiletAttributes(_Attributes):
    baby_change: bool = False
    gender: Literal["male", "female", "all_gender", "separate"] = "separate"
    free: bool = True
    attended: bool = False
    open_24h: bool = False


class ParkingLotAttributes(_Attributes):
    capacity: int | None = Field(default=None, ge=0, le=100_000)
    accessible_spaces: int = Field(default=0, ge=0, le=10_000)
    ev_chargers: int = Field(default=0, ge=0, le=10_000)
    price_text: str = Field(default="", max_length=200)
    max_height_m: float | None = Field(default=None, gt=0, le=10)
    free_spaces: int | None = Field(default=None, ge=0, le=100_000)
    observed_at: datetime | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ParkingLotAttributes:
        if self.observed_at is not None and self.observed_at.tzinfo is None:
            raise ValueError("observed_at 需带时区")
        if (self.free_spaces is None) != (self.observed_at is None):
            raise ValueError("free_spaces 与 observed_at 须同时提供")
        if self.capacity is not None and (self.free_spaces or 0) > self.capacity:
            raise ValueError("free_spaces 不能大于 capacity")
        return self

    def is_accessible(self) -> bool:
        return self.accessible or self.accessible_spaces > 0


class ActivityRoomAttributes(_Attributes):
    capacity: int | None = Field(default=None, ge=0, le=10_000)


class ElderlyCareAttributes(_Attributes):
    services: list[str] = Field(
        default_factory=list, max_length=30, description="如：助餐、日间照料"
    )
    contacts: list[ContactPerson] = Field(default_factory=list, max_length=10)


class ServiceCentreAttributes(ElderlyCareAttributes):
    pass


KIND_ATTRIBUTES: dict[VenueKind, type[_Attributes]] = {
    VenueKind.READING_SPACE: ReadingSpaceAttributes,
    VenueKind.SPORTS_VENUE: SportsVenueAttributes,
    VenueKind.PUBLIC_TOILET: PublicToiletAttributes,
    VenueKind.PARKING_LOT: ParkingLotAttributes,
    VenueKind.ACTIVITY_ROOM: ActivityRoomAttributes,
    VenueKind.ELDERLY_CARE: ElderlyCareAttributes,
    VenueKind.SERVICE_CENTRE: ServiceCentreAttributes,
}


# --- requests ----------------------------------------------------------------------------


def _check_hours(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return hours.validate(value)
    except hours.InvalidOpeningHours as exc:
        raise ValueError(str(exc)) from None


class VenueCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: VenueKind
    name: str = Field(min_length=1, max_length=100)
    address: str = Field(default="", max_length=200)
    district: str = Field(default="", max_length=32)
    street: str = Field(default="", max_length=64)
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    coord: CoordSystem = Field(default=CoordSystem.WGS84, description="lat/lng 的坐标系")
    phone: str = Field(default="", max_length=32)
    description: str = Field(default="", max_length=5000)
    photos: list[HttpUrl] = Field(default_factory=list, max_length=20)
    opening_hours: str | None = Field(
        default=None, max_length=500, description="OSM opening_hours 语法，如 Mo-Fr 08:00-18:00"
    )
    verified_at: ServiceMoment | None = None
    attributes: dict[str, object] = Field(default_factory=dict, description="按 kind 校验")
    operator_id: str | None = Field(default=None, max_length=32, description="运营方账号 id")

    _hours = field_validator("opening_hours")(_check_hours)

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("名称不能为空")
        return value.strip()


class VenuePatch(BaseModel):
    """Fields to change; attributes are merged into the stored ones, then validated."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=100)
    address: str | None = Field(default=None, max_length=200)
    district: str | None = Field(default=None, max_length=32)
    street: str | None = Field(default=None, max_length=64)
    lat: float | None = Field(default=None, ge=-90, le=90)
    lng: float | None = Field(default=None, ge=-180, le=180)
    coord: CoordSystem = CoordSystem.WGS84
    phone: str | None = Field(default=None, max_length=32)
    description: str | None = Field(default=None, max_length=5000)
    photos: list[HttpUrl] | None = Field(default=None, max_length=20)
    opening_hours: str | None = Field(default=None, max_length=500)
    verified_at: ServiceMoment | None = None
    attributes: dict[str, object] | None = None
    operator_id: str | None = Field(default=None, max_length=32)

    _hours = field_validator("opening_hours")(_check_hours)

    @model_validator(mode="after")
    def _both_coordinates(self) -> VenuePatch:
        if (self.lat is None) != (self.lng is None):
            raise ValueError("lat 与 lng 须同时提供")
        return self


class VenueClose(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=200, description="闭馆原因，向居民展示")
    permanent: bool = Field(default=False, description="true 表示撤除（不再出现在搜索中）")


class CoordQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    coord: CoordSystem = Field(default=CoordSystem.WGS84, description="返回坐标所用坐标系")


# --- responses ---------------------------------------------------------------------------


class Location(BaseModel):
    lat: float
    lng: float


class VenueOut(BaseModel):
    id: str
    kind: VenueKind
    name: str
    address: str
    district: str
    street: str
    location: Location
    coord: CoordSystem
    phone: str
    description: str
    photos: list[str]
    opening_hours: str | None
    open_now: bool
    next_change: datetime | None
    status: VenueStatus
    closed_reason: str
    verified_at: datetime | None
    accessible: bool
    attributes: dict[str, object]
    parking_state: str | None = None
    stale: bool | None = None
    operator_id: str | None
    updated_at: datetime


# --- parking availability ----------------------------------------------------------------


class AvailabilityIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    free_spaces: int = Field(ge=0, le=100_000, description="空余车位数")
    observed_at: ServiceMoment = Field(
        description="统计时间（ISO 8601，须带时区，不得晚于当前时间）"
    )

    @field_validator("observed_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("observed_at 需带时区")
        return value


class AvailabilityOut(BaseModel):
    venue_id: str
    free_spaces: int
    observed_at: datetime
    parking_state: str
    stale: bool


# --- books and holdings ------------------------------------------------------------------


def normalise_isbn(value: str) -> str:
    """ISBN-10 or ISBN-13, with or without hyphens, as ISBN-13; ValueError if invalid."""
    try:
        return str(stdnum_isbn.to_isbn13(stdnum_isbn.validate(value)))
    except StdnumError:
        raise ValueError("不是有效的 ISBN-10 或 ISBN-13") from None


class HoldingIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    isbn: str = Field(min_length=10, max_length=20, description="ISBN-10 或 ISBN-13，可含连字符")
    title: str = Field(min_length=1, max_length=200)
    author: str = Field(default="", max_length=200)
    publisher: str = Field(default="", max_length=200)
    copies: int = Field(ge=0, le=10_000)
    copies_available: int = Field(ge=0, le=10_000)

    _isbn = field_validator("isbn")(normalise_isbn)

    @model_validator(mode="after")
    def _available_within_copies(self) -> HoldingIn:
        if self.copies_available > self.copies:
            raise ValueError("copies_available 不能大于 copies")
        return self


class HoldingsFeed(BaseModel):
    """One reading space's catalogue: upserted by ISBN; ``replace`` drops titles not listed."""

    model_config = ConfigDict(extra="forbid")
    items: list[HoldingIn] = Field(max_length=5000)
    replace: bool = Field(default=False, description="true：未列出的馆藏视为已下架")


class HoldingsResult(BaseModel):
    venue_id: str
    upserted: int
    removed: int


class AvailabilityHistoryQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hours: int = Field(default=24, ge=1, le=24 * 31, description="最近多少小时")


class Observation(BaseModel):
    free_spaces: int
    observed_at: datetime


class AvailabilityHistory(BaseModel):
    venue_id: str
    capacity: int | None
    items: list[Observation] = Field(description="按时间先后排列")


# --- a reading space's own catalogue -----------------------------------------------------


class CatalogueQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    q: str | None = Field(
        default=None,
        min_length=1,
        max_length=50,
        description="书名或作者（子串，不区分大小写），或 ISBN-10/13（可含连字符）",
    )
    available: bool | None = Field(default=None, description="true：只看有可借册的")
    limit: int = Field(default=20, ge=1, le=100)
    # The cursor carries the last title (up to 200 characters), so it is longer than most.
    cursor: str | None = Field(default=None, max_length=2400, description="上一页的 next_cursor")


class CatalogueBook(BaseModel):
    isbn: str = Field(description="ISBN-13")
    title: str
    author: str
    publisher: str
    copies: int = Field(description="馆藏册数")
    copies_available: int = Field(description="在架可借册数")


class CataloguePage(BaseModel):
    venue_id: str
    venue_name: str
    items: list[CatalogueBook] = Field(description="按书名排序，书名相同按 ISBN")
    next_cursor: str | None
