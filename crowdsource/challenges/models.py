"""Solution vendors (企业/方案提供方) and the accounts that act for them."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from backend.models import User, new_public_id


class VendorStatus(StrEnum):
    PENDING = "pending"
    VERIFIED = "verified"
    SUSPENDED = "suspended"


class Vendor(Model):
    """A company that proposes solutions, identified by its unified social credit code."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    name = fields.CharField(max_length=100)
    uscc = fields.CharField(max_length=18, unique=True)
    contact_name = fields.CharField(max_length=32)
    contact_phone = fields.CharField(max_length=32)
    contact_email = fields.CharField(max_length=254, default="")
    status = fields.CharEnumField(VendorStatus, max_length=12, default=VendorStatus.PENDING)
    status_reason = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField()
    verified_at = fields.DatetimeField(null=True)

    class Meta:
        table = "challenges_vendor"


class VendorMember(Model):
    """A vendor account acting for one vendor: members share the vendor's proposals."""

    id = fields.IntField(primary_key=True)
    vendor: fields.ForeignKeyRelation[Vendor] = fields.ForeignKeyField(
        "challenges.Vendor", related_name="members", on_delete=fields.CASCADE
    )
    user: fields.OneToOneRelation[User] = fields.OneToOneField(
        "core.User", related_name="vendor_membership", on_delete=fields.CASCADE
    )
    is_owner = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()

    class Meta:
        table = "challenges_vendor_member"
