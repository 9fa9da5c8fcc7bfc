"""Communities and households of a street (a worker's own street only)."""

from __future__ import annotations

from datetime import date

from tortoise.exceptions import IntegrityError
from tortoise.functions import Count

from backend import paging
from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict
from backend.uow import unit_of_work
from residents.access_log import record_access
from residents.identity import age_on
from residents.models import Community, Household, Resident, ResidentStatus
from residents.presenters import decrypt_resident
from residents.schemas import (
    CommunityOut,
    HouseholdIn,
    HouseholdList,
    HouseholdMemberOut,
    HouseholdOut,
    HouseholdPatch,
    HouseholdQuery,
)
from residents.scope import community_in_street, household_in_street, worker_street
from residents.settings import key_ring


def clean_address(address: str) -> str:
    return " ".join(address.split())


async def community_named(street: str, name: str) -> Community:
    """The street's community of this name, created on first use."""
    name = name.strip()
    community = await Community.filter(street_code=street, name=name).first()
    if community is not None:
        return community
    try:
        return await Community.create(street_code=street, name=name)
    except IntegrityError:  # created concurrently
        return await Community.get(street_code=street, name=name)


async def household_at(community: Community, address: str) -> Household:
    """The household at this address of the community, created on first use."""
    address = clean_address(address)
    household = await Household.filter(community_id=community.id, address=address).first()
    if household is not None:
        return household
    try:
        return await Household.create(
            community_id=community.id, street_code=community.street_code, address=address
        )
    except IntegrityError:
        return await Household.get(community_id=community.id, address=address)


async def list_communities(actor: Principal) -> list[CommunityOut]:
    street = worker_street(actor)
    communities = await Community.filter(street_code=street).order_by("name")
    counts = dict(
        await Resident.filter(street_code=street, status=ResidentStatus.ACTIVE)
        .group_by("community_id")
        .annotate(n=Count("id"))
        .values_list("community_id", "n")
    )
    return [
        CommunityOut(id=c.public_id, street_code=street, name=c.name, residents=counts.get(c.id, 0))
        for c in communities
    ]


async def create_community(actor: Principal, name: str) -> CommunityOut:
    street = worker_street(actor)
    if await Community.filter(street_code=street, name=name.strip()).exists():
        raise Conflict("该社区已存在", code="community_exists", fields={"name": "已存在"})
    community = await community_named(street, name)
    return CommunityOut(id=community.public_id, street_code=street, name=community.name)


async def create_household(*, actor: Principal, data: HouseholdIn) -> HouseholdOut:
    street = worker_street(actor)
    community = await community_named(street, data.community)
    address = clean_address(data.address)
    if await Household.filter(community_id=community.id, address=address).exists():
        raise Conflict("该地址已有户", code="household_exists", fields={"address": "已存在"})
    household = await household_at(community, address)
    return HouseholdOut(id=household.public_id, community=community.name, address=address)


async def household_out(
    household: Household, *, ctx: AppContext, actor: Principal, today: date, log: bool
) -> HouseholdOut:
    community = await Community.get(id=household.community_id)
    members = await Resident.filter(
        household_id=household.id, status=ResidentStatus.ACTIVE
    ).order_by("id")
    ring = key_ring(ctx)
    if log and members:
        await record_access(ctx=ctx, actor=actor, resident_ids=[m.id for m in members], kind="list")
    return HouseholdOut(
        id=household.public_id,
        community=community.name,
        address=household.address,
        members=[
            HouseholdMemberOut(
                id=m.public_id,
                name=decrypt_resident(ring, m).name,
                relation=m.relation,
                gender=m.gender,
                age=age_on(m.birth_date, today),
            )
            for m in members
        ],
    )


async def get_household(*, ctx: AppContext, actor: Principal, public_id: str) -> HouseholdOut:
    household = await household_in_street(public_id, worker_street(actor))
    today = ctx.clock.local_now().date()
    return await household_out(household, ctx=ctx, actor=actor, today=today, log=True)


async def update_household(
    *, ctx: AppContext, actor: Principal, public_id: str, data: HouseholdPatch
) -> HouseholdOut:
    household = await household_in_street(public_id, worker_street(actor))
    address = clean_address(data.address)
    clash = await Household.filter(community_id=household.community_id, address=address).exclude(
        id=household.id
    )
    if clash:
        raise Conflict("该地址已有户", code="household_exists", fields={"address": "已存在"})
    async with unit_of_work():
        await Household.filter(id=household.id).update(address=address)
        await record(
            ctx=ctx,
            actor=actor,
            action="residents.household_moved",
            obj=("household", household.public_id),
        )
    household.address = address
    today = ctx.clock.local_now().date()
    return await household_out(household, ctx=ctx, actor=actor, today=today, log=False)


async def list_households(
    *, ctx: AppContext, actor: Principal, query: HouseholdQuery
) -> HouseholdList:
    street = worker_street(actor)
    qs = Household.filter(street_code=street)
    if query.community_id:
        qs = qs.filter(community_id=(await community_in_street(query.community_id, street)).id)
    scope = paging.scope_of("households", street, query.community_id)
    secret = ctx.settings.cursor_key
    if query.cursor:
        (after,) = paging.decode_cursor(query.cursor, scope=scope, secret=secret, shape=(int,))
        qs = qs.filter(id__gt=after)
    rows = await qs.order_by("id").limit(query.limit + 1)
    next_cursor = None
    if len(rows) > query.limit:
        rows = rows[: query.limit]
        next_cursor = paging.encode_cursor([rows[-1].id], scope=scope, secret=secret)
    today = ctx.clock.local_now().date()
    items = [await household_out(h, ctx=ctx, actor=actor, today=today, log=True) for h in rows]
    return HouseholdList(items=items, next_cursor=next_cursor)
