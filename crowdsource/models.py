"""Pain-point campaigns: campaigns, pain points, votes, reports and per-person tallies.

Model docstrings become SQL comments: keep them free of semicolons. Each model names its app
label in ``Meta.app``, so other modules that import these models never claim them.
"""

from __future__ import annotations

from enum import StrEnum

from tortoise import fields
from tortoise.models import Model

from backend.models import User, new_public_id


class Audience(StrEnum):
    RESIDENT = "resident"
    ENTERPRISE = "enterprise"
    DEPARTMENT = "department"


class Phase(StrEnum):
    DRAFT = "draft"
    COLLECTING = "collecting"
    VOTING = "voting"
    CURATING = "curating"
    CLOSED = "closed"


class ModerationPolicy(StrEnum):
    """When a submission becomes public: after a curator marks it valid, or at once."""

    PRE = "pre"
    POST = "post"


class Status(StrEnum):
    SUBMITTED = "submitted"
    VALID = "valid"
    INVALID = "invalid"
    DUPLICATE = "duplicate"


class Campaign(Model):
    """A pain-point campaign (征集活动) with its scheduled phases and per-campaign rules."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    title = fields.CharField(max_length=100)
    description = fields.TextField(default="")
    categories: fields.Field[list] = fields.JSONField(default=list)
    audiences: fields.Field[list] = fields.JSONField(default=list)
    collecting_starts_at = fields.DatetimeField()
    collecting_ends_at = fields.DatetimeField()
    voting_starts_at = fields.DatetimeField()
    voting_ends_at = fields.DatetimeField()
    closes_at = fields.DatetimeField()
    # The phases last recorded by a transition ("collecting+voting"), and the main one.
    phase_state = fields.CharField(max_length=64, default=Phase.DRAFT.value)
    phase = fields.CharEnumField(Phase, max_length=16, default=Phase.DRAFT)
    phase_changed_at = fields.DatetimeField(null=True)
    submission_cap = fields.IntField(default=5)
    report_threshold = fields.IntField(default=5)
    vote_budget = fields.IntField(null=True)
    votes_per_minute_person = fields.IntField(default=30)
    votes_per_minute_ip = fields.IntField(default=600)
    # pre: public once a curator marks it valid. post: public at once, hidden if judged invalid.
    # The database default fills the rows that existed before the column (see migration 0005).
    moderation = fields.CharEnumField(
        ModerationPolicy,
        max_length=8,
        default=ModerationPolicy.PRE,
        db_default=ModerationPolicy.PRE.value,
    )
    created_by = fields.CharField(max_length=32, default="")
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    def category_labels(self) -> dict[str, str]:
        """Category code → Chinese label, in the campaign's order."""
        return {c["code"]: c["label"] for c in self.categories}

    class Meta:
        app = "crowdsource"
        table = "crowdsource_campaign"


class PainPoint(Model):
    """A submitted city pain point (痛难点) and its moderation state."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "crowdsource.Campaign", related_name="pain_points", on_delete=fields.CASCADE
    )
    campaign_id: int
    author: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="pain_points", on_delete=fields.CASCADE
    )
    author_id: int
    audience = fields.CharEnumField(Audience, max_length=16)
    company_name = fields.CharField(max_length=100, null=True)
    department_name = fields.CharField(max_length=100, null=True)
    title = fields.CharField(max_length=60)
    description = fields.TextField()
    category = fields.CharField(max_length=32)
    lat = fields.FloatField(null=True)
    lng = fields.FloatField(null=True)
    district = fields.CharField(max_length=32, null=True)
    address = fields.CharField(max_length=200, null=True)
    photo_urls: fields.Field[list] = fields.JSONField(default=list)
    status = fields.CharEnumField(Status, max_length=16, default=Status.SUBMITTED)
    hidden = fields.BooleanField(default=False)
    report_count = fields.IntField(default=0)
    moderation_reason = fields.TextField(default="")
    duplicate_of: fields.ForeignKeyNullableRelation[PainPoint] = fields.ForeignKeyField(
        "crowdsource.PainPoint", related_name="duplicates", null=True, on_delete=fields.SET_NULL
    )
    duplicate_of_id: int | None
    moderated_by = fields.CharField(max_length=32, null=True)
    moderated_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()
    updated_at = fields.DatetimeField()

    class Meta:
        app = "crowdsource"
        table = "crowdsource_pain_point"
        indexes = (("campaign_id", "created_at"), ("duplicate_of_id",), ("author_id",))


class Vote(Model):
    """The vote of one person for one pain point. The unique pair is the one-vote rule."""

    id = fields.BigIntField(primary_key=True)
    pain_point: fields.ForeignKeyRelation[PainPoint] = fields.ForeignKeyField(
        "crowdsource.PainPoint", related_name="votes", on_delete=fields.CASCADE
    )
    pain_point_id: int
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "crowdsource.Campaign", related_name="votes", on_delete=fields.CASCADE
    )
    campaign_id: int
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="votes", on_delete=fields.CASCADE
    )
    user_id: int
    audience = fields.CharEnumField(Audience, max_length=16)
    created_at = fields.DatetimeField()
    # Salted (HMAC with the app secret), truncated hashes: the address, its /24 (IPv6: /48)
    # and the device id the client sent. Never the clear values (they are personal data).
    ip_hash = fields.CharField(max_length=16, null=True)
    net_hash = fields.CharField(max_length=16, null=True)
    device_hash = fields.CharField(max_length=16, null=True)
    flag: fields.ForeignKeyNullableRelation[VoteFlag] = fields.ForeignKeyField(
        "crowdsource.VoteFlag", related_name="flagged_votes", null=True, on_delete=fields.SET_NULL
    )
    flag_id: int | None

    class Meta:
        app = "crowdsource"
        table = "crowdsource_vote"
        unique_together = (("pain_point", "user"),)
        indexes = (("campaign_id", "user_id"), ("campaign_id", "created_at"))


class Participant(Model):
    """What one person has used of a campaign: submissions and votes (caps and budgets)."""

    id = fields.IntField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "crowdsource.Campaign", related_name="participants", on_delete=fields.CASCADE
    )
    campaign_id: int
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="campaign_participations", on_delete=fields.CASCADE
    )
    user_id: int
    submissions = fields.IntField(default=0)
    votes = fields.IntField(default=0)

    class Meta:
        app = "crowdsource"
        table = "crowdsource_participant"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("user_id",),)
        unique_together = (("campaign", "user"),)


class Report(Model):
    """A report that a pain point is inappropriate, one per person and item."""

    id = fields.IntField(primary_key=True)
    pain_point: fields.ForeignKeyRelation[PainPoint] = fields.ForeignKeyField(
        "crowdsource.PainPoint", related_name="reports", on_delete=fields.CASCADE
    )
    pain_point_id: int
    user: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="reports", on_delete=fields.CASCADE
    )
    user_id: int
    reason = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField()

    class Meta:
        app = "crowdsource"
        table = "crowdsource_report"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("user_id",),)
        unique_together = (("pain_point", "user"),)


class Merge(Model):
    """A duplicate pain point (source) merged into another (target), with its vote tally."""

    id = fields.IntField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "crowdsource.Campaign", related_name="merges", on_delete=fields.CASCADE
    )
    campaign_id: int
    target: fields.ForeignKeyRelation[PainPoint] = fields.ForeignKeyField(
        "crowdsource.PainPoint", related_name="merges_in", on_delete=fields.CASCADE
    )
    target_id: int
    source: fields.OneToOneRelation[PainPoint] = fields.OneToOneField(
        "crowdsource.PainPoint", related_name="merged_into", on_delete=fields.CASCADE
    )
    source_id: int
    votes_moved = fields.IntField(default=0)
    votes_deduplicated = fields.IntField(default=0)
    reason = fields.TextField(default="")
    merged_by = fields.CharField(max_length=32)
    merged_at = fields.DatetimeField()

    class Meta:
        app = "crowdsource"
        table = "crowdsource_merge"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("target_id",), ("campaign_id",))


class Open311Client(Model):
    """An Open311 GeoReport client (a civic app) with its hashed key and its service account."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    name = fields.CharField(max_length=100)
    key_prefix = fields.CharField(max_length=16)
    key_hash = fields.CharField(max_length=64, unique=True)
    account: fields.ForeignKeyRelation[User] = fields.ForeignKeyField(
        "core.User", related_name="open311_clients", on_delete=fields.CASCADE
    )
    account_id: int
    audience = fields.CharEnumField(Audience, max_length=16, default=Audience.RESIDENT)
    organisation = fields.CharField(max_length=100, null=True)
    # An enterprise client speaks for one verified vendor (challenges app): its requests carry
    # the vendor's registered name, and stop when the vendor is no longer verified.
    vendor: fields.ForeignKeyNullableRelation[Model] = fields.ForeignKeyField(
        "challenges.Vendor", related_name="open311_clients", null=True, on_delete=fields.SET_NULL
    )
    vendor_id: int | None
    requests_per_minute = fields.IntField(default=60)
    created_by = fields.CharField(max_length=32)
    created_at = fields.DatetimeField()
    last_used_at = fields.DatetimeField(null=True)
    revoked_at = fields.DatetimeField(null=True)

    class Meta:
        app = "crowdsource"
        table = "crowdsource_open311_client"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("account_id",),)


class VoteFlag(Model):
    """Suspicious voting found by the burst detector, kept for a curator to accept or discard."""

    id = fields.IntField(primary_key=True)
    public_id = fields.CharField(max_length=32, unique=True, default=new_public_id)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "crowdsource.Campaign", related_name="vote_flags", on_delete=fields.CASCADE
    )
    campaign_id: int
    heuristic = fields.CharField(max_length=32)
    # What the heuristic grouped by: an address or device hash, or a pain point public id.
    subject = fields.CharField(max_length=40)
    pain_point: fields.ForeignKeyNullableRelation[PainPoint] = fields.ForeignKeyField(
        "crowdsource.PainPoint", related_name="vote_flags", null=True, on_delete=fields.SET_NULL
    )
    pain_point_id: int | None
    window_start = fields.DatetimeField()
    window_end = fields.DatetimeField()
    votes = fields.IntField(default=0)
    accounts = fields.IntField(default=0)
    detail: fields.Field[dict] = fields.JSONField(default=dict)
    status = fields.CharField(max_length=16, default="open")
    note = fields.TextField(default="")
    votes_discarded = fields.IntField(default=0)
    resolved_by = fields.CharField(max_length=32, null=True)
    resolved_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField()

    class Meta:
        app = "crowdsource"
        table = "crowdsource_vote_flag"
        # Foreign keys are indexed: joins, look-ups by parent and deletes stay linear.
        indexes = (("pain_point_id",),)
        unique_together = (("campaign", "heuristic", "subject", "window_start"),)


class RefusalTally(Model):
    """Refused votes per campaign and reason, flushed from the key-value store's counters."""

    id = fields.IntField(primary_key=True)
    campaign: fields.ForeignKeyRelation[Campaign] = fields.ForeignKeyField(
        "crowdsource.Campaign", related_name="refusals", on_delete=fields.CASCADE
    )
    campaign_id: int
    code = fields.CharField(max_length=40)
    count = fields.BigIntField(default=0)

    class Meta:
        app = "crowdsource"
        table = "crowdsource_refusal_tally"
        unique_together = (("campaign", "code"),)
