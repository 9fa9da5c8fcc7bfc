"""Request and response types of venue search."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.geo import CoordSystem
from venues.models import VenueKind, VenueStatus
from venues.schemas import Location, normalise_isbn

MAX_RADIUS_M = 50_000


class VenueSearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    lat: float = Field(ge=-90, le=90, description="纬度（按 coord 指定的坐标系）")
    lng: float = Field(ge=-180, le=180, description="经度（按 coord 指定的坐标系）")
    coord: CoordSystem = Field(default=CoordSystem.WGS84, description="wgs84 | gcj02 | bd09")
    radius_m: int = Field(default=3000, ge=1, le=MAX_RADIUS_M, description="半径（米），≤ 50000")
    kind: list[VenueKind] | None = Field(default=None, description="场所类型，可多个（逗号分隔）")
    q: str | None = Field(
        default=None, min_length=1, max_length=50, description="关键词：名称、地址、简介中的子串"
    )
    open_now: bool | None = Field(default=None, description="true：只看此刻开放的")
    accessible: bool | None = Field(default=None, description="true：只看无障碍的")
    has_free_spaces: bool | None = Field(
        default=None, description="true：只看有空位且数据不过时的停车场"
    )
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=500, description="上一页的 next_cursor")

    @field_validator("q")
    @classmethod
    def _has_words(cls, value: str | None) -> str | None:
        # Elasticsearch indexes words and characters only: a query of punctuation alone would
        # match nothing there and anything in SQL, so it is refused on both.
        if value is not None and not any(ch.isalnum() for ch in value):
            raise ValueError("关键词须包含文字或数字")
        return value


class SearchHit(BaseModel):
    id: str
    kind: VenueKind
    name: str
    address: str
    district: str
    street: str
    location: Location
    distance_m: int = Field(description="到查询点的大地线距离（WGS-84 椭球，整米）")
    open_now: bool
    next_change: datetime | None
    status: VenueStatus
    accessible: bool
    parking_state: str | None = Field(
        default=None, description="停车场：many | few | full | closed | unknown"
    )
    free_spaces: int | None = None
    observed_at: datetime | None = None
    stale: bool | None = None


class SearchPage(BaseModel):
    items: list[SearchHit]
    next_cursor: str | None


class BookSearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    q: str | None = Field(default=None, min_length=1, max_length=50, description="书名或作者")
    isbn: str | None = Field(default=None, min_length=10, max_length=20, description="ISBN-10/13")
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    coord: CoordSystem = CoordSystem.WGS84
    radius_m: int = Field(default=5000, ge=1, le=MAX_RADIUS_M)
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=500)

    _isbn = field_validator("isbn")(normalise_isbn)


class HeldBook(BaseModel):
    isbn: str
    title: str
    author: str
    copies: int
    copies_available: int


class BookPlaceHit(BaseModel):
    id: str
    kind: VenueKind
    name: str
    address: str
    location: Location
    distance_m: int
    open_now: bool
    next_change: datetime | None
    copies_available: int = Field(description="匹配图书在此处的可借册数合计")
    books: list[HeldBook]


class BookSearchPage(BaseModel):
    items: list[BookPlaceHit]
    next_cursor: str | None


MAX_SPAN_DEG = 2.0


class ClusterQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    min_lat: float = Field(ge=-90, le=90, description="地图视野的南边界")
    min_lng: float = Field(ge=-180, le=180, description="地图视野的西边界")
    max_lat: float = Field(ge=-90, le=90, description="地图视野的北边界")
    max_lng: float = Field(ge=-180, le=180, description="地图视野的东边界")
    coord: CoordSystem = Field(default=CoordSystem.WGS84, description="边界与返回坐标的坐标系")
    cells: int = Field(default=8, ge=1, le=32, description="每边网格数（cells × cells）")
    kind: list[VenueKind] | None = None


class Cluster(BaseModel):
    row: int = Field(description="自南向北的行号，从 0 开始")
    col: int = Field(description="自西向东的列号，从 0 开始")
    count: int
    centre: Location = Field(description="格内场所位置的平均值")


class ClusterSummary(BaseModel):
    cells: int
    cell_lat_deg: float
    cell_lng_deg: float
    total: int
    items: list[Cluster]
