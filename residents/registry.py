"""Residents of a street: create, read, update, list, search, history, clear-value views.

Every write runs in one unit of work with its history row; a concurrent write to the same
resident is refused (409) by a conditional update on ``version``. A duplicate ID number is a 409
pointing at the existing record when the caller may see it (same street), else just the conflict.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from tortoise.exceptions import IntegrityError

from backend import paging
from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict, Unprocessable, ValidationFailed
from backend.models import new_public_id
from backend.uow import unit_of_work
from residents.access_log import record_access
from residents.crypto import KeyRing
from residents.households import community_named, household_at
from residents.identity import IdNumber, InvalidIdentifier, parse_id_number, phone_index_value
from residents.models import Community, Household, Resident, ResidentStatus, ResidentVersion
from residents.presenters import (
    Clear,
    aad,
    decrypt_resident,
    history_value,
    residents_out,
    tag_list,
    tag_string,
    version_out,
)
from residents.schemas import (
    HistoryOut,
    ResidentIn,
    ResidentList,
    ResidentOut,
    ResidentPatch,
    ResidentQuery,
    RevealIn,
    RevealOut,
    SearchIn,
)
from residents.scope import (
    community_in_street,
    household_in_street,
    resident_in_street,
    worker_street,
)
from residents.settings import key_ring
from residents.tags import resolve_tags, vocabulary


def sealed(ring: KeyRing, public_id: str, clear: Clear) -> dict[str, Any]:
    """The stored columns of a resident's confidential values, under the current key."""
    return {
        "key_id": ring.current,
        "name_cipher": ring.encrypt(clear.name, aad("name", public_id)),
        "name_index": ring.index("name", clear.name),
        "id_cipher": ring.encrypt(clear.id_number, aad("id_number", public_id)),
        "id_index": ring.index("id", clear.id_number),
        "phone_cipher": ring.encrypt_opt(clear.phone, aad("phone", public_id)),
        "phone_index": ring.index("phone", phone_index_value(clear.phone)) if clear.phone else None,
        "notes_cipher": ring.encrypt_opt(clear.notes, aad("notes", public_id)),
    }


def checked_id(value: str, today: date) -> IdNumber:
    try:
        return parse_id_number(value, today=today)
    except InvalidIdentifier as exc:
        raise ValidationFailed(fields={"id_number": str(exc)}) from None


async def duplicate_conflict(id_index: str, street: str) -> Conflict:
    """The 409 for an ID number already registered: a pointer only within the caller's street."""
    existing = await Resident.filter(id_index=id_index).first()
    for _ in range(10):  # a merged record points at the one it was merged into
        if existing is None or existing.merged_into_id is None:
            break
        existing = await Resident.filter(id=existing.merged_into_id).first()
    if existing is not None and existing.street_code == street:
        pid = existing.public_id
        return Conflict(
            "该身份证号已登记，请编辑已有记录",
            code="duplicate_id_number",
            fields={"id_number": "已登记", "existing_id": pid},
            headers={"Link": f'</api/v1/residents/{pid}>; rel="duplicate"'},
        )
    return Conflict(
        "该身份证号已在其他街道登记", code="duplicate_id_number", fields={"id_number": "已登记"}
    )


async def _household_for(
    street: str, community: Community, household_id: str | None, address: str | None
) -> Household | None:
    if household_id:
        household = await household_in_street(household_id, street)
        if household.community_id != community.id:
            raise Unprocessable(
                "该户不属于所填社区",
                code="household_in_other_community",
                fields={"household_id": "该户不属于所填社区"},
            )
        return household
    if address and address.strip():
        return await household_at(community, address)
    return None


async def create_resident(*, ctx: AppContext, actor: Principal, data: ResidentIn) -> ResidentOut:
    street = worker_street(actor)
    today = ctx.clock.local_now().date()
    idn = checked_id(data.id_number, today)
    tags = resolve_tags(data.tags, await vocabulary())
    ring = key_ring(ctx)
    id_index = ring.index("id", idn.value)
    if await Resident.filter(id_index=id_index).exists():
        raise await duplicate_conflict(id_index, street)
    clear = Clear(name=data.name, id_number=idn.value, phone=data.phone, notes=data.notes or None)
    now = ctx.clock.now()
    try:
        async with unit_of_work():
            community = await community_named(street, data.community)
            household = await _household_for(street, community, data.household_id, data.address)
            pid = new_public_id()
            resident = await Resident.create(
                public_id=pid,
                street_code=street,
                community_id=community.id,
                household_id=household.id if household else None,
                relation=data.relation,
                gender=idn.gender,
                birth_date=idn.birth_date,
                tags=tag_string(tags),
                created_at=now,
                updated_at=now,
                **sealed(ring, pid, clear),
            )
            changes = {
                "name": {"before": None, "after": history_value("name", clear.name)},
                "id_number": {"before": None, "after": history_value("id_number", idn.value)},
                "phone": {"before": None, "after": history_value("phone", clear.phone)},
                "community": {"before": None, "after": community.name},
                "household_id": {
                    "before": None,
                    "after": household.public_id if household else None,
                },
                "tags": {"before": None, "after": tags},
            }
            await _version(resident, 1, "create", actor, now, changes)
    except IntegrityError:
        raise await duplicate_conflict(id_index, street) from None
    return (await residents_out([resident], ring, today))[0]


async def _version(
    resident: Resident, version: int, action: str, actor: Principal, at: Any, changes: dict
) -> None:
    await ResidentVersion.create(
        resident_id=resident.id,
        version=version,
        action=action,
        actor=actor.user_id,
        actor_role=actor.role.value,
        at=at,
        changes=changes,
    )


def _diff(changes: dict, field: str, before: Any, after: Any) -> None:
    if before != after:
        changes[field] = {
            "before": history_value(field, before),
            "after": history_value(field, after),
        }


async def update_resident(
    *, ctx: AppContext, actor: Principal, public_id: str, data: ResidentPatch
) -> ResidentOut:
    street = worker_street(actor)
    resident = await resident_in_street(public_id, street)
    if resident.status != ResidentStatus.ACTIVE:
        raise Unprocessable("该记录已合并，请编辑合并后的记录", code="resident_merged")
    if data.expected_version is not None and data.expected_version != resident.version:
        raise Conflict("记录已被他人修改，请刷新后重试", code="version_conflict")
    ring = key_ring(ctx)
    today = ctx.clock.local_now().date()
    given = data.model_fields_set
    old = decrypt_resident(ring, resident)
    new = Clear(
        name=data.name if data.name is not None else old.name,
        id_number=old.id_number,
        phone=old.phone if "phone" not in given else (data.phone or None),
        notes=old.notes if "notes" not in given else (data.notes or None),
    )
    updates: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    if data.id_number is not None and data.id_number != old.id_number:
        idn = checked_id(data.id_number, today)
        new = Clear(name=new.name, id_number=idn.value, phone=new.phone, notes=new.notes)
        if await Resident.filter(id_index=ring.index("id", idn.value)).exists():
            raise await duplicate_conflict(ring.index("id", idn.value), street)
        updates.update(gender=idn.gender, birth_date=idn.birth_date)
    for name in ("name", "id_number", "phone", "notes"):
        _diff(changes, name, getattr(old, name), getattr(new, name))
    if data.tags is not None:
        tags = resolve_tags(data.tags, await vocabulary())
        _diff(changes, "tags", tag_list(resident.tags), sorted(tags))
        updates["tags"] = tag_string(tags)
    if data.relation is not None:
        _diff(changes, "relation", resident.relation.value, data.relation.value)
        updates["relation"] = data.relation
    community_id = resident.community_id
    if data.community is not None:
        community = await community_named(street, data.community)
        if community.id != resident.community_id:
            old_name = (await Community.get(id=resident.community_id)).name
            _diff(changes, "community", old_name, community.name)
            updates["community_id"] = community_id = community.id
            if "household_id" not in given and "address" not in given:
                updates["household_id"] = None
    if data.household_id is not None or data.address:
        community = await Community.get(id=community_id)
        household = await _household_for(street, community, data.household_id, data.address)
        if household is not None and household.id != resident.household_id:
            updates["household_id"] = household.id
    if "household_id" in updates and updates["household_id"] != resident.household_id:
        before = await Household.filter(id=resident.household_id or 0).first()
        after = await Household.filter(id=updates["household_id"] or 0).first()
        _diff(
            changes,
            "household_id",
            before.public_id if before else None,
            after.public_id if after else None,
        )
    now = ctx.clock.now()
    updates.update(sealed(ring, resident.public_id, new))
    updates.update(version=resident.version + 1, updated_at=now)
    try:
        async with unit_of_work():
            count = await Resident.filter(id=resident.id, version=resident.version).update(
                **updates
            )
            if count == 0:
                raise Conflict("记录已被他人修改，请刷新后重试", code="version_conflict")
            await _version(resident, resident.version + 1, "update", actor, now, changes)
    except IntegrityError:
        raise await duplicate_conflict(updates["id_index"], street) from None
    fresh = await Resident.get(id=resident.id)
    return (await residents_out([fresh], ring, today))[0]


async def get_resident(*, ctx: AppContext, actor: Principal, public_id: str) -> ResidentOut:
    resident = await resident_in_street(public_id, worker_street(actor))
    await record_access(ctx=ctx, actor=actor, resident_ids=[resident.id], kind="read")
    today = ctx.clock.local_now().date()
    return (await residents_out([resident], key_ring(ctx), today))[0]


async def list_residents(
    *, ctx: AppContext, actor: Principal, query: ResidentQuery
) -> ResidentList:
    street = worker_street(actor)
    qs = Resident.filter(street_code=street, status=ResidentStatus.ACTIVE)
    if query.community_id:
        qs = qs.filter(community_id=(await community_in_street(query.community_id, street)).id)
    if query.tag:
        qs = qs.filter(
            tags__contains=f",{resolve_tags([query.tag], await vocabulary(), 'tag')[0]},"
        )
    scope = paging.scope_of("residents", street, query.community_id, query.tag)
    secret = ctx.settings.jwt_secret
    if query.cursor:
        (after,) = paging.decode_cursor(query.cursor, scope=scope, secret=secret, shape=(int,))
        qs = qs.filter(id__gt=after)
    rows = await qs.order_by("id").limit(query.limit + 1)
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        next_cursor = paging.encode_cursor([rows[-1].id], scope=scope, secret=secret)
    await record_access(ctx=ctx, actor=actor, resident_ids=[r.id for r in rows], kind="list")
    today = ctx.clock.local_now().date()
    return ResidentList(
        items=await residents_out(rows, key_ring(ctx), today), next_cursor=next_cursor
    )


async def search_residents(*, ctx: AppContext, actor: Principal, data: SearchIn) -> ResidentList:
    """Exact matches by ID number, phone or name (blind indexes), within the caller's street."""
    street = worker_street(actor)
    if not (data.id_number or data.phone or data.name):
        raise ValidationFailed(fields={"id_number": "至少填写身份证号、电话或姓名之一"})
    ring = key_ring(ctx)
    qs = Resident.filter(street_code=street)
    if data.id_number:
        qs = qs.filter(id_index=ring.index("id", data.id_number))
    if data.phone:
        qs = qs.filter(phone_index=ring.index("phone", phone_index_value(data.phone)))
    if data.name:
        qs = qs.filter(name_index=ring.index("name", data.name))
    rows = await qs.order_by("id").limit(100)
    await record_access(ctx=ctx, actor=actor, resident_ids=[r.id for r in rows], kind="search")
    today = ctx.clock.local_now().date()
    return ResidentList(items=await residents_out(rows, ring, today), total=len(rows))


async def history(*, ctx: AppContext, actor: Principal, public_id: str) -> HistoryOut:
    resident = await resident_in_street(public_id, worker_street(actor))
    versions = await ResidentVersion.filter(resident_id=resident.id).order_by("version")
    await record_access(
        ctx=ctx, actor=actor, resident_ids=[resident.id], kind="read", reason="history"
    )
    return HistoryOut(items=[version_out(v) for v in versions])


async def reveal(*, ctx: AppContext, actor: Principal, public_id: str, data: RevealIn) -> RevealOut:
    """A clear value for a stated reason; recorded in the resident's access log and the audit."""
    resident = await resident_in_street(public_id, worker_street(actor))
    clear = decrypt_resident(key_ring(ctx), resident)
    value = clear.id_number if data.field == "id_number" else clear.phone
    async with unit_of_work():
        await record_access(
            ctx=ctx,
            actor=actor,
            resident_ids=[resident.id],
            kind="reveal",
            field=data.field,
            reason=data.reason,
        )
        await record(
            ctx=ctx,
            actor=actor,
            action="residents.reveal",
            obj=("resident", resident.public_id),
            reason=data.reason,
            detail={"field": data.field},
        )
    return RevealOut(field=data.field, value=value)
