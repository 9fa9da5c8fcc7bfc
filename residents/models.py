"""Resident base data: communities, households, residents, their history and access log.

Names, ID numbers, phones and notes are stored only as authenticated ciphertexts
(``<key id>:<base64>``) with keyed hashes (blind indexes) for exact look-ups. Birth date and
gender are derived from the ID number and stored in clear for lists and aggregates.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from backend.models import User, new_public_id


class Relation(StrEnum):
    """Relation of a household member to the head of the household."""

    HEAD = "head"
    SPOUSE = "spouse"
    CHILD = "child"
    PARENT = "parent"
    GRANDCHILD = "grandchild"
    SIBLING = "sibling"
    OTHER = "other"


# How people write them: on forms, lists, exports and the console (the import accepts more).
RELATION_LABELS: dict[str, str] = {
    Relation.HEAD: "户主",
    Relation.SPOUSE: "配偶",
    Relation.CHILD: "子女",
    Relation.PARENT: "父母",
    Relation.GRANDCHILD: "孙子女",
    Relation.SIBLING: "兄弟姐妹",
    Relation.OTHER: "其他",
}
GENDER_LABELS = {"M": "男", "F": "女"}


class ResidentStatus(StrEnum):
    ACTIVE = "active"
    MERGED = "merged"


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Community(Model):
    """A community (社区) of a street (街道), the street named by its code."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    street_code = fields.CharField(max_length=32, db_index=True)
    name = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "residents_community"
        unique_together = (("street_code", "name"),)


class Household(Model):
    """A household (户) at one address of a community."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    street_code = fields.CharField(max_length=32, db_index=True)
    community: fields.ForeignKeyRelation[Community] = fields.ForeignKeyField(
        "residents.Community", related_name="households", on_delete=fields.CASCADE
    )
    community_id: int
    address = fields.CharField(max_length=200)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "residents_household"
        unique_together = (("community", "address"),)


class Resident(Model):
    """One resident. Identifiers only as ciphertexts and blind indexes (see module docstring)."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    street_code = fields.CharField(max_length=32, db_index=True)
    community: fields.ForeignKeyRelation[Community] = fields.ForeignKeyField(
        "residents.Community", related_name="residents", on_delete=fields.CASCADE
    )
    community_id: int
    household: fields.ForeignKeyNullableRelation[Household] = fields.ForeignKeyField(
        "residents.Household", related_name="members", null=True, on_delete=fields.SET_NULL
    )
    household_id: int | None
    relation = fields.CharEnumField(Relation, max_length=16, default=Relation.OTHER)
    key_id = fields.CharField(max_length=32, db_index=True)
    name_cipher = fields.TextField()
    name_index = fields.CharField(max_length=64, db_index=True)
    id_cipher = fields.TextField()
    id_index = fields.CharField(max_length=64, unique=True)
    phone_cipher = fields.TextField(null=True)
    phone_index = fields.CharField(max_length=64, null=True, db_index=True)
    notes_cipher = fields.TextField(null=True)
    gender = fields.CharField(max_length=1)
    birth_date = fields.DateField(db_index=True)
    # Tag codes as ",code,code," so one LIKE finds a tag on SQLite and PostgreSQL alike.
    tags = fields.CharField(max_length=500, default=",")
    status = fields.CharEnumField(ResidentStatus, max_length=10, default=ResidentStatus.ACTIVE)
    merged_into: fields.ForeignKeyNullableRelation[Resident] = fields.ForeignKeyField(
        "residents.Resident", related_name="merged_from", null=True, on_delete=fields.SET_NULL
    )
    merged_into_id: int | None
    user: fields.ForeignKeyNullableRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="resident_record", null=True, on_delete=fields.SET_NULL
    )
    user_id: int | None
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        table = "residents_resident"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("merged_into_id",), ("household_id",), ("community_id",))
        unique_together = (("user",),)


class Tag(Model):
    """A tag of the vocabulary added by the bureau (the built-in ones live in code)."""

    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=32, unique=True)
    label = fields.CharField(max_length=32)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "residents_tag"


class ResidentVersion(Model):
    """One change of a resident: who, when, what (identifiers only masked or as changed)."""

    id = fields.BigIntField(primary_key=True)
    resident: fields.ForeignKeyRelation[Resident] = fields.ForeignKeyField(
        "residents.Resident", related_name="versions", on_delete=fields.CASCADE
    )
    resident_id: int
    version = fields.IntField()
    action = fields.CharField(max_length=20)
    actor = fields.CharField(max_length=64)
    actor_role = fields.CharField(max_length=20)
    at = fields.DatetimeField()
    changes: fields.Field[dict] = fields.JSONField(default=dict)

    class Meta:
        table = "residents_version"
        unique_together = (("resident", "version"),)


class AccessEvent(Model):
    """One access to a resident's data, shown to the resident: who (role, office), when, why."""

    id = fields.BigIntField(primary_key=True)
    resident: fields.ForeignKeyRelation[Resident] = fields.ForeignKeyField(
        "residents.Resident", related_name="access_events", on_delete=fields.CASCADE
    )
    resident_id: int
    at = fields.DatetimeField(db_index=True)
    kind = fields.CharField(max_length=16)
    field = fields.CharField(max_length=16, default="")
    actor = fields.CharField(max_length=64)
    actor_role = fields.CharField(max_length=20)
    office = fields.CharField(max_length=32, default="")
    reason = fields.CharField(max_length=200, default="")
    request_id = fields.CharField(max_length=64, default="")

    class Meta:
        table = "residents_access_event"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("resident_id",),)


class FormSubmission(Model):
    """A form filled from the base data, its values encrypted as one JSON document."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    template = fields.CharField(max_length=32)
    resident: fields.ForeignKeyRelation[Resident] = fields.ForeignKeyField(
        "residents.Resident", related_name="forms", on_delete=fields.CASCADE
    )
    resident_id: int
    street_code = fields.CharField(max_length=32, db_index=True)
    key_id = fields.CharField(max_length=32, db_index=True)
    values_cipher = fields.TextField()
    prefilled_count = fields.IntField()
    typed_count = fields.IntField()
    actor = fields.CharField(max_length=64)
    created_at = fields.DatetimeField()

    class Meta:
        table = "residents_form"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("resident_id",),)


class ImportJob(Model):
    """A spreadsheet import running in the background, with its counts and bad rows."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    street_code = fields.CharField(max_length=32, db_index=True)
    actor = fields.CharField(max_length=64)
    filename = fields.CharField(max_length=200, default="")
    status = fields.CharEnumField(JobStatus, max_length=10, default=JobStatus.QUEUED)
    total = fields.IntField(default=0)
    processed = fields.IntField(default=0)
    created = fields.IntField(default=0)
    unchanged = fields.IntField(default=0)
    failed = fields.IntField(default=0)
    # Bad rows (row, column, reason) without values; the rows' values are in errors_cipher.
    errors: fields.Field[list] = fields.JSONField(default=list)
    key_id = fields.CharField(max_length=32, default="")
    errors_cipher = fields.TextField(null=True)
    message = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)

    class Meta:
        table = "residents_import"


class KeyRotation(Model):
    """A re-encryption of every stored value under the current key, run in batches."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    target_key_id = fields.CharField(max_length=32)
    status = fields.CharEnumField(JobStatus, max_length=10, default=JobStatus.RUNNING)
    total = fields.IntField(default=0)
    done = fields.IntField(default=0)
    runner = fields.CharField(max_length=80, default="")
    heartbeat_at = fields.DatetimeField(null=True)
    started_at = fields.DatetimeField()
    finished_at = fields.DatetimeField(null=True)
    error = fields.CharField(max_length=200, default="")

    class Meta:
        table = "residents_key_rotation"
