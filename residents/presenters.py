"""What leaves the service: residents with their identifiers masked, history, access events."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from residents.crypto import KeyRing
from residents.identity import age_on, mask_id, mask_phone
from residents.models import AccessEvent, Community, Household, Resident, ResidentVersion
from residents.schemas import AccessEventOut, ResidentOut, VersionOut

CONFIDENTIAL = ("name", "id_number", "phone", "notes")
CIPHER_FIELDS = {
    "name": "name_cipher",
    "id_number": "id_cipher",
    "phone": "phone_cipher",
    "notes": "notes_cipher",
}


def aad(field: str, public_id: str) -> str:
    return f"{field}:{public_id}"


@dataclass(frozen=True)
class Clear:
    """A resident's confidential values in clear (only ever in memory)."""

    name: str
    id_number: str
    phone: str | None
    notes: str | None


def decrypt_resident(ring: KeyRing, r: Resident) -> Clear:
    return Clear(
        name=ring.decrypt(r.name_cipher, aad("name", r.public_id)),
        id_number=ring.decrypt(r.id_cipher, aad("id_number", r.public_id)),
        phone=ring.decrypt_opt(r.phone_cipher, aad("phone", r.public_id)),
        notes=ring.decrypt_opt(r.notes_cipher, aad("notes", r.public_id)),
    )


def tag_list(stored: str) -> list[str]:
    return [t for t in stored.split(",") if t]


def tag_string(tags: list[str]) -> str:
    return "," + "".join(f"{t}," for t in sorted(set(tags)))


@dataclass
class Lookups:
    """Names of communities and households (and merged-into ids) for a batch of residents."""

    communities: dict[int, Community]
    households: dict[int, Household]
    public_ids: dict[int, str]

    @classmethod
    async def for_residents(cls, residents: list[Resident]) -> Lookups:
        cids = {r.community_id for r in residents}
        hids = {r.household_id for r in residents if r.household_id}
        mids = {r.merged_into_id for r in residents if r.merged_into_id}
        communities = {c.id: c for c in await Community.filter(id__in=cids)} if cids else {}
        households = {h.id: h for h in await Household.filter(id__in=hids)} if hids else {}
        public_ids: dict[int, str] = {}
        if mids:
            rows = await Resident.filter(id__in=mids).values_list("id", "public_id")
            public_ids = {int(i): str(p) for i, p in rows}
        return cls(communities, households, public_ids)


def resident_out(r: Resident, ring: KeyRing, lookups: Lookups, today: date) -> ResidentOut:
    clear = decrypt_resident(ring, r)
    household = lookups.households.get(r.household_id) if r.household_id else None
    community = lookups.communities.get(r.community_id)
    return ResidentOut(
        id=r.public_id,
        status=r.status.value,
        street_code=r.street_code,
        community=community.name if community else "",
        household_id=household.public_id if household else None,
        address=household.address if household else None,
        relation=r.relation,
        name=clear.name,
        id_number=mask_id(clear.id_number),
        phone=mask_phone(clear.phone) if clear.phone else None,
        gender=r.gender,
        birth_date=r.birth_date,
        age=age_on(r.birth_date, today),
        tags=tag_list(r.tags),
        notes=clear.notes,
        merged_into=lookups.public_ids.get(r.merged_into_id) if r.merged_into_id else None,
        bound=r.user_id is not None,
        version=r.version,
        updated_at=r.updated_at,
    )


async def residents_out(residents: list[Resident], ring: KeyRing, today: date) -> list[ResidentOut]:
    lookups = await Lookups.for_residents(residents)
    return [resident_out(r, ring, lookups, today) for r in residents]


def history_value(field: str, value: object) -> object:
    """How a value appears in the history: identifiers masked, free text only as changed."""
    if value is None or value == "":
        return None
    if field == "id_number":
        return mask_id(str(value))
    if field == "phone":
        return mask_phone(str(value))
    if field in ("name", "notes"):
        return "(已填写)"
    return value


def version_out(v: ResidentVersion) -> VersionOut:
    return VersionOut(
        version=v.version,
        action=v.action,
        actor_role=v.actor_role,
        actor=v.actor,
        at=v.at,
        changes=v.changes,
    )


def access_event_out(e: AccessEvent) -> AccessEventOut:
    return AccessEventOut(
        at=e.at, kind=e.kind, field=e.field, role=e.actor_role, office=e.office, reason=e.reason
    )
