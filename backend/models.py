"""Models every feature shares: accounts, tokens, operator keys, audit trail, scheduled job runs."""

from __future__ import annotations

import secrets
from enum import StrEnum
from typing import Any

from tortoise import fields
from tortoise.models import Model


def new_public_id() -> str:
    """A short, URL-safe, unguessable public identifier."""
    return secrets.token_urlsafe(12)


class Role(StrEnum):
    RESIDENT = "resident"
    STREET_WORKER = "street_worker"
    CURATOR = "curator"
    BUREAU_ADMIN = "bureau_admin"
    JUDGE = "judge"
    VENDOR = "vendor"
    VENUE_OPERATOR = "venue_operator"


STAFF_ROLES = frozenset(Role) - {Role.RESIDENT}


class User(Model):
    """A person who signs in: a resident through WeChat, staff and vendors with a password."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    role = fields.CharEnumField(Role, max_length=20)
    username = fields.CharField(max_length=64, unique=True, null=True)
    password_hash = fields.CharField(max_length=200, null=True)
    wechat_openid = fields.CharField(max_length=128, unique=True, null=True)
    wechat_unionid = fields.CharField(max_length=128, null=True, db_index=True)
    display_name = fields.CharField(max_length=64, default="")
    street_code = fields.CharField(max_length=32, null=True)
    is_active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_login_at = fields.DatetimeField(null=True)

    class Meta:
        table = "core_user"


class RefreshToken(Model):
    """One refresh token of a sign-in session (a family), rotated on every use."""

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    family = fields.CharField(max_length=32, db_index=True)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="refresh_tokens", on_delete=fields.CASCADE
    )
    issued_at = fields.DatetimeField()
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "core_refresh_token"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("user_id",),)


class ApiKey(Model):
    """An operator API key. Only its SHA-256 digest is stored."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    prefix = fields.CharField(max_length=16)
    key_hash = fields.CharField(max_length=64, unique=True)
    name = fields.CharField(max_length=100, default="")
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="api_keys", on_delete=fields.CASCADE
    )
    created_at = fields.DatetimeField(auto_now_add=True)
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        table = "core_api_key"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("user_id",),)


class AuditEntry(Model):
    """Who did what to which object, and why. Never holds personal data in clear."""

    id = fields.BigIntField(primary_key=True)
    at = fields.DatetimeField(db_index=True)
    actor = fields.CharField(max_length=64, default="system")
    actor_role = fields.CharField(max_length=20, default="system")
    action = fields.CharField(max_length=64, db_index=True)
    object_type = fields.CharField(max_length=40)
    object_id = fields.CharField(max_length=64, db_index=True)
    reason = fields.TextField(default="")
    detail: fields.Field[dict[str, Any]] = fields.JSONField(default=dict)
    request_id = fields.CharField(max_length=64, default="")

    class Meta:
        table = "core_audit_entry"


class JobRun(Model):
    """One run of a scheduled job: the unique pair makes each scheduled run happen once."""

    id = fields.BigIntField(primary_key=True)
    name = fields.CharField(max_length=64)
    scheduled_for = fields.DatetimeField()
    runner = fields.CharField(max_length=80)
    started_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)
    status = fields.CharField(max_length=16, default="running")
    error = fields.TextField(default="")

    class Meta:
        table = "core_job_run"
        unique_together = (("name", "scheduled_for"),)


class Notification(Model):
    """A message for one user, listed in the app (delivery channels come later)."""

    id = fields.BigIntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="notifications", on_delete=fields.CASCADE
    )
    kind = fields.CharField(max_length=40)
    title = fields.CharField(max_length=100)
    body = fields.TextField(default="")
    link = fields.CharField(max_length=200, default="")
    dedupe_key = fields.CharField(max_length=120, unique=True)
    created_at = fields.DatetimeField(db_index=True)
    read_at = fields.DatetimeField(null=True)

    class Meta:
        table = "core_notification"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("user_id",),)
