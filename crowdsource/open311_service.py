"""Open311 GeoReport v2 intake: clients and their keys, services, requests and their status.

* **Clients.** Each Open311 client (a civic-reporting app) gets a dedicated key from the bureau
  (``POST /api/v1/open311/clients``), not an operator ``ApiKey``: the spec sends the key in the
  form (``api_key``), and an Open311 key must open nothing but ``POST requests``. Only the key's
  SHA-256 digest is stored (the key is 32 random bytes, shown once); revoking sets ``revoked_at``.
* **Author.** Each client has its own service account (a ``User`` with no openid, username or
  password, so nobody can sign in as it), which authors every request the client submits. The
  client's ``audience`` (resident by default; department or enterprise with an organisation
  name) is the audience of those pain points. The per-person submission cap does not apply to a
  service account (it speaks for many people); a per-client rate limit does instead.
* **Personal data.** The spec's personal fields (email, first/last name, phone, device and
  account ids) are never declared in the form schema, so they are dropped at parsing: not stored,
  not logged, not echoed. ``account_id`` is answered as null.
* **Campaign.** Requests go into the campaign that is collecting now (the most recently started
  one if several are); services are that campaign's categories.
* **Status.** submitted / valid → ``open``; invalid, duplicate and merged → ``closed`` with
  ``status_notes`` saying why.
* **Who sees what** follows the campaign's moderation policy (:mod:`crowdsource.visibility`),
  as the API does. The lists show the public items, and the closure of those judged invalid
  (status and reason, never their content). An item the public may not see yet (awaiting review
  under pre-moderation, hidden by reports) is left out of the lists; asked for by its id
  (``requests/{id}`` or ``service_request_id``) it answers its status and notes without its
  content, so the client that submitted it can follow it. The reply to a submission
  (``service_notice``) says when the request becomes public, by the same policy.
* **Enterprise clients** speak for one verified vendor (:mod:`crowdsource.voices`): the bureau
  names the vendor when it registers the client, requests carry the vendor's registered name, and
  the key stops submitting (403) while the vendor is not verified.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any

from tortoise.expressions import F, Q

from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import (
    Conflict,
    Forbidden,
    NotFound,
    RateLimited,
    Unprocessable,
    ValidationFailed,
)
from backend.models import Role, User
from backend.security import digest, new_secret
from backend.uow import unit_of_work
from crowdsource.challenges.models import Vendor, VendorStatus
from crowdsource.models import (
    Audience,
    Campaign,
    Merge,
    Open311Client,
    PainPoint,
    Participant,
    Status,
)
from crowdsource.pain_points import check_category
from crowdsource.presenters import CLOSED, OPEN, RequestLinks, client_out, request_out
from crowdsource.schemas import (
    Open311ClientCreate,
    Open311ClientList,
    Open311ClientOut,
    Open311RequestIn,
    Open311RequestsQuery,
)
from crowdsource.visibility import public_q, submission_notice
from crowdsource.voices import require_invited, verified_vendor_name

log = logging.getLogger("smartcircle.open311")

DEFAULT_WINDOW = timedelta(days=90)
MAX_WINDOW = timedelta(days=90)
MAX_RESULTS = 1000
MAX_IDS = 200
_SENTENCE_END = re.compile(r"[。！？!?；;\n]")
OPEN_STATUSES = (Status.SUBMITTED, Status.VALID)
CLOSED_STATUSES = (Status.INVALID, Status.DUPLICATE)  # merged items are duplicates too


# -- clients ----------------------------------------------------------------------------


async def create_client(
    *, ctx: AppContext, actor: Principal, data: Open311ClientCreate
) -> Open311ClientOut:
    """Register an Open311 client with its service account; the clear key is shown once."""
    organisation = data.organisation if data.audience is Audience.DEPARTMENT else None
    vendor: Vendor | None = None
    if data.audience is Audience.DEPARTMENT and not organisation:
        raise ValidationFailed(fields={"organisation": "部门客户端须填写部门名称"})
    if data.audience is Audience.ENTERPRISE:
        if not data.vendor_id:
            raise ValidationFailed(fields={"vendor_id": "企业客户端须指明所代表的认证企业"})
        vendor = await Vendor.get_or_none(public_id=data.vendor_id)
        if vendor is None:
            raise ValidationFailed(fields={"vendor_id": "企业不存在"})
        if vendor.status != VendorStatus.VERIFIED:
            raise Unprocessable(
                "只能为认证企业登记企业客户端",
                code="vendor_not_verified",
                fields={"vendor_id": f"企业状态：{VendorStatus(vendor.status).value}"},
            )
        organisation = vendor.name
    elif data.vendor_id:
        raise ValidationFailed(fields={"vendor_id": "只有企业客户端才能指明企业"})
    prefix = new_secret(6)[:8]
    clear = f"o311_{prefix}_{new_secret(32)}"
    now = ctx.clock.now()
    async with unit_of_work():
        account = await User.create(role=Role.RESIDENT, display_name=f"Open311:{data.name}"[:64])
        client = await Open311Client.create(
            name=data.name,
            key_prefix=prefix,
            key_hash=digest(clear),
            account_id=account.id,
            audience=data.audience,
            organisation=organisation,
            vendor_id=vendor.id if vendor else None,
            requests_per_minute=data.requests_per_minute,
            created_by=actor.user_id,
            created_at=now,
        )
        await record(
            ctx=ctx,
            actor=actor,
            action="open311_client.create",
            obj=("open311_client", client.public_id),
            detail={
                "audience": data.audience.value,
                "account": account.public_id,
                **({"vendor": vendor.public_id} if vendor else {}),
            },
        )
    return client_out(client, key=clear, vendor_id=vendor.public_id if vendor else None)


async def list_clients() -> Open311ClientList:
    """Every Open311 client, oldest first (keys are never shown again)."""
    clients = await Open311Client.all().order_by("id")
    vendor_ids = {c.vendor_id for c in clients if c.vendor_id is not None}
    vendors = dict(
        await Vendor.filter(id__in=vendor_ids).values_list("id", "public_id") if vendor_ids else []
    )
    return Open311ClientList(
        items=[
            client_out(c, vendor_id=vendors.get(c.vendor_id) if c.vendor_id else None)
            for c in clients
        ]
    )


async def revoke_client(*, ctx: AppContext, actor: Principal, public_id: str) -> None:
    """Revoke a client's key, audited."""
    now = ctx.clock.now()
    async with unit_of_work():
        updated = await Open311Client.filter(public_id=public_id, revoked_at__isnull=True).update(
            revoked_at=now
        )
        if not updated:
            raise NotFound("Open311 客户端不存在或已吊销", code="open311_client_not_found")
        await record(
            ctx=ctx, actor=actor, action="open311_client.revoke", obj=("open311_client", public_id)
        )


async def _client_for_key(*, ctx: AppContext, key: str) -> Open311Client:
    client = await Open311Client.get_or_none(key_hash=digest(key), revoked_at__isnull=True)
    if client is None:
        raise Forbidden("api_key: API 密钥无效或已吊销 (invalid api_key)", code="invalid_api_key")
    if not await User.filter(id=client.account_id, is_active=True).exists():
        raise Forbidden("api_key: 该客户端已停用 (client disabled)", code="invalid_api_key")
    now = ctx.clock.now()
    if client.last_used_at is None or (now - client.last_used_at).total_seconds() > 60:
        await Open311Client.filter(id=client.id).update(last_used_at=now)
    return client


# -- services ---------------------------------------------------------------------------


async def collecting_campaign(*, ctx: AppContext) -> Campaign | None:
    """The campaign collecting now (the most recently started one if several are)."""
    now = ctx.clock.now()
    return (
        await Campaign.filter(
            collecting_starts_at__lte=now, collecting_ends_at__gt=now, closes_at__gt=now
        )
        .order_by("-collecting_starts_at", "public_id")
        .first()
    )


async def list_services(*, ctx: AppContext) -> list[dict[str, Any]]:
    """One service per category of the collecting campaign (none when no campaign collects)."""
    campaign = await collecting_campaign(ctx=ctx)
    if campaign is None:
        return []
    return [
        {
            "service_code": c["code"],
            "service_name": c["label"],
            "description": f"{campaign.title}：{c['label']}",
            "metadata": False,
            "type": "realtime",
            "keywords": ",".join(dict.fromkeys(["痛难点", c["label"], c["code"]])),
            "group": campaign.title,
        }
        for c in campaign.categories
    ]


# -- requests ---------------------------------------------------------------------------


def _title_from(description: str) -> str:
    """A title for the pain point: the first sentence, at most 30 characters."""
    first = _SENTENCE_END.split(description.strip(), maxsplit=1)[0].strip()
    if len(first) < 4:
        first = description.strip()
    return first[:30]


async def submit_request(*, ctx: AppContext, data: Open311RequestIn) -> dict[str, Any]:
    """Create a pain point in the collecting campaign for the client holding the key."""
    client = await _client_for_key(ctx=ctx, key=data.api_key)
    limit = await ctx.kv.hit(
        f"o311:rate:{client.public_id}", limit=client.requests_per_minute, window=60
    )
    if not limit.allowed:
        raise RateLimited(limit.retry_after, "提交过于频繁，请稍后再试 (rate limited)")
    if data.lat is None and data.long is None and not data.address_string:
        raise ValidationFailed(
            fields={"lat": "须给出 lat/long 或 address_string (location required)"}
        )
    if (data.lat is None) != (data.long is None):
        raise ValidationFailed(
            fields={"long" if data.long is None else "lat": "lat 与 long 须同时给出"}
        )
    campaign = await collecting_campaign(ctx=ctx)
    if campaign is None:
        raise Conflict("当前没有正在征集的活动 (no campaign is collecting)", code="phase_closed")
    try:
        check_category(campaign, data.service_code)
    except ValidationFailed:
        raise ValidationFailed(
            fields={"service_code": "不是当前征集活动的服务代码 (unknown service_code)"}
        ) from None
    require_invited(campaign, client.audience)
    organisation = client.organisation
    if client.audience is Audience.ENTERPRISE:
        organisation = await _vendor_name(client)
    now = ctx.clock.now()
    async with unit_of_work():
        await Participant.bulk_create(
            [Participant(campaign_id=campaign.id, user_id=client.account_id)],
            ignore_conflicts=True,
        )
        await Participant.filter(campaign_id=campaign.id, user_id=client.account_id).update(
            submissions=F("submissions") + 1
        )
        item = await PainPoint.create(
            campaign_id=campaign.id,
            author_id=client.account_id,
            audience=client.audience,
            company_name=organisation if client.audience is Audience.ENTERPRISE else None,
            department_name=organisation if client.audience is Audience.DEPARTMENT else None,
            title=_title_from(data.description),
            description=data.description,
            category=data.service_code,
            lat=data.lat,
            lng=data.long,
            address=data.address_string,
            photo_urls=[str(data.media_url)] if data.media_url else [],
            created_at=now,
            updated_at=now,
        )
    log.info("open311 request", extra={"client": client.public_id, "pain_point": item.public_id})
    return {
        "service_request_id": item.public_id,
        "service_notice": submission_notice(campaign),
        "account_id": None,
    }


async def _vendor_name(client: Open311Client) -> str:
    """The registered name of the verified vendor an enterprise client speaks for (else 403)."""
    vendor = await Vendor.get_or_none(id=client.vendor_id) if client.vendor_id else None
    try:
        return verified_vendor_name(vendor)
    except Forbidden:
        raise Forbidden(
            "api_key: 该企业客户端未关联认证企业，或企业已暂停 (vendor not verified)",
            code="vendor_not_verified",
        ) from None


async def _links(items: list[PainPoint]) -> RequestLinks:
    ids = [i.id for i in items]
    merged = await Merge.filter(source_id__in=ids).values_list("source_id", "target_id")
    wanted = {i.duplicate_of_id for i in items if i.duplicate_of_id}
    wanted |= {int(t) for _, t in merged}  # type: ignore[misc]
    names: dict[int, str] = {}
    if wanted:
        rows = await PainPoint.filter(id__in=wanted).values_list("id", "public_id")
        names = {int(pk): str(pid) for pk, pid in rows}  # type: ignore[misc]
    return RequestLinks(
        duplicate_of={i.id: names.get(i.duplicate_of_id, "") for i in items if i.duplicate_of_id},
        merged_into={int(s): names.get(int(t), "") for s, t in merged},  # type: ignore[misc]
    )


def _started(now: datetime) -> Q:
    """In a campaign that has started collecting (drafts are nobody's business)."""
    return Q(campaign__collecting_starts_at__lte=now)


def _listed() -> Q:
    """In the lists: public items, and the closure (not the content) of invalid ones."""
    return public_q() | Q(status=Status.INVALID, hidden=False)


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


async def list_requests(*, ctx: AppContext, query: Open311RequestsQuery) -> list[dict[str, Any]]:
    """Requests by the spec's filters, newest first, at most 1000."""
    qs = PainPoint.filter(_started(ctx.clock.now())).select_related("campaign")
    ids = _split(query.service_request_id)
    if ids:
        if len(ids) > MAX_IDS:
            raise ValidationFailed(fields={"service_request_id": f"最多 {MAX_IDS} 个"})
        qs = qs.filter(public_id__in=ids)
    else:
        qs = qs.filter(_listed())
        start, end = query.start_date, query.end_date
        if start is None:
            end = end or ctx.clock.now()
            start = end - DEFAULT_WINDOW
        elif end is None:
            end = start + DEFAULT_WINDOW
        if start > end:
            raise ValidationFailed(fields={"start_date": "不能晚于 end_date"})
        if end - start > MAX_WINDOW:
            raise ValidationFailed(fields={"end_date": "时间范围不能超过 90 天"})
        qs = qs.filter(created_at__gte=start, created_at__lte=end)
        codes = _split(query.service_code)
        if codes:
            qs = qs.filter(category__in=codes)
        statuses = set(_split(query.status))
        if statuses - {OPEN, CLOSED}:
            raise ValidationFailed(fields={"status": "只能是 open、closed"})
        if statuses == {OPEN}:
            qs = qs.filter(status__in=OPEN_STATUSES)
        elif statuses == {CLOSED}:
            qs = qs.filter(status__in=CLOSED_STATUSES)
    items = await qs.order_by("-created_at", "-id").limit(MAX_RESULTS)
    links = await _links(items)
    return [request_out(i, i.campaign, links) for i in items]


async def get_request(*, ctx: AppContext, public_id: str) -> list[dict[str, Any]]:
    """One request (as the spec's one-element list), or 404; content only if it is public."""
    item = (
        await PainPoint.filter(_started(ctx.clock.now()), public_id=public_id)
        .select_related("campaign")
        .first()
    )
    if item is None:
        raise NotFound("service_request_id: 没有这条请求 (not found)", code="request_not_found")
    return [request_out(item, item.campaign, await _links([item]))]
