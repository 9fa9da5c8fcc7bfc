"""Request and response types of vendors."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    HttpUrl,
    field_validator,
)
from stdnum.cn import uscc
from stdnum.exceptions import ValidationError as StdnumError

from backend.access import PublicId
from backend.clock import in_service_years
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


# --- challenges ------------------------------------------------------------------------------


class OpenDataset(BaseModel):
    model_config = ConfigDict(extra="forbid")
    dataset: str = Field(min_length=1, max_length=100, description="数据集名称")
    description: str = Field(default="", max_length=1000)
    access_tier: Literal["public", "on_application"] = Field(
        description="public：公开；on_application：依申请开放"
    )


CriterionName = Annotated[str, Field(min_length=1, max_length=60)]


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid")
    criterion: CriterionName
    weight: int = Field(ge=1, le=100)
    description: str = Field(default="", max_length=300)


def _check_rubric(rubric: list[Criterion]) -> list[Criterion]:
    if not rubric:
        raise ValueError("评审细则至少包含一项")
    names = [c.criterion for c in rubric]
    if len(set(names)) != len(names):
        raise ValueError("评审项名称不能重复")
    if sum(c.weight for c in rubric) != 100:
        raise ValueError("各评审项权重之和须为 100")
    return rubric


class ChallengeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=2, max_length=100)
    category: str = Field(min_length=1, max_length=32)
    problem_statement: str = Field(min_length=10, max_length=5000)
    background: str = Field(default="", max_length=5000)
    expected_outcome: str = Field(default="", max_length=3000)
    owning_department: str = Field(min_length=2, max_length=100, description="责任部门")
    pain_point_ids: list[PublicId] = Field(min_length=1, max_length=50)
    open_data: list[OpenDataset] = Field(default_factory=list, max_length=20)
    rubric: list[Criterion] = Field(min_length=1, max_length=10)
    prize: str = Field(default="", max_length=500, description="奖励或支持")
    submission_deadline: Annotated[AwareDatetime, AfterValidator(in_service_years)]

    _rubric = field_validator("rubric")(_check_rubric)


class ChallengePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, min_length=2, max_length=100)
    category: str | None = Field(default=None, min_length=1, max_length=32)
    problem_statement: str | None = Field(default=None, min_length=10, max_length=5000)
    background: str | None = Field(default=None, max_length=5000)
    expected_outcome: str | None = Field(default=None, max_length=3000)
    owning_department: str | None = Field(default=None, min_length=2, max_length=100)
    pain_point_ids: list[PublicId] | None = Field(default=None, min_length=1, max_length=50)
    open_data: list[OpenDataset] | None = Field(default=None, max_length=20)
    rubric: list[Criterion] | None = Field(default=None, min_length=1, max_length=10)
    prize: str | None = Field(default=None, max_length=500)
    submission_deadline: Annotated[AwareDatetime, AfterValidator(in_service_years)] | None = None

    @field_validator("rubric")
    @classmethod
    def _rubric(cls, value: list[Criterion] | None) -> list[Criterion] | None:
        return None if value is None else _check_rubric(value)


class ReviewNote(BaseModel):
    model_config = ConfigDict(extra="forbid")
    note: str = Field(default="", max_length=500)


class SourceOut(BaseModel):
    id: str
    title: str
    category: str
    votes: int
    votes_by_audience: dict[str, int]


class ChallengeOut(BaseModel):
    id: str
    campaign_id: str
    number: int | None
    title: str
    category: str
    problem_statement: str
    background: str
    expected_outcome: str
    owning_department: str
    pain_points: list[SourceOut]
    open_data: list[OpenDataset]
    rubric: list[Criterion]
    prize: str
    submission_deadline: datetime
    submissions_open: bool
    status: str
    published_at: datetime | None


class ChallengePage(BaseModel):
    items: list[ChallengeOut]
    next_cursor: str | None = None


class ChallengeListQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")
    campaign: str | None = Field(default=None, max_length=32)
    category: str | None = Field(default=None, max_length=32)
    status: Literal["draft", "in_review", "published"] | None = Field(
        default=None, description="仅工作人员可按草稿/审核中筛选"
    )
    limit: int = Field(default=20, ge=1, le=100)
    cursor: str | None = Field(default=None, max_length=300)


class ShortlistIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pain_point_id: str = Field(min_length=1, max_length=32)
    note: str = Field(default="", max_length=500)


class ShortlistItem(BaseModel):
    pain_point: SourceOut
    note: str
    added_by: str
    added_at: datetime


class ShortlistOut(BaseModel):
    items: list[ShortlistItem]


# --- proposals -------------------------------------------------------------------------------

ALLOWED_ATTACHMENT_TYPES = (
    "application/pdf",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation",
    "application/zip",
    "image/png",
    "image/jpeg",
    "video/mp4",
)
MAX_ATTACHMENT_BYTES = 200 * 1024 * 1024


class Attachment(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: HttpUrl
    name: str = Field(min_length=1, max_length=200)
    size_bytes: int = Field(ge=1, le=MAX_ATTACHMENT_BYTES)
    content_type: str = Field(
        max_length=100, description="允许：" + "、".join(ALLOWED_ATTACHMENT_TYPES)
    )

    @field_validator("content_type")
    @classmethod
    def _type(cls, value: str) -> str:
        if value not in ALLOWED_ATTACHMENT_TYPES:
            raise ValueError("不支持的附件类型")
        return value


class ProposalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: str = Field(min_length=2, max_length=100)
    summary: str = Field(default="", max_length=2000)
    body: str = Field(default="", max_length=50_000)
    attachments: list[Attachment] = Field(default_factory=list, max_length=20)
    submit: bool = Field(default=False, description="true：保存并提交（生成新版本）")


class ProposalVersionOut(BaseModel):
    number: int
    title: str
    summary: str
    body: str
    attachments: list[Attachment]
    submitted_by: str
    submitted_at: datetime


class ProposalOut(BaseModel):
    id: str
    challenge_id: str
    vendor_id: str
    vendor_name: str
    title: str
    summary: str
    body: str
    attachments: list[Attachment]
    status: str
    versions_submitted: int
    submitted_at: datetime | None
    decision_feedback: str
    updated_at: datetime


class ProposalList(BaseModel):
    items: list[ProposalOut]


class VersionList(BaseModel):
    items: list[ProposalVersionOut]


# --- judging ---------------------------------------------------------------------------------


class JudgeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str = Field(min_length=1, max_length=32)


class ConflictIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vendor_id: str = Field(min_length=1, max_length=32)
    reason: str = Field(default="", max_length=300)


class JudgeOut(BaseModel):
    user_id: str
    display_name: str
    conflicts: list[str]


class JudgeList(BaseModel):
    items: list[JudgeOut]


class ScoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    scores: dict[CriterionName, Annotated[int, Field(ge=0, le=100)]] = Field(
        max_length=10, description="评审项 → 0–100 分"
    )
    comments: dict[CriterionName, Annotated[str, Field(max_length=3000)]] = Field(
        default_factory=dict, max_length=10
    )
    overall_comment: str = Field(default="", max_length=3000)

    @field_validator("scores")
    @classmethod
    def _range(cls, value: dict[str, int]) -> dict[str, int]:
        for criterion, score in value.items():
            if not 0 <= score <= 100:
                raise ValueError(f"{criterion}: 分数须在 0–100 之间")
        return value


class ScoreOut(BaseModel):
    judge_id: str
    judge_name: str
    scores: dict[str, int]
    comments: dict[str, str]
    overall_comment: str
    total: float
    submitted_at: datetime


class ScoreBoard(BaseModel):
    proposal_id: str
    scores: list[ScoreOut]
    judges_scored: int
    aggregate: float | None = Field(description="各评委加权总分的平均值")
    others_hidden: bool = Field(default=False, description="评委须先提交自己的评分才能看到他人评分")


class Decision(BaseModel):
    model_config = ConfigDict(extra="forbid")
    feedback: str = Field(default="", max_length=3000)


class DeclineIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    feedback: str = Field(min_length=1, max_length=3000, description="给企业的反馈")


class AwardedSolution(BaseModel):
    proposal_id: str
    vendor_name: str
    title: str
    summary: str
    aggregate: float | None
    awarded_at: datetime | None


class ResultsOut(BaseModel):
    challenge: ChallengeOut
    awarded: list[AwardedSolution]
    proposals_received: int
