"""Request and response types of sign-in and account management."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.models import STAFF_ROLES, Role


class WeChatSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=128, description="wx.login 返回的 code")


class PasswordSignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str = Field(min_length=1, max_length=200)


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    refresh_token: str | None = Field(default=None, max_length=200)


class UserOut(BaseModel):
    id: str
    role: Role
    display_name: str
    username: str | None = None
    street_code: str | None = None


class TokenOut(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"  # noqa: S105 - not a secret
    expires_in: int
    user: UserOut


class StaffUserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
    password: str = Field(min_length=10, max_length=256)
    role: Role
    display_name: str = Field(default="", max_length=64)
    street_code: str | None = Field(default=None, min_length=1, max_length=32)

    @field_validator("role")
    @classmethod
    def _staff_only(cls, value: Role) -> Role:
        if value not in STAFF_ROLES:
            raise ValueError("residents sign in through WeChat, not with a password")
        return value


class UserList(BaseModel):
    items: list[UserOut]
    next_cursor: str | None = None


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(default="", max_length=100)


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    created_at: datetime
    key: str | None = Field(default=None, description="只在创建时返回一次")
