"""The bureau admin's pages: accounts, operator API keys, Open311 clients, vendors; and the
voting integrity report for curators."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from admin_console.forms import build, number
from admin_console.pages import ADMIN, CURATORS, Page, page
from backend.auth import service as accounts
from backend.auth.schemas import StaffUserCreate
from backend.errors import ValidationFailed
from backend.models import ApiKey, Role, User
from crowdsource import campaigns, integrity, open311_service
from crowdsource.challenges import service as vendors
from crowdsource.challenges.models import VendorStatus
from crowdsource.challenges.schemas import VendorListQuery
from crowdsource.schemas import FlagResolveIn, Open311ClientCreate

bp = Blueprint("console_admin", url_prefix="/console")

STAFF_CHOICES = [r for r in Role if r != Role.RESIDENT]


async def _users_page(
    page: Page,
    *,
    errors: dict[str, str],
    values: dict[str, str],
    new_key: str = "",
    status: int = 200,
) -> HTTPResponse:
    users = await User.exclude(role=Role.RESIDENT).exclude(username=None).order_by("id").limit(500)
    keys = await ApiKey.filter(revoked_at__isnull=True).select_related("user").order_by("id")
    return page.render(
        "admin/users.html",
        status=status,
        users=users,
        keys=keys,
        roles=STAFF_CHOICES,
        errors=errors,
        values=values,
        new_key=new_key,
    )


@bp.get("/admin/users")
@page(read=ADMIN, write=ADMIN)
async def users(request: Request, page: Page) -> HTTPResponse:
    return await _users_page(page, errors={}, values={})


@bp.post("/admin/users")
@page(read=ADMIN, write=ADMIN)
async def create_user(request: Request, page: Page) -> HTTPResponse:
    form = page.form
    data = {
        "username": form.get("username", ""),
        "password": form.get("password", ""),
        "role": form.get("role", ""),
        "display_name": form.get("display_name", ""),
        "street_code": form.get("street_code") or None,
    }
    body, errors = build(StaffUserCreate, data)
    if body is not None:
        try:
            user = await accounts.create_staff_user(ctx=page.ctx, actor=page.user, data=body)
        except ValidationFailed as exc:
            errors = dict(exc.fields)
        else:
            return await page.redirect("/console/admin/users", flash=f"已创建账号 {user.username}")
    values = {k: v for k, v in form.items() if k != "password"}
    return await _users_page(page, errors=errors, values=values, status=400)


@bp.post("/admin/users/<user_id:str>/deactivate")
@page(read=ADMIN, write=ADMIN)
async def deactivate(request: Request, page: Page, user_id: str) -> HTTPResponse:
    user = await accounts.set_user_active(
        ctx=page.ctx, actor=page.user, public_id=user_id, active=False
    )
    return await page.redirect(
        "/console/admin/users", flash=f"已停用 {user.username}，其会话已注销"
    )


@bp.post("/admin/users/<user_id:str>/keys")
@page(read=ADMIN, write=ADMIN)
async def issue_key(request: Request, page: Page, user_id: str) -> HTTPResponse:
    key = await accounts.create_api_key(
        ctx=page.ctx, actor=page.user, user_public_id=user_id, name=page.form.get("name", "")[:100]
    )
    return await _users_page(page, errors={}, values={}, new_key=key.key or "")


@bp.post("/admin/keys/<key_id:str>/revoke")
@page(read=ADMIN, write=ADMIN)
async def revoke_key(request: Request, page: Page, key_id: str) -> HTTPResponse:
    await accounts.revoke_api_key(ctx=page.ctx, actor=page.user, key_public_id=key_id)
    return await page.redirect("/console/admin/users", flash="API 密钥已吊销")


@bp.get("/admin/open311")
@page(read=ADMIN, write=ADMIN)
async def open311_clients(request: Request, page: Page) -> HTTPResponse:
    listing = await open311_service.list_clients()
    return page.render(
        "admin/open311.html", clients=listing.items, errors={}, values={}, new_key=""
    )


@bp.post("/admin/open311")
@page(read=ADMIN, write=ADMIN)
async def create_open311(request: Request, page: Page) -> HTTPResponse:
    form = page.form
    data = {
        "name": form.get("name", ""),
        "audience": form.get("audience", "resident"),
        "organisation": form.get("organisation") or None,
        "requests_per_minute": number(form.get("requests_per_minute", "")) or 60,
    }
    body, errors = build(Open311ClientCreate, data)
    new_key = ""
    if body is not None:
        try:
            created = await open311_service.create_client(ctx=page.ctx, actor=page.user, data=body)
            new_key = created.key or ""
        except ValidationFailed as exc:
            errors = dict(exc.fields)
    listing = await open311_service.list_clients()
    return page.render(
        "admin/open311.html",
        status=400 if errors else 200,
        clients=listing.items,
        errors=errors,
        values=dict(form) if errors else {},
        new_key=new_key,
    )


@bp.post("/admin/open311/<client_id:str>/revoke")
@page(read=ADMIN, write=ADMIN)
async def revoke_open311(request: Request, page: Page, client_id: str) -> HTTPResponse:
    await open311_service.revoke_client(ctx=page.ctx, actor=page.user, public_id=client_id)
    return await page.redirect("/console/admin/open311", flash="Open311 客户端已吊销")


@bp.get("/vendors")
@page(read=ADMIN, write=ADMIN)
async def vendor_list(request: Request, page: Page) -> HTTPResponse:
    status = request.args.get("status") or None
    query = VendorListQuery(
        status=VendorStatus(status) if status in {s.value for s in VendorStatus} else None,
        limit=100,
    )
    listing = await vendors.list_vendors(ctx=page.ctx, viewer=page.user, query=query)
    return page.render("admin/vendors.html", vendors=listing.items, scope=status or "")


@bp.post("/vendors/<vendor_id:str>")
@page(read=ADMIN, write=ADMIN)
async def vendor_decide(request: Request, page: Page, vendor_id: str) -> HTTPResponse:
    action = page.form.get("action")
    reason = page.form.get("reason", "")[:200]
    if action == "suspend" and not reason:
        raise ValidationFailed("暂停须说明原因", fields={"reason": "必填"})
    status = VendorStatus.SUSPENDED if action == "suspend" else VendorStatus.VERIFIED
    vendor = await vendors.decide_vendor(
        ctx=page.ctx, actor=page.user, public_id=vendor_id, status=status, reason=reason
    )
    return await page.redirect("/console/vendors", flash=f"{vendor.name}：{status.value}")


@bp.get("/campaigns/<campaign_id:str>/integrity")
@page(read=CURATORS, write=CURATORS)
async def integrity_report(request: Request, page: Page, campaign_id: str) -> HTTPResponse:
    campaign = await campaigns.get_campaign_or_raise(
        campaign_id, principal=page.user, now=page.ctx.clock.now()
    )
    report = await integrity.report(ctx=page.ctx, campaign=campaign)
    return page.render("admin/integrity.html", campaign=campaign, report=report)


@bp.post("/campaigns/<campaign_id:str>/flags/<flag_id:str>")
@page(read=CURATORS, write=CURATORS)
async def resolve_flag(
    request: Request, page: Page, campaign_id: str, flag_id: str
) -> HTTPResponse:
    campaign = await campaigns.get_campaign_or_raise(
        campaign_id, principal=page.user, now=page.ctx.clock.now()
    )
    body, errors = build(
        FlagResolveIn,
        {"decision": page.form.get("decision", ""), "note": page.form.get("note", "")},
    )
    if body is None:
        raise ValidationFailed(fields=errors)
    await integrity.resolve_flag(
        ctx=page.ctx, actor=page.user, campaign=campaign, flag_id=flag_id, data=body
    )
    return await page.redirect(f"/console/campaigns/{campaign_id}/integrity", flash="标记已处理")
