"""Merging two records of one person (a worker of the owning street), history kept.

``source`` is merged into ``target``: the target keeps its ID number and name; it takes the
source's phone, notes and household where it has none, and the union of both tag sets; a bound
account moves to the target if the target has none. The source stays, marked ``merged`` with a
pointer to the target, so its history, access log and forms remain; its ID number keeps pointing
at the target in duplicate checks.
"""

from __future__ import annotations

from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict, Unprocessable
from backend.uow import unit_of_work
from residents.models import Household, Resident, ResidentStatus
from residents.presenters import Clear, decrypt_resident, history_value, residents_out, tag_list
from residents.presenters import tag_string as tags_to_string
from residents.registry import _version, sealed
from residents.schemas import ResidentMergeIn, ResidentOut
from residents.scope import resident_in_street, worker_street
from residents.settings import key_ring


async def merge(
    *, ctx: AppContext, actor: Principal, target_id: str, data: ResidentMergeIn
) -> ResidentOut:
    street = worker_street(actor)
    target = await resident_in_street(target_id, street)
    source = await resident_in_street(data.source_id, street)
    if target.id == source.id:
        raise Unprocessable(
            "不能与自身合并", code="merge_self", fields={"source_id": "不能与自身合并"}
        )
    if ResidentStatus.MERGED in (target.status, source.status):
        raise Unprocessable("已合并的记录不能再合并", code="resident_merged")
    ring = key_ring(ctx)
    a, b = decrypt_resident(ring, target), decrypt_resident(ring, source)
    notes = "\n".join(n for n in (a.notes, b.notes) if n) or None
    merged = Clear(name=a.name, id_number=a.id_number, phone=a.phone or b.phone, notes=notes)
    tags = sorted(set(tag_list(target.tags)) | set(tag_list(source.tags)))
    household_id = target.household_id or source.household_id
    relation = target.relation if target.household_id else source.relation
    user_id = target.user_id or source.user_id
    now = ctx.clock.now()
    changes: dict = {"merged_from": source.public_id}
    if merged.phone != a.phone:
        changes["phone"] = {"before": None, "after": history_value("phone", merged.phone)}
    if merged.notes != a.notes:
        changes["notes"] = {"before": history_value("notes", a.notes), "after": "(已合并)"}
    if tags != tag_list(target.tags):
        changes["tags"] = {"before": tag_list(target.tags), "after": tags}
    if household_id != target.household_id:
        household = await Household.get(id=household_id)
        changes["household_id"] = {"before": None, "after": household.public_id}
    async with unit_of_work():
        moved = await Resident.filter(id=source.id, version=source.version).update(
            status=ResidentStatus.MERGED,
            merged_into_id=target.id,
            user_id=None,
            version=source.version + 1,
            updated_at=now,
        )
        count = await Resident.filter(id=target.id, version=target.version).update(
            tags=tags_to_string(tags),
            household_id=household_id,
            relation=relation,
            user_id=user_id,
            version=target.version + 1,
            updated_at=now,
            **sealed(ring, target.public_id, merged),
        )
        if not (moved and count):
            raise Conflict("记录已被他人修改，请刷新后重试", code="version_conflict")
        await _version(target, target.version + 1, "merge", actor, now, changes)
        await _version(
            source,
            source.version + 1,
            "merged_into",
            actor,
            now,
            {"merged_into": target.public_id},
        )
        await record(
            ctx=ctx,
            actor=actor,
            action="residents.merge",
            obj=("resident", target.public_id),
            reason=data.reason,
            detail={"merged_from": source.public_id},
        )
    fresh = await Resident.get(id=target.id)
    return (await residents_out([fresh], ring, ctx.clock.local_now().date()))[0]
