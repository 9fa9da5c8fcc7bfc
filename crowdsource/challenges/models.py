"""Vendors, challenges, proposals, judging and follows (from pain points to solutions)."""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from backend.models import User, new_public_id
from crowdsource.models import Campaign, PainPoint


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
    vendor_id: int
    user: fields.OneToOneRelation[User] = fields.OneToOneField(
        "core.User", related_name="vendor_membership", on_delete=fields.CASCADE
    )
    user_id: int
    is_owner = fields.BooleanField(default=False)
    created_at = fields.DatetimeField()

    class Meta:
        table = "challenges_vendor_member"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("vendor_id",),)


class ChallengeStatus(StrEnum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    PUBLISHED = "published"


class ShortlistEntry(Model):
    """A valid pain point a curator has picked as material for a challenge."""

    id = fields.IntField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "crowdsource.Campaign", related_name="shortlist", on_delete=fields.CASCADE
    )
    campaign_id: int
    pain_point: fields.OneToOneRelation[PainPoint] = fields.OneToOneField(
        "crowdsource.PainPoint", related_name="shortlist_entry", on_delete=fields.CASCADE
    )
    pain_point_id: int
    note = fields.CharField(max_length=500, default="")
    added_by = fields.CharField(max_length=32)
    added_at = fields.DatetimeField()

    class Meta:
        table = "challenges_shortlist_entry"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("campaign_id",),)


class Challenge(Model):
    """A solution challenge written from one or more pain points, published in the booklet."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "crowdsource.Campaign", related_name="challenges", on_delete=fields.CASCADE
    )
    campaign_id: int
    number = fields.IntField(null=True)
    title = fields.CharField(max_length=100)
    category = fields.CharField(max_length=32)
    problem_statement = fields.TextField()
    background = fields.TextField(default="")
    expected_outcome = fields.TextField(default="")
    owning_department = fields.CharField(max_length=100)
    open_data: fields.Field[list] = fields.JSONField(default=list)
    rubric: fields.Field[list] = fields.JSONField(default=list)
    prize = fields.CharField(max_length=500, default="")
    submission_deadline = fields.DatetimeField()
    submissions_closed_at = fields.DatetimeField(null=True)
    status = fields.CharEnumField(ChallengeStatus, max_length=12, default=ChallengeStatus.DRAFT)
    review_note = fields.CharField(max_length=500, default="")
    created_by = fields.CharField(max_length=32)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    published_at = fields.DatetimeField(null=True)

    class Meta:
        table = "challenges_challenge"
        unique_together = (("campaign", "number"),)


class ChallengeSource(Model):
    """A pain point a challenge comes from."""

    id = fields.IntField(primary_key=True)
    challenge: fields.ForeignKeyRelation[Challenge] = fields.ForeignKeyField(
        "challenges.Challenge", related_name="sources", on_delete=fields.CASCADE
    )
    challenge_id: int
    pain_point: fields.ForeignKeyRelation[PainPoint] = fields.ForeignKeyField(
        "crowdsource.PainPoint", related_name="challenge_sources", on_delete=fields.CASCADE
    )
    pain_point_id: int

    class Meta:
        table = "challenges_challenge_source"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("pain_point_id",),)
        unique_together = (("challenge", "pain_point"),)


class ProposalStatus(StrEnum):
    DRAFT = "draft"
    SUBMITTED = "submitted"
    WITHDRAWN = "withdrawn"
    SHORTLISTED = "shortlisted"
    AWARDED = "awarded"
    DECLINED = "declined"


class Proposal(Model):
    """A vendor's solution to a challenge, confidential to the vendor, curators and judges."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    challenge: fields.ForeignKeyRelation[Challenge] = fields.ForeignKeyField(
        "challenges.Challenge", related_name="proposals", on_delete=fields.CASCADE
    )
    challenge_id: int
    vendor: fields.ForeignKeyRelation[Vendor] = fields.ForeignKeyField(
        "challenges.Vendor", related_name="proposals", on_delete=fields.CASCADE
    )
    vendor_id: int
    title = fields.CharField(max_length=100)
    summary = fields.TextField(default="")
    body = fields.TextField(default="")
    attachments: fields.Field[list] = fields.JSONField(default=list)
    status = fields.CharEnumField(ProposalStatus, max_length=12, default=ProposalStatus.DRAFT)
    versions_submitted = fields.IntField(default=0)
    decision_feedback = fields.TextField(default="")
    decided_by = fields.CharField(max_length=32, null=True)
    decided_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()
    submitted_at = fields.DatetimeField(null=True)

    class Meta:
        table = "challenges_proposal"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("vendor_id",),)
        unique_together = (("challenge", "vendor"),)


class ProposalVersion(Model):
    """Every submitted version of a proposal, kept as it was submitted."""

    id = fields.IntField(primary_key=True)
    proposal: fields.ForeignKeyRelation[Proposal] = fields.ForeignKeyField(
        "challenges.Proposal", related_name="versions", on_delete=fields.CASCADE
    )
    proposal_id: int
    number = fields.IntField()
    title = fields.CharField(max_length=100)
    summary = fields.TextField(default="")
    body = fields.TextField(default="")
    attachments: fields.Field[list] = fields.JSONField(default=list)
    submitted_by = fields.CharField(max_length=32)
    submitted_at = fields.DatetimeField()

    class Meta:
        table = "challenges_proposal_version"
        unique_together = (("proposal", "number"),)


class JudgeAssignment(Model):
    """A judge assigned by a curator to score a challenge's proposals."""

    id = fields.IntField(primary_key=True)
    challenge: fields.ForeignKeyRelation[Challenge] = fields.ForeignKeyField(
        "challenges.Challenge", related_name="judges", on_delete=fields.CASCADE
    )
    challenge_id: int
    judge: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="judge_assignments", on_delete=fields.CASCADE
    )
    judge_id: int
    assigned_by = fields.CharField(max_length=32)
    assigned_at = fields.DatetimeField()

    class Meta:
        table = "challenges_judge_assignment"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("judge_id",),)
        unique_together = (("challenge", "judge"),)


class ConflictOfInterest(Model):
    """A judge's declared conflict with a vendor: the judge is excluded from its proposals."""

    id = fields.IntField(primary_key=True)
    challenge: fields.ForeignKeyRelation[Challenge] = fields.ForeignKeyField(
        "challenges.Challenge", related_name="conflicts", on_delete=fields.CASCADE
    )
    challenge_id: int
    judge: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="conflicts", on_delete=fields.CASCADE
    )
    judge_id: int
    vendor: fields.ForeignKeyRelation[Vendor] = fields.ForeignKeyField(
        "challenges.Vendor", related_name="conflicts", on_delete=fields.CASCADE
    )
    vendor_id: int
    reason = fields.CharField(max_length=300, default="")
    declared_at = fields.DatetimeField()

    class Meta:
        table = "challenges_conflict"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("vendor_id",), ("judge_id",))
        unique_together = (("challenge", "judge", "vendor"),)


class Score(Model):
    """One judge's scores of one proposal, per rubric criterion, with comments."""

    id = fields.IntField(primary_key=True)
    proposal: fields.ForeignKeyRelation[Proposal] = fields.ForeignKeyField(
        "challenges.Proposal", related_name="scores", on_delete=fields.CASCADE
    )
    proposal_id: int
    judge: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="scores", on_delete=fields.CASCADE
    )
    judge_id: int
    scores: fields.Field[dict] = fields.JSONField(default=dict)
    comments: fields.Field[dict] = fields.JSONField(default=dict)
    overall_comment = fields.TextField(default="")
    total = fields.FloatField()
    submitted_at = fields.DatetimeField()

    class Meta:
        table = "challenges_score"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("judge_id",),)
        unique_together = (("proposal", "judge"),)


class Follow(Model):
    """A resident following a pain point, told when its challenge is published or awarded."""

    id = fields.IntField(primary_key=True)
    pain_point: fields.ForeignKeyRelation[PainPoint] = fields.ForeignKeyField(
        "crowdsource.PainPoint", related_name="followers", on_delete=fields.CASCADE
    )
    pain_point_id: int
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="follows", on_delete=fields.CASCADE
    )
    user_id: int
    created_at = fields.DatetimeField()

    class Meta:
        table = "challenges_follow"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("user_id",),)
        unique_together = (("pain_point", "user"),)
