"""Request and response types of vendors."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator
from stdnum.cn import uscc
from stdnum.exceptions import ValidationError as StdnumError

from crowdsource.challenges.models import VendorStatus

_PHONE = r"^[0-9+\-() ]{5,32}$"
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class VendorRegistration(BaseModel):
    model_config = ConfigDict(extra="forbid")
    company_name: str = Field(min_length=2, max_length=100, description="企业名称")
    uscc: str = Field(min_length=18, max_length=24, description="统一社会信用代码（18 位）")
    contact_name: str = Field(min_length=1, max_length=32)
    contact_phone: str = Field(pattern=_PHONE)
    contact_email: str = Field(default="", max_length=254)
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    password: str = Field(min_length=10, max_length=256)

    @field_validator("uscc")
    @classmethod
    def _checksum(cls, value: str) -> str:
        try:
            return str(uscc.validate(value))
        except StdnumError:
            raise ValueError("统一社会信用代码无效（校验位不符）") from None

    @field_validator("contact_email")
    @classmethod
    def _email(cls, value: str) -> str:
        import re

        if value and not re.match(_EMAIL, value):
            raise ValueError("邮箱格式不正确")
        return value


class VendorMemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    password: str = Field(min_length=10, max_length=256)
    display_name: str = Field(default="", max_length=64)


class VendorDecision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(default="", max_length=200)


class VendorSuspension(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=200, description="暂停原因，告知企业")


class VendorListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    status: VendorStatus | None = None
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=200)


class MemberOut(BaseModel):
    user_id: str
    username: str | None
    display_name: str
    is_owner: bool


class VendorOut(BaseModel):
    id: str
    name: str
    uscc: str
    status: VendorStatus
    status_reason: str
    contact_name: str
    contact_phone: str
    contact_email: str
    created_at: datetime
    verified_at: datetime | None
    members: list[MemberOut] | None = None


class VendorPage(BaseModel):
    items: list[VendorOut]
    next_cursor: str | None = None
