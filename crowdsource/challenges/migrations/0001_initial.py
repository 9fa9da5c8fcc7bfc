from tortoise import migrations
from tortoise.migrations import operations as ops
from backend.models import new_public_id
from crowdsource.challenges.models import VendorStatus
from tortoise.fields.base import OnDelete
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [("core", "0001_initial")]

    initial = True

    operations = [
        ops.CreateModel(
            name="Vendor",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                ("public_id", fields.CharField(default=new_public_id, unique=True, max_length=32)),
                ("name", fields.CharField(max_length=100)),
                ("uscc", fields.CharField(unique=True, max_length=18)),
                ("contact_name", fields.CharField(max_length=32)),
                ("contact_phone", fields.CharField(max_length=32)),
                ("contact_email", fields.CharField(default="", max_length=254)),
                (
                    "status",
                    fields.CharEnumField(
                        default=VendorStatus.PENDING,
                        description="PENDING: pending\nVERIFIED: verified\nSUSPENDED: suspended",
                        enum_type=VendorStatus,
                        max_length=12,
                    ),
                ),
                ("status_reason", fields.CharField(default="", max_length=200)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
                (
                    "verified_at",
                    fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
                ),
            ],
            options={
                "table": "challenges_vendor",
                "app": "challenges",
                "pk_attr": "id",
                "table_description": "A company that proposes solutions, identified by its unified social credit code.",
            },
            bases=["Model"],
        ),
        ops.CreateModel(
            name="VendorMember",
            fields=[
                (
                    "id",
                    fields.IntField(generated=True, primary_key=True, unique=True, db_index=True),
                ),
                (
                    "vendor",
                    fields.ForeignKeyField(
                        "challenges.Vendor",
                        source_field="vendor_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="members",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                (
                    "user",
                    fields.OneToOneField(
                        "core.User",
                        source_field="user_id",
                        db_constraint=True,
                        to_field="id",
                        related_name="vendor_membership",
                        on_delete=OnDelete.CASCADE,
                    ),
                ),
                ("is_owner", fields.BooleanField(default=False)),
                ("created_at", fields.DatetimeField(auto_now=False, auto_now_add=False)),
            ],
            options={
                "table": "challenges_vendor_member",
                "app": "challenges",
                "pk_attr": "id",
                "table_description": "A vendor account acting for one vendor: members share the vendor's proposals.",
            },
            bases=["Model"],
        ),
    ]
