"""Sign-in routes and account management for the bureau."""

from __future__ import annotations

from sanic import Blueprint, Request

from backend.access import Call, endpoint
from backend.auth import service
from backend.auth.schemas import (
    ApiKeyCreate,
    ApiKeyOut,
    LogoutRequest,
    PasswordSignIn,
    RefreshRequest,
    StaffUserCreate,
    TokenOut,
    UserList,
    UserOut,
    WeChatSignIn,
)
from backend.headers import mark_no_store
from backend.models import Role, User

bp = Blueprint("auth", url_prefix="/api/v1")
TAG = "auth"


@bp.post("/auth/wechat")
@endpoint(
    summary="微信小程序登录（jscode2session）",
    tag=TAG,
    public=True,
    body=WeChatSignIn,
    response=TokenOut,
    errors=(429, 503),
)
async def wechat_sign_in(request: Request, call: Call[None, WeChatSignIn]) -> TokenOut:
    mark_no_store(request)
    return await service.sign_in_wechat(ctx=call.ctx, code=call.body.code, wechat=call.ctx.wechat)


@bp.post("/auth/login")
@endpoint(
    summary="工作人员与企业用户名密码登录",
    tag=TAG,
    public=True,
    body=PasswordSignIn,
    response=TokenOut,
    errors=(401, 429),
)
async def password_sign_in(request: Request, call: Call[None, PasswordSignIn]) -> TokenOut:
    mark_no_store(request)
    return await service.sign_in_password(
        ctx=call.ctx,
        username=call.body.username,
        password=call.body.password,
        client_ip=call.client_ip,
    )


@bp.post("/auth/refresh")
@endpoint(
    summary="刷新登录凭证（轮换刷新令牌）",
    tag=TAG,
    public=True,
    body=RefreshRequest,
    response=TokenOut,
    errors=(401,),
)
async def refresh(request: Request, call: Call[None, RefreshRequest]) -> TokenOut:
    mark_no_store(request)
    return await service.rotate_refresh_token(ctx=call.ctx, refresh_token=call.body.refresh_token)


@bp.post("/auth/logout")
@endpoint(
    summary="退出登录（注销本次会话）", tag=TAG, signed_in=True, body=LogoutRequest, status=204
)
async def logout(request: Request, call: Call[None, LogoutRequest]) -> None:
    await service.logout(ctx=call.ctx, principal=call.user, refresh_token=call.body.refresh_token)


@bp.get("/me")
@endpoint(summary="当前登录用户", tag=TAG, signed_in=True, response=UserOut)
async def me(request: Request, call: Call[None, None]) -> UserOut:
    return service.user_out(await service.get_user_or_raise(call.user.user_id))


@bp.get("/operator/me")
@endpoint(
    summary="运营方 API 密钥对应的账号",
    tag="operators",
    api_key=True,
    roles=(Role.VENUE_OPERATOR,),
    response=UserOut,
)
async def operator_me(request: Request, call: Call[None, None]) -> UserOut:
    return service.user_out(await service.get_user_or_raise(call.user.user_id))


@bp.post("/admin/users")
@endpoint(
    summary="创建工作人员、企业或运营方账号",
    tag="admin",
    roles=(Role.BUREAU_ADMIN,),
    body=StaffUserCreate,
    response=UserOut,
    status=201,
    errors=(409,),
)
async def create_user(request: Request, call: Call[None, StaffUserCreate]) -> UserOut:
    user = await service.create_staff_user(ctx=call.ctx, actor=call.user, data=call.body)
    return service.user_out(user)


@bp.get("/admin/users")
@endpoint(summary="账号列表", tag="admin", roles=(Role.BUREAU_ADMIN,), response=UserList)
async def list_users(request: Request, call: Call[None, None]) -> UserList:
    users = await User.exclude(role=Role.RESIDENT).order_by("id").limit(100)
    return UserList(items=[service.user_out(u) for u in users])


@bp.post("/admin/users/<user_id:str>/deactivate")
@endpoint(
    summary="停用账号并注销其全部会话",
    tag="admin",
    roles=(Role.BUREAU_ADMIN,),
    response=UserOut,
    errors=(404,),
)
async def deactivate_user(request: Request, call: Call[None, None], user_id: str) -> UserOut:
    user = await service.set_user_active(
        ctx=call.ctx, actor=call.user, public_id=user_id, active=False
    )
    return service.user_out(user)


@bp.post("/admin/users/<user_id:str>/api-keys")
@endpoint(
    summary="为运营方账号签发 API 密钥",
    tag="admin",
    roles=(Role.BUREAU_ADMIN,),
    body=ApiKeyCreate,
    response=ApiKeyOut,
    status=201,
    errors=(404,),
)
async def create_api_key(
    request: Request, call: Call[None, ApiKeyCreate], user_id: str
) -> ApiKeyOut:
    return await service.create_api_key(
        ctx=call.ctx, actor=call.user, user_public_id=user_id, name=call.body.name
    )


@bp.delete("/admin/api-keys/<key_id:str>")
@endpoint(
    summary="吊销 API 密钥", tag="admin", roles=(Role.BUREAU_ADMIN,), status=204, errors=(404,)
)
async def revoke_api_key(request: Request, call: Call[None, None], key_id: str) -> None:
    await service.revoke_api_key(ctx=call.ctx, actor=call.user, key_public_id=key_id)
