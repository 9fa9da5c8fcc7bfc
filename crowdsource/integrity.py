"""Voting integrity: salted address hashes, a burst detector, refusal counts and flag review.

**Hashes.** A vote stores ``ip_hash`` (the address), ``net_hash`` (its /24, IPv6 /48) and
``device_hash`` (the ``X-Device-Id`` the client sent, if any): HMAC-SHA256 with the app secret
under a context of their own, truncated to 16 hex digits. Equal inputs group together; without
the secret nobody can test a guessed address against them. Clear addresses are never stored.

**Burst detector** (:func:`detect`, run every minute by the ``crowdsource.integrity`` job over the
current and previous 10-minute window, aligned to the clock; each window is judged on its own, so
runs are idempotent). It flags, never refuses; flagged votes count until a curator discards them.
A vote belongs to the first flag that caught it, in this order:

1. ``device_accounts`` — ``DEVICE_ACCOUNTS`` or more accounts voting from one device in a window;
2. ``ip_burst`` — ``IP_VOTES`` or more votes from one address in a window;
3. ``net_burst`` — ``NET_VOTES`` or more votes from one /24 (IPv6 /48) in a window;
4. ``new_account_swarm`` — ``SWARM_VOTES`` or more votes for one item in a window from accounts
   less than ``NEW_ACCOUNT_AGE`` old when they voted;
5. ``rate_spike`` — an item with ``SPIKE_MIN`` or more votes in a window and at least
   ``SPIKE_FACTOR`` times its baseline (its average per window over the previous 24 hours).

**Refusals** are counted per reason code in the key-value store (an atomic increment on the hot
path, no database write an attacker could multiply) and folded into ``crowdsource_refusal_tally``
by the same job, so they survive a restart, losing at most one minute of counts if the store
itself is lost. The report adds the not yet folded counts.

**Review.** ``accept`` keeps the votes; ``discard`` deletes them (the person's budget gets the vote
back), audited, and rebuilds the live counters, so the counts and the ranking drop at once (and
stay right after any later reconciliation).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import logging
from collections import defaultdict
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any

from tortoise.expressions import F

from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict, NotFound
from backend.scheduler import EPOCH
from backend.uow import unit_of_work
from crowdsource import counters
from crowdsource.models import Campaign, PainPoint, Participant, RefusalTally, Vote, VoteFlag
from crowdsource.presenters import flag_out
from crowdsource.schemas import FlagOut, FlagResolveIn, IntegrityReport

log = logging.getLogger("smartcircle.crowdsource")

WINDOW = timedelta(minutes=10)
DEVICE_ACCOUNTS = 3
IP_VOTES = 30
NET_VOTES = 150
SWARM_VOTES = 10
NEW_ACCOUNT_AGE = timedelta(hours=24)
SPIKE_MIN = 50
SPIKE_FACTOR = 10
BASELINE = timedelta(hours=24)
REASONS = {
    "device_accounts": f"同一设备在 10 分钟内有 {DEVICE_ACCOUNTS} 个以上账号投票",
    "ip_burst": f"同一 IP 在 10 分钟内投票 {IP_VOTES} 次以上",
    "net_burst": f"同一网段（/24）在 10 分钟内投票 {NET_VOTES} 次以上",
    "new_account_swarm": f"10 分钟内有 {SWARM_VOTES} 个以上新注册（24 小时内）账号为同一痛点投票",
    "rate_spike": f"该痛点 10 分钟内票数达 {SPIKE_MIN} 以上且为平时的 {SPIKE_FACTOR} 倍以上",
}
REFUSAL_CODES = (
    "vote_rate_limited",
    "already_voted",
    "phase_closed",
    "pain_point_hidden",
    "pain_point_pending_review",
    "pain_point_invalid",
    "pain_point_duplicate",
    "vote_budget_exhausted",
    "audience_not_invited",
    "not_vendor_member",
    "vendor_not_verified",
    "account_disabled",
)
_CONTEXT = b"smartcircle/vote-origin/v1:"


# -- hashes -----------------------------------------------------------------------------


@lru_cache(maxsize=16_384)
def _hash(secret: str, kind: str, value: str) -> str:
    """Kept per worker: the addresses of a burst repeat (a campus, a carrier's NAT)."""
    message = _CONTEXT + kind.encode() + b":" + value.encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()[:16]


def ip_hash(secret: str, ip: str) -> str:
    """The salted hash of one address."""
    return _hash(secret, "ip", ip.strip().lower())


@lru_cache(maxsize=16_384)
def _network(ip: str) -> str:
    """The address's network (/24 or /48), or the text itself when it is no address."""
    try:
        address = ipaddress.ip_address(ip.strip())
        prefix = 24 if address.version == 4 else 48
        return str(ipaddress.ip_network(f"{address}/{prefix}", strict=False))
    except ValueError:
        return ip.strip().lower()


def origin_hashes(secret: str, ip: str, device_id: str | None) -> tuple[str, str, str | None]:
    """The hashes a vote stores: address, its network (/24 or /48) and device (if sent)."""
    device = (device_id or "").strip()
    return (
        ip_hash(secret, ip),
        _hash(secret, "net", _network(ip)),
        _hash(secret, "device", device[:200]) if device else None,
    )


# -- refusals ---------------------------------------------------------------------------


def _refusal_key(campaign: Campaign, code: str) -> str:
    return f"cs:{campaign.public_id}:refused:{code}"


async def count_refusal(*, ctx: AppContext, campaign: Campaign, code: str) -> None:
    """Count one refused vote by its reason (never fails the request)."""
    code = code if code in REFUSAL_CODES else "other"
    try:
        await ctx.kv.incr(_refusal_key(campaign, code))
    except counters.KV_ERRORS:
        log.warning("refusal counter unreachable")


async def flush_refusals(*, ctx: AppContext, campaign: Campaign) -> int:
    """Fold the store's refusal counters into the database; the number folded."""
    folded = 0
    for code in (*REFUSAL_CODES, "other"):
        key = _refusal_key(campaign, code)
        n = await ctx.kv.get_int(key)
        if n <= 0:
            continue
        async with unit_of_work() as uow:
            await RefusalTally.bulk_create(
                [RefusalTally(campaign_id=campaign.id, code=code)], ignore_conflicts=True
            )
            await RefusalTally.filter(campaign_id=campaign.id, code=code).update(
                count=F("count") + n
            )
            uow.after_commit(partial(_drain, ctx=ctx, key=key, n=n))
        folded += n
    return folded


async def _drain(*, ctx: AppContext, key: str, n: int) -> None:
    """Take what was folded off the store's counter (keeps increments that landed meanwhile)."""
    await ctx.kv.incr(key, -n)


# -- detection --------------------------------------------------------------------------


def window_start(moment: datetime) -> datetime:
    """The start of the aligned window holding ``moment``."""
    span = WINDOW.total_seconds()
    offset = (moment - EPOCH).total_seconds()
    return EPOCH + timedelta(seconds=offset - offset % span)


async def detect(*, ctx: AppContext, campaign: Campaign, start: datetime, end: datetime) -> int:
    """Judge every window overlapping [start, end); the number of flags created or grown."""
    touched = 0
    moment = window_start(start)
    while moment < end:
        touched += await _judge_window(ctx=ctx, campaign=campaign, start=moment)
        moment += WINDOW
    return touched


async def _judge_window(*, ctx: AppContext, campaign: Campaign, start: datetime) -> int:
    end = start + WINDOW
    rows = await Vote.filter(
        campaign_id=campaign.id, created_at__gte=start, created_at__lt=end
    ).values(
        "id",
        "user_id",
        "pain_point_id",
        "ip_hash",
        "net_hash",
        "device_hash",
        "created_at",
        "user__created_at",
    )
    if not rows:
        return 0
    findings: list[tuple[str, str, int | None, list[dict[str, Any]]]] = []
    by: dict[str, dict[Any, list[dict[str, Any]]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        for column in ("device_hash", "ip_hash", "net_hash"):
            if row[column]:
                by[column][row[column]].append(row)
        by["item"][row["pain_point_id"]].append(row)
        joined = row["user__created_at"]
        if joined is not None and row["created_at"] - joined < NEW_ACCOUNT_AGE:
            by["new"][row["pain_point_id"]].append(row)
    for subject, group in by["device_hash"].items():
        if len({r["user_id"] for r in group}) >= DEVICE_ACCOUNTS:
            findings.append(("device_accounts", subject, None, group))
    for subject, group in by["ip_hash"].items():
        if len(group) >= IP_VOTES:
            findings.append(("ip_burst", subject, None, group))
    for subject, group in by["net_hash"].items():
        if len(group) >= NET_VOTES:
            findings.append(("net_burst", subject, None, group))
    for item, group in by["new"].items():
        if len(group) >= SWARM_VOTES:
            findings.append(("new_account_swarm", "", item, group))
    for item, group in by["item"].items():
        if len(group) < SPIKE_MIN:
            continue
        before = await Vote.filter(
            pain_point_id=item, created_at__gte=start - BASELINE, created_at__lt=start
        ).count()
        baseline = before / (BASELINE / WINDOW)
        if len(group) >= SPIKE_FACTOR * baseline:
            findings.append(("rate_spike", "", item, group))
    if not findings:
        return 0
    names: dict[int, str] = {}
    items = {f[2] for f in findings if f[2] is not None}
    if items:
        pairs = await PainPoint.filter(id__in=items).values_list("id", "public_id")
        names = {int(pk): str(pid) for pk, pid in pairs}  # type: ignore[misc]
    for heuristic, subject, item, group in findings:
        await _flag(
            ctx=ctx,
            campaign=campaign,
            heuristic=heuristic,
            subject=names.get(item, "") if item is not None else subject,
            item=item,
            start=start,
            group=group,
        )
    return len(findings)


async def _flag(
    *,
    ctx: AppContext,
    campaign: Campaign,
    heuristic: str,
    subject: str,
    item: int | None,
    start: datetime,
    group: list[dict[str, Any]],
) -> None:
    flag, created = await VoteFlag.get_or_create(
        campaign_id=campaign.id,
        heuristic=heuristic,
        subject=subject,
        window_start=start,
        defaults={
            "pain_point_id": item,
            "window_end": start + WINDOW,
            "created_at": ctx.clock.now(),
        },
    )
    if flag.status != "open":
        return
    ids = [r["id"] for r in group]
    async with unit_of_work():
        await Vote.filter(id__in=ids, flag_id__isnull=True).update(flag_id=flag.id)
        await VoteFlag.filter(id=flag.id).update(
            votes=len(ids), accounts=len({r["user_id"] for r in group})
        )
    if created:
        log.warning(
            "suspicious voting flagged",
            extra={"campaign": campaign.public_id, "heuristic": heuristic, "votes": len(ids)},
        )


async def scan(*, ctx: AppContext) -> int:
    """The job: judge the recent windows of campaigns that vote, and fold refusal counts."""
    now = ctx.clock.now()
    touched = 0
    campaigns = await Campaign.filter(voting_starts_at__lte=now, voting_ends_at__gt=now - WINDOW)
    for campaign in campaigns:
        touched += await detect(ctx=ctx, campaign=campaign, start=now - WINDOW, end=now)
        try:
            await flush_refusals(ctx=ctx, campaign=campaign)
        except counters.KV_ERRORS:
            log.warning("refusal counters unreachable, folded later")
    return touched


# -- report and review ------------------------------------------------------------------


async def _present(flag: VoteFlag) -> FlagOut:
    accounts = (
        await Vote.filter(flag_id=flag.id)
        .distinct()
        .limit(50)
        .values_list("user__public_id", flat=True)
    )
    return flag_out(
        flag,
        reason=REASONS.get(flag.heuristic, flag.heuristic),
        votes_held=await Vote.filter(flag_id=flag.id).count(),
        account_ids=sorted(str(a) for a in accounts),
    )


async def report(*, ctx: AppContext, campaign: Campaign) -> IntegrityReport:
    """Votes accepted, refused by reason, discarded, and every flag (open ones first)."""
    refused: dict[str, int] = {
        str(code): int(n)
        for code, n in await RefusalTally.filter(campaign_id=campaign.id).values_list(
            "code", "count"
        )
    }
    try:
        for code in (*REFUSAL_CODES, "other"):
            pending = await ctx.kv.get_int(_refusal_key(campaign, code))
            if pending:
                refused[code] = refused.get(code, 0) + pending
    except counters.KV_ERRORS:
        log.warning("refusal counters unreachable, reporting folded counts only")
    flags = await VoteFlag.filter(campaign_id=campaign.id).order_by("-window_start", "id")
    flags.sort(key=lambda f: f.status != "open")
    return IntegrityReport(
        campaign_id=campaign.public_id,
        votes_accepted=await Vote.filter(campaign_id=campaign.id).count(),
        votes_under_review=await Vote.filter(campaign_id=campaign.id, flag__status="open").count(),
        votes_discarded=sum(f.votes_discarded for f in flags),
        refused=dict(sorted(refused.items())),
        refused_total=sum(refused.values()),
        flags=[await _present(f) for f in flags],
    )


async def resolve_flag(
    *, ctx: AppContext, actor: Principal, campaign: Campaign, flag_id: str, data: FlagResolveIn
) -> FlagOut:
    """Accept a flag's votes or discard them (counts and ranking drop), audited."""
    flag = await VoteFlag.get_or_none(public_id=flag_id, campaign_id=campaign.id)
    if flag is None:
        raise NotFound("标记不存在", code="flag_not_found")
    now = ctx.clock.now()
    note = data.note.strip()
    async with unit_of_work() as uow:
        claimed = await VoteFlag.filter(id=flag.id, status="open").update(
            status="resolving", resolved_by=actor.user_id, resolved_at=now, note=note
        )
        if not claimed:
            raise Conflict("该标记已处理", code="flag_resolved")
        removed = 0
        if data.decision == "discard":
            voters = list(await Vote.filter(flag_id=flag.id).values_list("user_id", flat=True))
            removed = await Vote.filter(flag_id=flag.id).delete()
            for user_pk in sorted(voters):  # the order a batch of votes locks tallies in
                await Participant.filter(
                    campaign_id=campaign.id, user_id=user_pk, votes__gt=0
                ).update(votes=F("votes") - 1)
        status = "discarded" if data.decision == "discard" else "accepted"
        await VoteFlag.filter(id=flag.id).update(status=status, votes_discarded=removed)
        await record(
            ctx=ctx,
            actor=actor,
            action="vote_flag.resolve",
            obj=("vote_flag", flag.public_id),
            reason=note,
            detail={"decision": data.decision, "heuristic": flag.heuristic, "removed": removed},
        )
        if removed:
            uow.after_commit(partial(_rebuild_counters, ctx=ctx, campaign=campaign))
    return await _present(await VoteFlag.get(id=flag.id))


async def _rebuild_counters(*, ctx: AppContext, campaign: Campaign) -> None:
    """The counts and the ranking drop at once after discarded votes."""
    try:
        await counters.rebuild(ctx=ctx, campaign=campaign)
    except counters.KV_ERRORS:
        log.warning("vote counters unreachable, reconciliation will catch up")
