"""Request and response models of the residents API.

Identifiers are validated here (the error names the field and never repeats the value); the
service derives birth date and gender from the ID number, so neither can be typed.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from residents.identity import InvalidIdentifier, normalise_name, normalise_phone, parse_id_number
from residents.models import JobStatus, Relation


class _Strict(BaseModel):
    # Every text field is bounded (the OpenAPI document and the border promise it).
    model_config = ConfigDict(extra="forbid", str_max_length=2000)


def _id_number(value: str) -> str:
    try:
        return parse_id_number(value).value
    except InvalidIdentifier as exc:
        raise ValueError(str(exc)) from None


def _phone(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    try:
        return normalise_phone(value)
    except InvalidIdentifier as exc:
        raise ValueError(str(exc)) from None


def _name(value: str) -> str:
    try:
        return normalise_name(value)
    except InvalidIdentifier as exc:
        raise ValueError(str(exc)) from None


# -- communities, households -----------------------------------------------------------
class CommunityIn(_Strict):
    name: str = Field(min_length=1, max_length=64)


class CommunityOut(BaseModel):
    id: str
    street_code: str
    name: str
    residents: int = 0


class CommunityList(BaseModel):
    items: list[CommunityOut]


class HouseholdIn(_Strict):
    community: str = Field(min_length=1, max_length=64, description="社区名称（本街道内）")
    address: str = Field(min_length=1, max_length=200)


class HouseholdPatch(_Strict):
    address: str = Field(min_length=1, max_length=200)


class HouseholdMemberOut(BaseModel):
    id: str
    name: str
    relation: Relation
    gender: str
    age: int


class HouseholdOut(BaseModel):
    id: str
    community: str
    address: str
    members: list[HouseholdMemberOut] = []


class HouseholdList(BaseModel):
    items: list[HouseholdOut]
    next_cursor: str | None = None


class HouseholdQuery(_Strict):
    community_id: str | None = None
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = None


# -- residents -------------------------------------------------------------------------
class ResidentIn(_Strict):
    community: str = Field(
        min_length=1, max_length=64, description="社区名称（本街道内，无则新建）"
    )
    name: str = Field(description="姓名")
    id_number: str = Field(description="18 位身份证号（GB 11643 校验）；出生日期与性别由此推出")
    phone: str | None = Field(None, description="手机号或带区号的固定电话")
    household_id: str | None = Field(None, description="所在户（本街道）")
    address: str | None = Field(
        None, max_length=200, description="无 household_id 时按地址找户或新建"
    )
    relation: Relation = Relation.OTHER
    tags: list[str] = Field(default_factory=list, description="标签代码或名称")
    notes: str | None = Field(None, max_length=2000)

    _v_name = field_validator("name")(_name)
    _v_id = field_validator("id_number")(_id_number)
    _v_phone = field_validator("phone")(_phone)


class ResidentPatch(_Strict):
    community: str | None = Field(None, min_length=1, max_length=64)
    name: str | None = None
    id_number: str | None = None
    phone: str | None = Field(None, description="空字符串清除电话")
    household_id: str | None = None
    address: str | None = Field(None, max_length=200)
    relation: Relation | None = None
    tags: list[str] | None = None
    notes: str | None = Field(None, max_length=2000)
    expected_version: int | None = Field(
        None, ge=0, le=2**31 - 1, description="乐观锁：与当前版本不符则 409"
    )

    @field_validator("name")
    @classmethod
    def _v_name(cls, value: str | None) -> str | None:
        return None if value is None else _name(value)

    @field_validator("id_number")
    @classmethod
    def _v_id(cls, value: str | None) -> str | None:
        return None if value is None else _id_number(value)

    @field_validator("phone")
    @classmethod
    def _v_phone(cls, value: str | None) -> str | None:
        return "" if value == "" else _phone(value)


class ResidentOut(BaseModel):
    id: str
    status: str
    street_code: str
    community: str
    household_id: str | None
    address: str | None
    relation: Relation
    name: str
    id_number: str = Field(description="掩码，如 3401**********1234")
    phone: str | None = Field(description="掩码，如 138****5678")
    gender: str = Field(description="M / F，由身份证号推出")
    birth_date: date
    age: int
    tags: list[str]
    notes: str | None
    merged_into: str | None = None
    bound: bool = False
    version: int
    updated_at: datetime


class ResidentList(BaseModel):
    items: list[ResidentOut]
    next_cursor: str | None = None
    total: int | None = None


class ResidentQuery(_Strict):
    community_id: str | None = None
    tag: str | None = None
    limit: int = Field(20, ge=1, le=100)
    cursor: str | None = None


class SearchIn(_Strict):
    """Exact search, in the body so no identifier ever appears in a URL."""

    id_number: str | None = None
    phone: str | None = None
    name: str | None = None

    _v_id = field_validator("id_number")(lambda v: None if v is None else _id_number(v))
    _v_phone = field_validator("phone")(_phone)
    _v_name = field_validator("name")(lambda v: None if v is None else _name(v))


class RevealIn(_Strict):
    field: Literal["id_number", "phone"]
    reason: str = Field(min_length=4, max_length=200, description="查看明文的理由（记入访问记录）")


class RevealOut(BaseModel):
    field: str
    value: str | None


class ResidentMergeIn(_Strict):
    source_id: str = Field(description="并入本记录的另一条记录（本街道）")
    reason: str = Field(min_length=2, max_length=200)


class BindingIn(_Strict):
    account_id: str = Field(description="居民在小程序“我的数据”中看到的账号编号")


class VersionOut(BaseModel):
    version: int
    action: str
    actor_role: str
    actor: str
    at: datetime
    changes: dict


class HistoryOut(BaseModel):
    items: list[VersionOut]


# -- tags ------------------------------------------------------------------------------
class TagIn(_Strict):
    code: str = Field(pattern=r"^[a-z][a-z0-9_]{1,31}$")
    label: str = Field(min_length=1, max_length=32)


class TagOut(BaseModel):
    code: str
    label: str
    builtin: bool


class TagList(BaseModel):
    items: list[TagOut]


# -- resident's own view ---------------------------------------------------------------
class BindIn(_Strict):
    id_number: str
    phone: str

    _v_id = field_validator("id_number")(_id_number)
    _v_phone = field_validator("phone")(lambda v: _phone(v) or "")


class AccessEventOut(BaseModel):
    at: datetime
    kind: str
    field: str
    role: str
    office: str
    reason: str


class MyDataOut(BaseModel):
    account_id: str
    bound: bool
    record: ResidentOut | None
    access_log: list[AccessEventOut]


# -- imports ---------------------------------------------------------------------------
class ImportError_(BaseModel):
    row: int
    column: str
    reason: str


class ImportOut(BaseModel):
    id: str
    status: JobStatus
    filename: str
    total: int
    processed: int
    percent: int
    created: int
    unchanged: int
    failed: int
    errors: list[ImportError_]
    errors_sheet: str | None = None
    message: str = ""


# -- lists, statistics -----------------------------------------------------------------
class ListQuery(_Strict):
    preset: Literal["elderly_alone", "school_age", "disabled"] | None = None
    tag: list[str] | None = None
    community_id: str | None = None
    age_min: int | None = Field(None, ge=0, le=150)
    age_max: int | None = Field(None, ge=0, le=150)
    limit: int = Field(50, ge=1, le=100)
    cursor: str | None = None


class ListOut(BaseModel):
    items: list[ResidentOut]
    next_cursor: str | None = None
    total: int
    by_community: dict[str, int]


class StreetStats(BaseModel):
    street_code: str
    residents: int
    households: int
    by_tag: dict[str, int]
    by_age_band: dict[str, int]
    forms: int
    prefilled_fields: int
    typed_fields: int
    reuse_rate: float | None = Field(description="预填字段 / (预填 + 手填)")


class StatsOut(BaseModel):
    streets: list[StreetStats]
    total_residents: int
    reuse_rate: float | None


# -- forms -----------------------------------------------------------------------------
class FormField(BaseModel):
    name: str
    label: str
    source: Literal["base", "typed"]
    required: bool
    value: str | None = None


class TemplateOut(BaseModel):
    code: str
    title: str
    fields: list[FormField]


class TemplateList(BaseModel):
    items: list[TemplateOut]


class FormIn(_Strict):
    template: str
    typed: dict[str, str] = Field(
        default_factory=dict, description="手填字段；填写基础库字段即覆盖（计为手填）"
    )


class FormOut(BaseModel):
    id: str
    template: str
    resident_id: str
    fields: list[FormField]
    prefilled_count: int
    typed_count: int
    created_at: datetime


# -- key rotation ----------------------------------------------------------------------
class RotationOut(BaseModel):
    id: str
    target_key_id: str
    status: JobStatus
    total: int
    done: int
    percent: int
    remaining: int
    started_at: datetime
    finished_at: datetime | None
