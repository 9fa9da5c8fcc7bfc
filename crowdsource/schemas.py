"""Request and response types of pain-point campaigns."""

from __future__ import annotations

from datetime import date as calendar_date
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    RootModel,
    field_validator,
)

from backend.access import PublicId
from backend.clock import in_service_years
from backend.geo import CoordSystem
from crowdsource.models import Audience, ModerationPolicy, Phase, Status

CATEGORY_CODE = r"^[a-z][a-z0-9_]{1,31}$"
# Categories a campaign gets when it names none (the seed campaign's questionnaire themes).
DEFAULT_CATEGORIES: tuple[tuple[str, str], ...] = (
    ("transport", "交通出行"),
    ("parking", "停车"),
    ("public_toilet", "公厕"),
    ("education", "教育"),
    ("medical", "医疗"),
    ("elderly_care", "养老"),
    ("government_services", "政务服务"),
    ("environment", "环境卫生"),
    ("community", "社区服务"),
    ("other", "其他"),
)


ScheduleMoment = Annotated[AwareDatetime, AfterValidator(in_service_years)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CategoryIn(_In):
    code: str = Field(pattern=CATEGORY_CODE, description="英文代码，如 parking")
    label: str = Field(min_length=1, max_length=20, description="中文名称，如 停车")


class Category(BaseModel):
    code: str
    label: str


def _unique_codes(value: list[CategoryIn] | None) -> list[CategoryIn] | None:
    if value is not None:
        codes = [c.code for c in value]
        if len(set(codes)) != len(codes):
            raise ValueError("分类代码不能重复")
    return value


def _unique_audiences(value: list[Audience] | None) -> list[Audience] | None:
    if value is not None and len(set(value)) != len(value):
        raise ValueError("面向群体不能重复")
    return value


MODERATION_DOC = (
    "pre：先审后发，痛点经审核有效后才公开、才能投票（默认）；"
    "post：先发后审，提交即公开，被判定无效后不再公开"
)


class CampaignCreate(_In):
    title: str = Field(min_length=2, max_length=100)
    description: str = Field(default="", max_length=5000)
    categories: list[CategoryIn] | None = Field(
        default=None, min_length=1, max_length=50, description="省略时使用默认分类"
    )
    audiences: list[Audience] = Field(
        default_factory=lambda: list(Audience), min_length=1, max_length=3
    )
    collecting_starts_at: ScheduleMoment
    collecting_ends_at: ScheduleMoment
    voting_starts_at: ScheduleMoment = Field(description="可早于征集结束（征集与投票并行）")
    voting_ends_at: ScheduleMoment
    closes_at: ScheduleMoment = Field(description="遴选（curating）结束、活动关闭的时间")
    submission_cap: int = Field(default=5, ge=1, le=100, description="每人每个活动最多提交条数")
    report_threshold: int = Field(default=5, ge=1, le=1000, description="被举报多少次后隐藏待审")
    vote_budget: int | None = Field(default=None, ge=1, le=10000, description="每人票数上限")
    votes_per_minute_person: int = Field(default=30, ge=1, le=100000)
    votes_per_minute_ip: int = Field(default=600, ge=1, le=1000000)
    moderation: ModerationPolicy = Field(default=ModerationPolicy.PRE, description=MODERATION_DOC)

    _codes = field_validator("categories")(_unique_codes)
    _audiences = field_validator("audiences")(_unique_audiences)


class CampaignUpdate(_In):
    title: str | None = Field(default=None, min_length=2, max_length=100)
    description: str | None = Field(default=None, max_length=5000)
    categories: list[CategoryIn] | None = Field(default=None, min_length=1, max_length=50)
    audiences: list[Audience] | None = Field(default=None, min_length=1, max_length=3)
    collecting_starts_at: ScheduleMoment | None = None
    collecting_ends_at: ScheduleMoment | None = None
    voting_starts_at: ScheduleMoment | None = None
    voting_ends_at: ScheduleMoment | None = None
    closes_at: ScheduleMoment | None = None
    submission_cap: int | None = Field(default=None, ge=1, le=100)
    report_threshold: int | None = Field(default=None, ge=1, le=1000)
    vote_budget: int | None = Field(default=None, ge=1, le=10000, description="null 表示不限")
    votes_per_minute_person: int | None = Field(default=None, ge=1, le=100000)
    votes_per_minute_ip: int | None = Field(default=None, ge=1, le=1000000)
    moderation: ModerationPolicy | None = Field(default=None, description=MODERATION_DOC)

    _codes = field_validator("categories")(_unique_codes)
    _audiences = field_validator("audiences")(_unique_audiences)


class CampaignOut(BaseModel):
    id: str
    title: str
    description: str
    categories: list[Category]
    audiences: list[Audience]
    phase: Phase
    phases_open: list[Phase]
    collecting_starts_at: datetime
    collecting_ends_at: datetime
    voting_starts_at: datetime
    voting_ends_at: datetime
    closes_at: datetime
    submission_cap: int
    report_threshold: int
    vote_budget: int | None
    votes_per_minute_person: int
    votes_per_minute_ip: int
    moderation: ModerationPolicy = Field(description=MODERATION_DOC)
    created_at: datetime


class CampaignList(BaseModel):
    items: list[CampaignOut]
    next_cursor: str | None = None


class CampaignListQuery(_In):
    phase: Phase | None = Field(default=None, description="只列出当前处于该阶段的活动")
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=500)


class LocationIn(_In):
    lat: float = Field(ge=-90, le=90)
    lng: float = Field(ge=-180, le=180)
    coord: CoordSystem = CoordSystem.WGS84


class Location(BaseModel):
    lat: float
    lng: float


def _https_only(urls: list[HttpUrl]) -> list[HttpUrl]:
    for url in urls:
        if url.scheme != "https":
            raise ValueError("照片地址须使用 https")
    return urls


class PainPointCreate(_In):
    title: str = Field(min_length=4, max_length=60)
    description: str = Field(min_length=10, max_length=2000)
    category: str = Field(pattern=CATEGORY_CODE)
    location: LocationIn | None = None
    district: str | None = Field(default=None, min_length=1, max_length=32)
    photo_urls: list[HttpUrl] = Field(default_factory=list, max_length=9)
    audience: Audience | None = Field(
        default=None,
        description="省略时按账号角色：居民 resident、企业 enterprise、工作人员 department",
    )
    company_name: str | None = Field(
        default=None,
        min_length=2,
        max_length=100,
        description="以企业身份提交时可省略：取所属认证企业的登记名称；给出时须与之一致",
    )
    department_name: str | None = Field(default=None, min_length=2, max_length=100)

    _photos = field_validator("photo_urls")(_https_only)


class PainPointUpdate(_In):
    title: str | None = Field(default=None, min_length=4, max_length=60)
    description: str | None = Field(default=None, min_length=10, max_length=2000)
    category: str | None = Field(default=None, pattern=CATEGORY_CODE)
    location: LocationIn | None = None
    district: str | None = Field(default=None, min_length=1, max_length=32)
    photo_urls: list[HttpUrl] | None = Field(default=None, max_length=9)

    @field_validator("photo_urls")
    @classmethod
    def _photos(cls, value: list[HttpUrl] | None) -> list[HttpUrl] | None:
        return None if value is None else _https_only(value)


class VoteCounts(BaseModel):
    resident: int = 0
    enterprise: int = 0
    department: int = 0


class PainPointOut(BaseModel):
    id: str
    campaign_id: str
    title: str
    description: str
    category: str
    category_label: str
    location: Location | None
    district: str | None
    address: str | None = Field(default=None, description="Open311 提交时给出的地址")
    photo_urls: list[str]
    audience: Audience
    company_name: str | None
    department_name: str | None
    status: Status
    hidden: bool
    public: bool = Field(description="公众是否可见（按活动的审核方式；提交者与审核员总能看到）")
    moderation_reason: str | None
    duplicate_of: str | None
    merged_into: str | None = Field(default=None, description="本条已合并到的痛点")
    merged: list[str] = Field(default_factory=list, description="已合并进本条的痛点")
    votes: int
    votes_by_audience: VoteCounts
    created_at: datetime
    updated_at: datetime


class PainPointSubmitted(PainPointOut):
    notice: str = Field(description="何时公开：先审后发为审核通过后，先发后审为立即")


class PainPointList(BaseModel):
    items: list[PainPointOut]
    next_cursor: str | None = None


class MyPainPointsQuery(_In):
    campaign_id: str | None = Field(default=None, max_length=32, description="只看某个活动的")
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=500)


class PainPointListQuery(_In):
    sort: Literal["votes", "new"] = "votes"
    category: str | None = Field(default=None, pattern=CATEGORY_CODE)
    coord: CoordSystem = CoordSystem.WGS84
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=500)


class CoordQuery(_In):
    coord: CoordSystem = CoordSystem.WGS84


class SimilarQuery(_In):
    text: str = Field(min_length=2, max_length=2000)
    limit: int = Field(default=5, ge=1, le=20)


class SimilarItem(BaseModel):
    id: str
    title: str
    category: str
    status: Status
    score: float = Field(description="相似度 0–1")


class SimilarList(BaseModel):
    items: list[SimilarItem]
    method: str = Field(description="所用的相似度方法，如 database-bigram-jaccard")


class ModerationIn(_In):
    decision: Literal["valid", "invalid", "duplicate"]
    reason: str = Field(default="", max_length=500)
    duplicate_of: PublicId | None = None


class MergeIn(_In):
    source: PublicId = Field(description="被合并（重复）的痛点 id")
    reason: str = Field(default="", max_length=500)


class ReportIn(_In):
    reason: str = Field(default="", max_length=200)


class ReportOut(BaseModel):
    pain_point_id: str
    hidden: bool


class VoteOut(BaseModel):
    pain_point_id: str
    audience: Audience
    votes: int
    votes_by_audience: VoteCounts


class StatusCounts(BaseModel):
    submitted: int = 0
    valid: int = 0
    invalid: int = 0
    duplicate: int = 0


class CategoryStat(BaseModel):
    category: str
    label: str
    pain_points: int
    votes: int


class DistrictStat(BaseModel):
    district: str | None = Field(description="null：未填写区县")
    pain_points: int
    votes: int


class DayStat(BaseModel):
    date: calendar_date = Field(description="北京时间的日期")
    pain_points: int = Field(description="当天提交的痛点（任何状态）")
    votes: int = Field(description="当天投出且仍有效的票")


class CampaignStatistics(BaseModel):
    campaign_id: str
    pain_points: StatusCounts
    hidden: int
    votes: int
    voters: int
    votes_by_audience: VoteCounts
    by_category: list[CategoryStat] = Field(
        description="公开列出的痛点（按活动的审核方式：先审后发只计有效的，先发后审另计待审核的）"
    )
    by_district: list[DistrictStat] = Field(description="同上")
    by_day: list[DayStat]


# -- Open311 GeoReport v2 ----------------------------------------------------------------


class Open311ClientCreate(_In):
    name: str = Field(min_length=2, max_length=100, description="客户端名称，如 某某随手拍")
    audience: Audience = Field(
        default=Audience.RESIDENT, description="经该客户端提交的痛点计入的群体"
    )
    organisation: str | None = Field(
        default=None, min_length=2, max_length=100, description="部门名称（部门客户端必填）"
    )
    vendor_id: str | None = Field(
        default=None,
        min_length=1,
        max_length=32,
        description="企业客户端代表的认证企业（必填）；其请求以该企业的登记名称提交",
    )
    requests_per_minute: int = Field(default=60, ge=1, le=10000)


class Open311ClientOut(BaseModel):
    id: str
    name: str
    audience: Audience
    organisation: str | None
    vendor_id: str | None = None
    prefix: str
    requests_per_minute: int
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None
    key: str | None = Field(default=None, description="明文密钥，仅创建时返回一次")


class Open311ClientList(BaseModel):
    items: list[Open311ClientOut]


class Open311RequestIn(BaseModel):
    """The GeoReport v2 POST form. Personal fields (email, names, phone, device and account ids)
    are not declared, so they are dropped at parsing and never stored, logged or echoed."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    api_key: str = Field(min_length=1, max_length=200)
    service_code: str = Field(min_length=1, max_length=32)
    jurisdiction_id: str | None = Field(default=None, max_length=100)
    lat: float | None = Field(default=None, ge=-90, le=90, description="WGS-84")
    long: float | None = Field(default=None, ge=-180, le=180, description="WGS-84")
    address_string: str | None = Field(default=None, min_length=1, max_length=200)
    description: str = Field(min_length=10, max_length=2000)
    media_url: HttpUrl | None = None

    @field_validator("media_url")
    @classmethod
    def _https(cls, value: HttpUrl | None) -> HttpUrl | None:
        if value is not None and value.scheme != "https":
            raise ValueError("照片地址须使用 https")
        return value

    @field_validator("lat", "long", "address_string", "media_url", mode="before")
    @classmethod
    def _blank_is_none(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value


# Comma-separated public ids / category codes (spaces around the commas allowed).
_ID_LIST = r"^[A-Za-z0-9_-]{1,32}( *, *[A-Za-z0-9_-]{1,32})*$"
_CODE_LIST = r"^[a-z][a-z0-9_]{1,31}( *, *[a-z][a-z0-9_]{1,31})*$"


class Open311RequestsQuery(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    service_request_id: str | None = Field(
        default=None,
        max_length=2000,
        pattern=_ID_LIST,
        description="逗号分隔；给出时忽略其他条件",
    )
    service_code: str | None = Field(
        default=None, max_length=500, pattern=_CODE_LIST, description="逗号分隔"
    )
    start_date: ScheduleMoment | None = Field(default=None, description="W3C 时间，须带时区")
    end_date: ScheduleMoment | None = Field(default=None, description="W3C 时间，须带时区")
    status: str | None = Field(default=None, max_length=20, description="open、closed 或二者")
    jurisdiction_id: str | None = Field(default=None, max_length=100)


class Open311Service(BaseModel):
    """A GeoReport v2 service: one category of the campaign collecting now."""

    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: str
    keywords: str
    group: str


class Open311Request(BaseModel):
    """A GeoReport v2 service request (a pain point); times in Asia/Shanghai with offset."""

    service_request_id: str
    status: Literal["open", "closed"]
    status_notes: str
    service_name: str
    service_code: str
    description: str
    agency_responsible: str
    service_notice: str
    requested_datetime: str | None
    updated_datetime: str | None
    expected_datetime: str | None
    address: str
    address_id: str | None
    zipcode: str | None
    lat: float | None
    long: float | None
    media_url: str


class Open311Created(BaseModel):
    service_request_id: str
    service_notice: str
    account_id: str | None


class Open311Error(BaseModel):
    code: int = Field(description="HTTP 状态码")
    description: str = Field(description="字段: 原因")


class Open311Services(RootModel[list[Open311Service]]):
    pass


class Open311Requests(RootModel[list[Open311Request]]):
    pass


class Open311CreatedList(RootModel[list[Open311Created]]):
    pass


class Open311Errors(RootModel[list[Open311Error]]):
    pass


# -- integrity and moderation queue ------------------------------------------------------


class FlagOut(BaseModel):
    id: str
    heuristic: str = Field(
        description="device_accounts / ip_burst / net_burst / new_account_swarm / rate_spike"
    )
    reason: str
    subject: str = Field(description="地址或设备的加盐摘要，或痛点 id")
    pain_point_id: str | None
    window_start: datetime
    window_end: datetime
    votes: int = Field(description="检测时命中的票数")
    accounts: int
    votes_held: int = Field(description="当前归于本标记、尚在计票的票数")
    account_ids: list[str] = Field(description="涉及的账号（最多 50 个）")
    status: Literal["open", "accepted", "discarded", "resolving"]
    note: str | None
    votes_discarded: int
    resolved_by: str | None
    resolved_at: datetime | None
    created_at: datetime


class IntegrityReport(BaseModel):
    campaign_id: str
    votes_accepted: int = Field(description="数据库中当前计入的票数（含待复核的）")
    votes_under_review: int = Field(description="归于未处理标记的票数")
    votes_discarded: int
    refused: dict[str, int] = Field(description="被拒绝的投票，按原因代码")
    refused_total: int
    flags: list[FlagOut] = Field(description="可疑投票标记，未处理的在前")


class FlagResolveIn(_In):
    decision: Literal["accept", "discard"]
    note: str = Field(default="", max_length=500)


class ModerationQueueQuery(_In):
    status: Literal["submitted", "hidden"] | None = Field(
        default=None, description="submitted：待审核；hidden：被举报隐藏待复核；省略：二者"
    )
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=500)
