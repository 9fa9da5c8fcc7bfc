"""Who sees which resident: a street worker only their own street's, anyone else nobody.

Any resident outside the caller's street is "not found" — the same 404 as an id that does not
exist — on every route: reads, updates, reveals, merges, forms, lists, exports and searches.
"""

from __future__ import annotations

from backend.access import Principal
from backend.errors import Forbidden, NotFound
from backend.models import Role
from residents.models import Community, Household, Resident


def worker_street(actor: Principal) -> str:
    """The street code of a street worker; any other caller may not touch persons."""
    if actor.role != Role.STREET_WORKER:
        raise Forbidden("只有街道工作人员可以查看居民个人信息", code="not_street_worker")
    if not actor.street:
        raise Forbidden("该账号未关联街道", code="no_street")
    return actor.street


def office_of(actor: Principal) -> str:
    """The office shown to a resident in their access log (never a private name)."""
    if actor.role == Role.STREET_WORKER:
        return actor.street or ""
    if actor.role == Role.RESIDENT:
        return "self"
    return "bureau" if actor.role == Role.BUREAU_ADMIN else actor.role.value


async def resident_in_street(public_id: str, street: str) -> Resident:
    resident = await Resident.filter(public_id=public_id, street_code=street).first()
    if resident is None:
        raise NotFound("未找到该居民", code="resident_not_found")
    return resident


async def household_in_street(public_id: str, street: str) -> Household:
    household = await Household.filter(public_id=public_id, street_code=street).first()
    if household is None:
        raise NotFound("未找到该户", code="household_not_found")
    return household


async def community_in_street(public_id: str, street: str) -> Community:
    community = await Community.filter(public_id=public_id, street_code=street).first()
    if community is None:
        raise NotFound("未找到该社区", code="community_not_found")
    return community
