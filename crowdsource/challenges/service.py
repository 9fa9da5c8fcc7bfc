"""Vendors: registration, verification, suspension and members."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError

from backend.access import Principal
from backend.audit import record
from backend.auth import passwords
from backend.context import AppContext
from backend.errors import Conflict, Forbidden, NotFound, RateLimited, Unprocessable
from backend.models import Role, User
from backend.paging import decode_cursor, encode_cursor, scope_of
from backend.uow import unit_of_work
from crowdsource.challenges.models import Vendor, VendorMember, VendorStatus
from crowdsource.challenges.presenters import vendor_out
from crowdsource.challenges.schemas import (
    VendorListQuery,
    VendorMemberCreate,
    VendorPage,
    VendorRegistration,
)

REGISTRATIONS_PER_IP_PER_HOUR = 10


async def get_vendor_or_raise(public_id: str) -> Vendor:
    vendor = await Vendor.get_or_none(public_id=public_id)
    if vendor is None:
        raise NotFound("企业不存在", code="vendor_not_found")
    return vendor


async def membership_of(user_public_id: str) -> VendorMember | None:
    """The vendor membership of a vendor account, if any."""
    return (
        await VendorMember.filter(user__public_id=user_public_id).select_related("vendor").first()
    )


async def sees_contact(viewer: Principal, vendor: Vendor) -> bool:
    """The bureau admin and the vendor's own members see the contact phone in full."""
    if viewer.role == Role.BUREAU_ADMIN:
        return True
    if viewer.role == Role.VENDOR:
        member = await membership_of(viewer.user_id)
        return member is not None and member.vendor_id == vendor.id
    return False


async def register_vendor(*, ctx: AppContext, data: VendorRegistration, client_ip: str) -> Vendor:
    """Register a company and its first member account; the bureau verifies it later."""
    limit = await ctx.kv.hit(
        f"vendor-register:{client_ip}", limit=REGISTRATIONS_PER_IP_PER_HOUR, window=3600
    )
    if not limit.allowed:
        raise RateLimited(limit.retry_after)
    now = ctx.clock.now()
    # Hashed in the bounded pool, before the transaction opens (argon2 is slow by design).
    password_hash = await passwords.hash_(ctx.settings, data.password)
    try:
        async with unit_of_work():
            vendor = await Vendor.create(
                name=data.company_name.strip(),
                uscc=data.uscc,
                contact_name=data.contact_name,
                contact_phone=data.contact_phone,
                contact_email=data.contact_email,
                created_at=now,
            )
            if await User.filter(username=data.username).exists():
                raise Conflict("用户名已存在", code="username_taken", fields={"username": "taken"})
            user = await User.create(
                username=data.username,
                password_hash=password_hash,
                role=Role.VENDOR,
                display_name=data.contact_name,
            )
            await VendorMember.create(vendor=vendor, user=user, is_owner=True, created_at=now)
            await record(
                ctx=ctx, actor=None, action="vendor.register", obj=("vendor", vendor.public_id)
            )
    except IntegrityError:
        if await Vendor.filter(uscc=data.uscc).exists():
            raise Conflict(
                "该统一社会信用代码已注册",
                code="vendor_exists",
                fields={"uscc": "already registered"},
            ) from None
        raise Conflict(
            "用户名已存在", code="username_taken", fields={"username": "taken"}
        ) from None
    return vendor


async def decide_vendor(
    *, ctx: AppContext, actor: Principal, public_id: str, status: VendorStatus, reason: str
) -> Vendor:
    """Verify or suspend a vendor (the bureau's decision, audited)."""
    vendor = await get_vendor_or_raise(public_id)
    if vendor.status == status:
        return vendor
    vendor.status = status
    vendor.status_reason = reason
    if status == VendorStatus.VERIFIED:
        vendor.verified_at = ctx.clock.now()
    async with unit_of_work():
        await vendor.save(update_fields=["status", "status_reason", "verified_at"])
        await record(
            ctx=ctx,
            actor=actor,
            action=f"vendor.{status.value}",
            obj=("vendor", public_id),
            reason=reason,
        )
    return vendor


async def add_member(
    *, ctx: AppContext, actor: Principal, public_id: str, data: VendorMemberCreate
) -> User:
    """A member of a verified vendor adds a colleague's account."""
    vendor = await get_vendor_or_raise(public_id)
    member = await membership_of(actor.user_id)
    if member is None or member.vendor_id != vendor.id:
        raise Forbidden("只能为本企业添加成员")
    if vendor.status != VendorStatus.VERIFIED:
        raise Unprocessable("企业通过审核后才能添加成员", code="vendor_not_verified")
    password_hash = await passwords.hash_(ctx.settings, data.password)
    try:
        async with unit_of_work():
            user = await User.create(
                username=data.username,
                password_hash=password_hash,
                role=Role.VENDOR,
                display_name=data.display_name,
            )
            await VendorMember.create(vendor=vendor, user=user, created_at=ctx.clock.now())
            await record(
                ctx=ctx,
                actor=actor,
                action="vendor.member_add",
                obj=("vendor", public_id),
                detail={"user": user.public_id},
            )
    except IntegrityError:
        raise Conflict(
            "用户名已存在", code="username_taken", fields={"username": "taken"}
        ) from None
    return user


async def list_vendors(*, ctx: AppContext, viewer: Principal, query: VendorListQuery) -> VendorPage:
    """Vendors newest first, optionally by status, with keyset paging."""
    scope = scope_of("vendors", query.status)
    rows = Vendor.all().order_by("-id")
    if query.status:
        rows = rows.filter(status=query.status)
    if query.cursor:
        (last_id,) = decode_cursor(
            query.cursor, scope=scope, secret=ctx.settings.cursor_key, shape=(int,)
        )
        rows = rows.filter(id__lt=last_id)
    page = await rows.limit(query.limit + 1)
    more = len(page) > query.limit
    page = page[: query.limit]
    next_cursor = (
        encode_cursor([page[-1].id], scope=scope, secret=ctx.settings.cursor_key) if more else None
    )
    return VendorPage(
        items=[await vendor_out(v, full=await sees_contact(viewer, v)) for v in page],
        next_cursor=next_cursor,
    )
