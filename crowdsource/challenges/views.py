"""Vendor routes: self-registration, the bureau's decisions, members."""

from __future__ import annotations

from sanic import Blueprint, Request

from backend.access import Call, endpoint
from backend.errors import Forbidden, NotFound
from backend.models import Role
from crowdsource.challenges import service
from crowdsource.challenges.models import VendorStatus
from crowdsource.challenges.schemas import (
    MemberOut,
    VendorDecision,
    VendorListQuery,
    VendorMemberCreate,
    VendorOut,
    VendorPage,
    VendorRegistration,
    VendorSuspension,
)

bp = Blueprint("vendors", url_prefix="/api/v1")
TAG = "vendors"
STAFF = (Role.BUREAU_ADMIN, Role.CURATOR)


@bp.post("/vendors")
@endpoint(
    summary="企业注册（统一社会信用代码校验）",
    tag=TAG,
    public=True,
    body=VendorRegistration,
    response=VendorOut,
    status=201,
    errors=(409, 429),
)
async def register(request: Request, call: Call) -> VendorOut:
    vendor = await service.register_vendor(ctx=call.ctx, data=call.body, client_ip=call.client_ip)
    return await service.vendor_out(vendor, full=True, with_members=True)


@bp.get("/vendors")
@endpoint(summary="企业列表", tag=TAG, roles=STAFF, query=VendorListQuery, response=VendorPage)
async def list_vendors(request: Request, call: Call) -> VendorPage:
    return await service.list_vendors(ctx=call.ctx, viewer=call.user, query=call.query)


@bp.get("/vendors/<vendor_id:str>")
@endpoint(
    summary="企业详情", tag=TAG, roles=(*STAFF, Role.VENDOR), response=VendorOut, errors=(404,)
)
async def get_vendor(request: Request, call: Call, vendor_id: str) -> VendorOut:
    vendor = await service.get_vendor_or_raise(vendor_id)
    if call.user.role == Role.VENDOR:
        member = await service.membership_of(call.user.user_id)
        if member is None or member.vendor_id != vendor.id:  # type: ignore[attr-defined]
            raise NotFound("企业不存在", code="vendor_not_found")
    full = await service.sees_contact(call.user, vendor)
    return await service.vendor_out(vendor, full=full, with_members=True)


@bp.get("/me/vendor")
@endpoint(summary="我所在的企业", tag=TAG, roles=(Role.VENDOR,), response=VendorOut, errors=(404,))
async def my_vendor(request: Request, call: Call) -> VendorOut:
    member = await service.membership_of(call.user.user_id)
    if member is None:
        raise NotFound("账号未关联企业", code="vendor_not_found")
    return await service.vendor_out(member.vendor, full=True, with_members=True)


@bp.post("/vendors/<vendor_id:str>/verify")
@endpoint(
    summary="审核通过企业",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN,),
    body=VendorDecision,
    response=VendorOut,
    errors=(404,),
)
async def verify(request: Request, call: Call, vendor_id: str) -> VendorOut:
    vendor = await service.decide_vendor(
        ctx=call.ctx,
        actor=call.user,
        public_id=vendor_id,
        status=VendorStatus.VERIFIED,
        reason=call.body.reason,
    )
    return await service.vendor_out(vendor, full=True)


@bp.post("/vendors/<vendor_id:str>/suspend")
@endpoint(
    summary="暂停企业（须说明原因）",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN,),
    body=VendorSuspension,
    response=VendorOut,
    errors=(404,),
)
async def suspend(request: Request, call: Call, vendor_id: str) -> VendorOut:
    vendor = await service.decide_vendor(
        ctx=call.ctx,
        actor=call.user,
        public_id=vendor_id,
        status=VendorStatus.SUSPENDED,
        reason=call.body.reason,
    )
    return await service.vendor_out(vendor, full=True)


@bp.post("/vendors/<vendor_id:str>/members")
@endpoint(
    summary="企业成员添加同事账号",
    tag=TAG,
    roles=(Role.VENDOR,),
    body=VendorMemberCreate,
    response=MemberOut,
    status=201,
    errors=(404, 409, 422),
)
async def add_member(request: Request, call: Call, vendor_id: str) -> MemberOut:
    if call.user.role != Role.VENDOR:  # pragma: no cover - guarded by roles
        raise Forbidden()
    user = await service.add_member(
        ctx=call.ctx, actor=call.user, public_id=vendor_id, data=call.body
    )
    return MemberOut(
        user_id=user.public_id,
        username=user.username,
        display_name=user.display_name,
        is_owner=False,
    )
