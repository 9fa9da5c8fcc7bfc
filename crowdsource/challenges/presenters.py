"""Presenters: vendors, challenges, shortlists, proposals and judging as the API shows them.

Models (and what the caller has already decided or looked up: who may see what, counts, the
clock) to response schemas; views and services import them from here. Only the vendor and
challenge presenters read the rows they show (members; pain points and their votes).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from backend.models import User
from crowdsource import counters
from crowdsource.challenges.models import (
    Challenge,
    ChallengeSource,
    ChallengeStatus,
    Proposal,
    ProposalVersion,
    Score,
    ShortlistEntry,
    Vendor,
    VendorMember,
)
from crowdsource.challenges.schemas import (
    Attachment,
    AwardedSolution,
    ChallengeOut,
    Criterion,
    JudgeOut,
    MemberOut,
    OpenDataset,
    ProposalOut,
    ProposalVersionOut,
    ScoreOut,
    ShortlistItem,
    SourceOut,
    VendorOut,
)
from crowdsource.models import Campaign, PainPoint

# -- vendors ----------------------------------------------------------------------------


def mask_phone(phone: str) -> str:
    """138****8000 style: enough to recognise, not to call."""
    digits = phone.strip()
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def member_out(user: User, *, is_owner: bool) -> MemberOut:
    return MemberOut(
        user_id=user.public_id,
        username=user.username,
        display_name=user.display_name,
        is_owner=is_owner,
    )


async def vendor_out(vendor: Vendor, *, full: bool, with_members: bool = False) -> VendorOut:
    """A vendor as a viewer may see it (contact phone masked unless ``full``)."""
    members = None
    if with_members:
        rows = await VendorMember.filter(vendor=vendor).select_related("user").order_by("id")
        members = [member_out(m.user, is_owner=m.is_owner) for m in rows]
    return VendorOut(
        id=vendor.public_id,
        name=vendor.name,
        uscc=vendor.uscc,
        status=vendor.status,
        status_reason=vendor.status_reason,
        contact_name=vendor.contact_name,
        contact_phone=vendor.contact_phone if full else mask_phone(vendor.contact_phone),
        contact_email=vendor.contact_email,
        created_at=vendor.created_at,
        verified_at=vendor.verified_at,
        members=members,
    )


# -- shortlist and challenges -----------------------------------------------------------


def source_out(item: PainPoint, counts: dict[int, dict[str, int]]) -> SourceOut:
    entry = counts.get(item.id, {})
    return SourceOut(
        id=item.public_id,
        title=item.title,
        category=item.category,
        votes=entry.get("total", 0),
        votes_by_audience={k: v for k, v in entry.items() if k != "total" and v},
    )


def shortlist_item_out(entry: ShortlistEntry, counts: dict[int, dict[str, int]]) -> ShortlistItem:
    return ShortlistItem(
        pain_point=source_out(entry.pain_point, counts),
        note=entry.note,
        added_by=entry.added_by,
        added_at=entry.added_at,
    )


def submissions_open(challenge: Challenge, now: datetime) -> bool:
    return challenge.status == ChallengeStatus.PUBLISHED and now < challenge.submission_deadline


async def challenge_out(challenge: Challenge, *, now: datetime) -> ChallengeOut:
    return (await challenges_out([challenge], now=now))[0]


async def challenges_out(challenges: list[Challenge], *, now: datetime) -> list[ChallengeOut]:
    """Challenges with their pain points and votes: two queries, whatever the number."""
    sources = await ChallengeSource.filter(
        challenge_id__in=[c.id for c in challenges]
    ).select_related("pain_point")
    by_challenge: dict[int, list[PainPoint]] = defaultdict(list)
    for source in sources:
        by_challenge[source.challenge_id].append(source.pain_point)
    counts = await counters.database_by_pk([s.pain_point.id for s in sources])
    result = []
    for challenge in challenges:
        campaign = (
            challenge.campaign
            if isinstance(challenge.campaign, Campaign)
            else await challenge.campaign
        )
        items = by_challenge[challenge.id]
        result.append(
            ChallengeOut(
                id=challenge.public_id,
                campaign_id=campaign.public_id,
                number=challenge.number,
                title=challenge.title,
                category=challenge.category,
                problem_statement=challenge.problem_statement,
                background=challenge.background,
                expected_outcome=challenge.expected_outcome,
                owning_department=challenge.owning_department,
                pain_points=sorted(
                    (source_out(p, counts) for p in items), key=lambda s: (-s.votes, s.id)
                ),
                open_data=[OpenDataset.model_validate(d) for d in challenge.open_data],
                rubric=[Criterion.model_validate(c) for c in challenge.rubric],
                prize=challenge.prize,
                submission_deadline=challenge.submission_deadline,
                submissions_open=submissions_open(challenge, now),
                status=challenge.status.value,
                published_at=challenge.published_at,
            )
        )
    return result


# -- proposals and judging --------------------------------------------------------------


def proposal_out(proposal: Proposal) -> ProposalOut:
    return ProposalOut(
        id=proposal.public_id,
        challenge_id=proposal.challenge.public_id,
        vendor_id=proposal.vendor.public_id,
        vendor_name=proposal.vendor.name,
        title=proposal.title,
        summary=proposal.summary,
        body=proposal.body,
        attachments=[Attachment.model_validate(a) for a in proposal.attachments],
        status=proposal.status.value,
        versions_submitted=proposal.versions_submitted,
        submitted_at=proposal.submitted_at,
        decision_feedback=proposal.decision_feedback,
        updated_at=proposal.updated_at,
    )


def version_out(version: ProposalVersion) -> ProposalVersionOut:
    return ProposalVersionOut(
        number=version.number,
        title=version.title,
        summary=version.summary,
        body=version.body,
        attachments=[Attachment.model_validate(a) for a in version.attachments],
        submitted_by=version.submitted_by,
        submitted_at=version.submitted_at,
    )


def judge_out(judge: User, conflicts: list[str]) -> JudgeOut:
    return JudgeOut(
        user_id=judge.public_id, display_name=judge.display_name, conflicts=sorted(conflicts)
    )


def score_out(score: Score) -> ScoreOut:
    return ScoreOut(
        judge_id=score.judge.public_id,
        judge_name=score.judge.display_name,
        scores=score.scores,
        comments=score.comments,
        overall_comment=score.overall_comment,
        total=score.total,
        submitted_at=score.submitted_at,
    )


def awarded_out(proposal: Proposal, *, aggregate: float | None) -> AwardedSolution:
    return AwardedSolution(
        proposal_id=proposal.public_id,
        vendor_name=proposal.vendor.name,
        title=proposal.title,
        summary=proposal.summary,
        aggregate=aggregate,
        awarded_at=proposal.decided_at,
    )
