"""Lists built from the base data, their XLSX export, and the bureau's aggregates.

Presets: ``elderly_alone`` (60 or older and either tagged 独居老人 or the only active member of
their household), ``school_age`` (6 to 14 years old on the day, the compulsory-education ages,
grouped by community), ``disabled`` (tagged 残疾). Any tag × community × age band combines with
them. Ages are counted on the Asia/Shanghai date of the request. Lists are of the caller's
street; each person listed gets a ``list`` event in their access log, each person exported an
``export`` event.
"""

from __future__ import annotations

import asyncio
from datetime import date
from typing import Any

from tortoise.functions import Count
from tortoise.queryset import QuerySet

from backend import paging
from backend.access import Principal
from backend.context import AppContext
from residents.access_log import record_access
from residents.identity import age_on, mask_id, mask_phone
from residents.models import (
    GENDER_LABELS,
    RELATION_LABELS,
    Community,
    Household,
    Resident,
    ResidentStatus,
)
from residents.presenters import Lookups, decrypt_resident, residents_out, tag_list
from residents.schemas import ListOut, ListQuery
from residents.scope import community_in_street, worker_street
from residents.settings import key_ring
from residents.sheets import write_xlsx
from residents.tags import resolve_tags, vocabulary

EXPORT_LIMIT = 50_000
AGE_BANDS = ((0, 5), (6, 14), (15, 17), (18, 59), (60, 79), (80, 150))


def _birth_range(today: date, age_min: int | None, age_max: int | None) -> dict[str, date]:
    """Birth dates of people aged [age_min, age_max] on ``today``."""
    bounds: dict[str, date] = {}
    if age_min is not None:
        bounds["birth_date__lte"] = _years_before(today, age_min)
    if age_max is not None:
        bounds["birth_date__gt"] = _years_before(today, age_max + 1)
    return bounds


def _years_before(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


async def _filtered(street: str, query: ListQuery, today: date) -> tuple[QuerySet[Resident], bool]:
    """The list's query and whether it still needs the living-alone check."""
    qs = Resident.filter(street_code=street, status=ResidentStatus.ACTIVE)
    age_min, age_max = query.age_min, query.age_max
    tags = resolve_tags(query.tag or [], await vocabulary(), "tag")
    alone = False
    if query.preset == "elderly_alone":
        age_min = max(age_min or 0, 60)
        alone = True
    elif query.preset == "school_age":
        age_min, age_max = max(age_min or 0, 6), min(14 if age_max is None else age_max, 14)
    elif query.preset == "disabled":
        tags.append("disabled")
    for tag in dict.fromkeys(tags):
        qs = qs.filter(tags__contains=f",{tag},")
    if query.community_id:
        qs = qs.filter(community_id=(await community_in_street(query.community_id, street)).id)
    qs = qs.filter(**_birth_range(today, age_min, age_max))
    return qs, alone


async def _living_alone(residents: list[Resident]) -> list[Resident]:
    household_ids = {r.household_id for r in residents if r.household_id}
    sizes: dict[int, int] = {}
    if household_ids:
        rows = (
            await Resident.filter(household_id__in=household_ids, status=ResidentStatus.ACTIVE)
            .group_by("household_id")
            .annotate(n=Count("id"))
            .values_list("household_id", "n")
        )
        sizes = {int(h): int(n) for h, n in rows}
    return [
        r
        for r in residents
        if "elderly_alone" in tag_list(r.tags)
        or (r.household_id is not None and sizes.get(r.household_id, 0) == 1)
    ]


async def _all_matching(street: str, query: ListQuery, today: date) -> list[Resident]:
    qs, alone = await _filtered(street, query, today)
    rows = await qs.order_by("id").limit(EXPORT_LIMIT)
    return await _living_alone(rows) if alone else rows


async def build_list(*, ctx: AppContext, actor: Principal, query: ListQuery) -> ListOut:
    street = worker_street(actor)
    today = ctx.clock.local_now().date()
    matching = await _all_matching(street, query, today)
    by_community: dict[int, int] = {}
    for r in matching:
        by_community[r.community_id] = by_community.get(r.community_id, 0) + 1
    names = dict(await Community.filter(street_code=street).values_list("id", "name"))
    scope = paging.scope_of("residents-list", street, query.model_dump(exclude={"cursor", "limit"}))
    secret = ctx.settings.cursor_key
    page = matching
    if query.cursor:
        (after,) = paging.decode_cursor(query.cursor, scope=scope, secret=secret, shape=(int,))
        page = [r for r in matching if r.id > after]
    next_cursor = None
    if len(page) > query.limit:
        page = page[: query.limit]
        next_cursor = paging.encode_cursor([page[-1].id], scope=scope, secret=secret)
    await record_access(
        ctx=ctx, actor=actor, resident_ids=[r.id for r in page], kind="list", reason=_why(query)
    )
    return ListOut(
        items=await residents_out(page, key_ring(ctx), today),
        next_cursor=next_cursor,
        total=len(matching),
        by_community={str(names.get(cid, cid)): n for cid, n in sorted(by_community.items())},
    )


def _why(query: ListQuery) -> str:
    parts = [query.preset or "", ",".join(query.tag or [])]
    if query.age_min is not None or query.age_max is not None:
        parts.append(
            f"age {query.age_min or 0}-{query.age_max if query.age_max is not None else ''}"
        )
    return "list " + " ".join(p for p in parts if p)


EXPORT_HEADER = (
    "社区",
    "地址",
    "与户主关系",
    "姓名",
    "性别",
    "出生日期",
    "年龄",
    "身份证号",
    "电话",
    "标签",
)


async def export_list(*, ctx: AppContext, actor: Principal, query: ListQuery) -> tuple[bytes, str]:
    """The whole list as XLSX (identifiers masked), logged for every person in it."""
    street = worker_street(actor)
    today = ctx.clock.local_now().date()
    matching = await _all_matching(street, query, today)
    ring = key_ring(ctx)
    lookups = await Lookups.for_residents(matching)
    vocab = await vocabulary()
    rows: list[list[Any]] = []
    for r in matching:
        clear = decrypt_resident(ring, r)
        household = lookups.households.get(r.household_id) if r.household_id else None
        community = lookups.communities.get(r.community_id)
        rows.append(
            [
                community.name if community else "",
                household.address if household else "",
                RELATION_LABELS[r.relation],
                clear.name,
                GENDER_LABELS[r.gender],
                r.birth_date.isoformat(),
                age_on(r.birth_date, today),
                mask_id(clear.id_number),
                mask_phone(clear.phone) if clear.phone else "",
                "、".join(vocab.get(t, t) for t in tag_list(r.tags)),
            ]
        )
    await record_access(
        ctx=ctx,
        actor=actor,
        resident_ids=[r.id for r in matching],
        kind="export",
        reason=_why(query),
    )
    body = await asyncio.to_thread(write_xlsx, "名单", EXPORT_HEADER, rows)
    return body, f"residents-{query.preset or 'list'}-{today:%Y%m%d}.xlsx"


def age_band(age: int) -> str:
    for low, high in AGE_BANDS:
        if low <= age <= high:
            return f"{low}-{high}" if high < 150 else f"{low}+"
    return "unknown"


async def street_aggregates(street: str | None, today: date) -> dict[str, dict[str, Any]]:
    """Counts per street: residents, households, per tag, per age band (no person at all)."""
    qs = Resident.filter(status=ResidentStatus.ACTIVE)
    hqs = Household.all()
    if street is not None:
        qs, hqs = qs.filter(street_code=street), hqs.filter(street_code=street)
    stats: dict[str, dict[str, Any]] = {}

    def bucket(code: str) -> dict[str, Any]:
        return stats.setdefault(
            code, {"residents": 0, "households": 0, "by_tag": {}, "by_age_band": {}}
        )

    # Grouped in the database: (street, tags, birth year) rows, far fewer than residents.
    rows = (
        await qs.group_by("street_code", "tags", "birth_date")
        .annotate(n=Count("id"))
        .values_list("street_code", "tags", "birth_date", "n")
    )
    for code, tags, birth, n in rows:
        entry = bucket(str(code))
        entry["residents"] += int(n)
        for tag in tag_list(str(tags)):
            entry["by_tag"][tag] = entry["by_tag"].get(tag, 0) + int(n)
        band = age_band(
            age_on(birth if isinstance(birth, date) else date.fromisoformat(birth), today)
        )
        entry["by_age_band"][band] = entry["by_age_band"].get(band, 0) + int(n)
    for code, n in (
        await hqs.group_by("street_code").annotate(n=Count("id")).values_list("street_code", "n")
    ):
        bucket(str(code))["households"] = int(n)
    return stats
