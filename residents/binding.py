"""A resident's account bound to their record, and their own view of it with its access log.

Self-binding compares the ID number and phone through their blind indexes (the values are never
decrypted for it); attempts are counted per account in the key-value store under a key holding
the account's public id only, never a value. A worker of the resident's street may bind an
account instead (the resident shows the account id from ``GET /me/data``).
"""

from __future__ import annotations

from tortoise.exceptions import IntegrityError

from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict, NotFound, RateLimited, Unprocessable
from backend.models import Role, User
from backend.uow import unit_of_work
from residents.access_log import events_for, record_access
from residents.identity import phone_index_value
from residents.models import Resident, ResidentStatus
from residents.presenters import access_event_out, residents_out
from residents.schemas import BindIn, BindingIn, MyDataOut, ResidentOut
from residents.scope import resident_in_street, worker_street
from residents.settings import key_ring, resident_settings


def _attempts_key(actor: Principal) -> str:
    return f"residents:bind-attempts:{actor.user_id}"


async def my_data(*, ctx: AppContext, actor: Principal) -> MyDataOut:
    user = await User.get(public_id=actor.user_id)
    resident = await Resident.filter(user_id=user.id).first()
    if resident is None:
        return MyDataOut(account_id=actor.user_id, bound=False, record=None, access_log=[])
    merged = [r.id for r in await Resident.filter(merged_into_id=resident.id).only("id")]
    events = await events_for([resident.id, *merged])
    today = ctx.clock.local_now().date()
    out = (await residents_out([resident], key_ring(ctx), today))[0]
    return MyDataOut(
        account_id=actor.user_id,
        bound=True,
        record=out,
        access_log=[access_event_out(e) for e in events],
    )


async def bind_self(*, ctx: AppContext, actor: Principal, data: BindIn) -> MyDataOut:
    """Bind the signed-in resident to the record with this ID number and phone."""
    settings = resident_settings(ctx)
    user = await User.get(public_id=actor.user_id)
    if await Resident.filter(user_id=user.id).exists():
        raise Conflict("账号已绑定居民记录", code="already_bound")
    limit = await ctx.kv.hit(
        _attempts_key(actor),
        limit=settings.bind_max_attempts,
        window=settings.bind_window_seconds,
    )
    if not limit.allowed:
        raise RateLimited(limit.retry_after, "尝试次数过多，请稍后再试", code="bind_rate_limited")
    ring = settings.ring
    resident = await Resident.filter(
        id_index=ring.index("id", data.id_number),
        phone_index=ring.index("phone", phone_index_value(data.phone)),
        status=ResidentStatus.ACTIVE,
    ).first()
    if resident is None:
        # One message for "no such record" and "phone does not match": nothing to probe.
        raise Unprocessable(
            "身份证号与电话不匹配任何居民记录，请联系所在街道", code="bind_no_match"
        )
    if resident.user_id is not None:
        raise Conflict("该居民记录已绑定其他账号，请联系所在街道", code="record_already_bound")
    await _bind(ctx=ctx, actor=actor, resident=resident, user=user, via="self")
    return await my_data(ctx=ctx, actor=actor)


async def _bind(
    *, ctx: AppContext, actor: Principal, resident: Resident, user: User, via: str
) -> None:
    try:
        async with unit_of_work():
            count = await Resident.filter(id=resident.id, user_id=None).update(user_id=user.id)
            if count == 0:
                raise Conflict("该居民记录已绑定其他账号", code="record_already_bound")
            await record_access(
                ctx=ctx, actor=actor, resident_ids=[resident.id], kind="bind", reason=via
            )
            await record(
                ctx=ctx,
                actor=actor,
                action="residents.bind",
                obj=("resident", resident.public_id),
                detail={"via": via, "account": user.public_id},
            )
    except IntegrityError:
        raise Conflict("账号已绑定居民记录", code="already_bound") from None


async def bind_by_worker(
    *, ctx: AppContext, actor: Principal, public_id: str, data: BindingIn
) -> ResidentOut:
    resident = await resident_in_street(public_id, worker_street(actor))
    if resident.status != ResidentStatus.ACTIVE:
        raise Unprocessable("该记录已合并", code="resident_merged")
    user = await User.filter(public_id=data.account_id, role=Role.RESIDENT).first()
    if user is None:
        raise NotFound("未找到该居民账号", code="account_not_found")
    if await Resident.filter(user_id=user.id).exists():
        raise Conflict("账号已绑定居民记录", code="already_bound")
    await _bind(ctx=ctx, actor=actor, resident=resident, user=user, via="worker")
    fresh = await Resident.get(id=resident.id)
    return (await residents_out([fresh], key_ring(ctx), ctx.clock.local_now().date()))[0]


async def unbind_by_worker(*, ctx: AppContext, actor: Principal, public_id: str) -> None:
    resident = await resident_in_street(public_id, worker_street(actor))
    async with unit_of_work():
        await Resident.filter(id=resident.id).update(user_id=None)
        await record(
            ctx=ctx, actor=actor, action="residents.unbind", obj=("resident", resident.public_id)
        )
