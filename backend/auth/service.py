"""Sign-in, token rotation, logout and account management."""

from __future__ import annotations

import logging
from datetime import timedelta

from tortoise.exceptions import IntegrityError

from backend.access import Principal
from backend.audit import record
from backend.auth import passwords, revocations
from backend.auth.attempts import SignInAttempts
from backend.auth.schemas import ApiKeyOut, StaffUserCreate, TokenOut, UserOut
from backend.auth.wechat import WeChatClient
from backend.context import AppContext
from backend.errors import (
    BadRequest,
    Conflict,
    NotFound,
    Unauthorized,
    ValidationFailed,
)
from backend.models import ApiKey, RefreshToken, Role, User, new_public_id
from backend.security import digest, encode_access_token, needs_rehash, new_secret

log = logging.getLogger("smartcircle.auth")
DEV_PREFIX = "dev:"


def user_out(user: User) -> UserOut:
    return UserOut(
        id=user.public_id,
        role=user.role,
        display_name=user.display_name,
        username=user.username,
        street_code=user.street_code,
    )


async def issue_tokens(*, ctx: AppContext, user: User, family: str | None = None) -> TokenOut:
    """A fresh access token and a refresh token in the given (or a new) family."""
    now = ctx.clock.now()
    family = family or new_public_id()
    refresh = new_secret()
    await RefreshToken.create(
        token_hash=digest(refresh),
        family=family,
        user=user,
        issued_at=now,
        expires_at=now + timedelta(seconds=ctx.settings.refresh_token_ttl),
    )
    access, ttl = encode_access_token(
        secret=ctx.settings.token_key,
        user_id=user.public_id,
        role=user.role.value,
        session=family,
        street=user.street_code,
        ttl=ctx.settings.access_token_ttl,
        now=ctx.clock.time(),
    )
    return TokenOut(access_token=access, refresh_token=refresh, expires_in=ttl, user=user_out(user))


async def sign_in_wechat(*, ctx: AppContext, code: str, wechat: WeChatClient) -> TokenOut:
    """Exchange a wx.login code (or, in the demo profile, ``dev:<name>``) for tokens."""
    if code.startswith(DEV_PREFIX):
        if not ctx.settings.demo_signin:
            raise BadRequest(
                "演示登录未开启",
                code="demo_signin_disabled",
                fields={"code": "demo codes disabled"},
            )
        name = code[len(DEV_PREFIX) :].strip()
        if not name or len(name) > 32:
            raise ValidationFailed(fields={"code": "dev:<name> needs a name of 1-32 characters"})
        openid, unionid, display = f"{DEV_PREFIX}{name}", None, name
    else:
        identity = await wechat.code_to_session(code)
        openid, unionid, display = identity.openid, identity.unionid, "微信用户"
    user = await User.get_or_none(wechat_openid=openid)
    if user is None:
        try:
            user = await User.create(
                role=Role.RESIDENT,
                wechat_openid=openid,
                wechat_unionid=unionid,
                display_name=display,
            )
        except IntegrityError:  # signed in twice at once: the other request created it
            user = await User.get(wechat_openid=openid)
    elif unionid and user.wechat_unionid != unionid:
        user.wechat_unionid = unionid
    if not user.is_active:
        raise Unauthorized("账号已停用", code="account_disabled")
    user.last_login_at = ctx.clock.now()
    await user.save(update_fields=["last_login_at", "wechat_unionid"])
    return await issue_tokens(ctx=ctx, user=user)


async def sign_in_password(
    *, ctx: AppContext, username: str, password: str, client_ip: str
) -> TokenOut:
    """Staff and vendor sign-in, with lockouts counted before the check (``attempts``)."""
    attempt = SignInAttempts(ctx, username=username, address=client_ip)
    await attempt.reserve()
    user = await User.get_or_none(username=username)
    # Unknown accounts are verified against a dummy hash: the same time, in the same pool.
    valid = await passwords.verify(ctx.settings, user.password_hash if user else None, password)
    if user is None or not valid or not user.is_active:
        log.info("password sign-in refused")
        raise Unauthorized("用户名或密码错误", code="invalid_credentials")
    await attempt.succeeded()
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = await passwords.hash_(ctx.settings, password)
    user.last_login_at = ctx.clock.now()
    await user.save(update_fields=["last_login_at", "password_hash"])
    return await issue_tokens(ctx=ctx, user=user)


async def rotate_refresh_token(*, ctx: AppContext, refresh_token: str) -> TokenOut:
    """Swap a refresh token for a new pair; a reused token revokes its whole family."""
    now = ctx.clock.now()
    token = await RefreshToken.get_or_none(token_hash=digest(refresh_token)).select_related("user")
    if token is None:
        raise Unauthorized("刷新凭证无效", code="invalid_refresh_token")
    if token.revoked_at is not None:
        raise Unauthorized("登录已失效，请重新登录", code="session_revoked")
    if token.used_at is not None:
        await revoke_family(ctx=ctx, family=token.family, reason="refresh_token_reused")
        raise Unauthorized("刷新凭证已被使用，已注销该登录", code="refresh_token_reused")
    if token.expires_at <= now:
        raise Unauthorized("刷新凭证已过期，请重新登录", code="refresh_token_expired")
    if not token.user.is_active:
        raise Unauthorized("账号已停用", code="account_disabled")
    claimed = await RefreshToken.filter(id=token.id, used_at__isnull=True).update(used_at=now)
    if not claimed:  # a concurrent refresh won the race: treat it as reuse
        await revoke_family(ctx=ctx, family=token.family, reason="refresh_token_reused")
        raise Unauthorized("刷新凭证已被使用，已注销该登录", code="refresh_token_reused")
    return await issue_tokens(ctx=ctx, user=token.user, family=token.family)


async def revoke_family(*, ctx: AppContext, family: str, reason: str) -> None:
    """End a sign-in session: its refresh tokens and its outstanding access tokens."""
    await RefreshToken.filter(family=family, revoked_at__isnull=True).update(
        revoked_at=ctx.clock.now()
    )
    await revocations.publish(ctx=ctx, family=family)
    log.info("sign-in session revoked", extra={"reason": reason})


async def logout(*, ctx: AppContext, principal: Principal, refresh_token: str | None) -> None:
    """Revoke the caller's session (and the given refresh token's, if it is theirs)."""
    families = {principal.session} if principal.session else set()
    if refresh_token:
        token = await RefreshToken.get_or_none(token_hash=digest(refresh_token)).select_related(
            "user"
        )
        if token is not None and token.user.public_id == principal.user_id:
            families.add(token.family)
    for family in families:
        await revoke_family(ctx=ctx, family=family, reason="logout")


async def get_user_or_raise(public_id: str) -> User:
    user = await User.get_or_none(public_id=public_id)
    if user is None:
        raise NotFound("用户不存在", code="user_not_found")
    return user


async def create_staff_user(*, ctx: AppContext, actor: Principal, data: StaffUserCreate) -> User:
    """Create a console/API account for staff, a vendor member or an operator."""
    if data.role == Role.STREET_WORKER and not data.street_code:
        raise ValidationFailed(fields={"street_code": "required for street_worker"})
    try:
        user = await User.create(
            username=data.username,
            password_hash=await passwords.hash_(ctx.settings, data.password),
            role=data.role,
            display_name=data.display_name,
            street_code=data.street_code if data.role == Role.STREET_WORKER else None,
        )
    except IntegrityError:
        raise Conflict(
            "用户名已存在", code="username_taken", fields={"username": "taken"}
        ) from None
    await record(
        ctx=ctx,
        actor=actor,
        action="user.create",
        obj=("user", user.public_id),
        detail={"role": data.role.value},
    )
    return user


async def set_user_active(
    *, ctx: AppContext, actor: Principal, public_id: str, active: bool
) -> User:
    """Enable or disable an account; disabling ends all its sessions."""
    user = await get_user_or_raise(public_id)
    user.is_active = active
    await user.save(update_fields=["is_active"])
    if not active:
        families = (
            await RefreshToken.filter(user=user, revoked_at__isnull=True)
            .distinct()
            .values_list("family", flat=True)
        )
        for family in set(families):
            await revoke_family(ctx=ctx, family=str(family), reason="account_disabled")
        await ApiKey.filter(user=user, revoked_at__isnull=True).update(revoked_at=ctx.clock.now())
    await record(
        ctx=ctx,
        actor=actor,
        action="user.activate" if active else "user.deactivate",
        obj=("user", user.public_id),
    )
    return user


async def create_api_key(
    *, ctx: AppContext, actor: Principal, user_public_id: str, name: str
) -> ApiKeyOut:
    """Issue an operator key; the clear key is shown once, only its digest is kept."""
    user = await get_user_or_raise(user_public_id)
    if user.role != Role.VENUE_OPERATOR:
        raise ValidationFailed(fields={"user": "API keys are for venue_operator accounts"})
    prefix = new_secret(6)[:8]
    clear = f"sc_{prefix}_{new_secret(24)}"
    key = await ApiKey.create(prefix=prefix, key_hash=digest(clear), name=name, user=user)
    await record(
        ctx=ctx,
        actor=actor,
        action="api_key.create",
        obj=("api_key", key.public_id),
        detail={"user": user.public_id},
    )
    return ApiKeyOut(
        id=key.public_id, name=key.name, prefix=prefix, created_at=key.created_at, key=clear
    )


async def revoke_api_key(*, ctx: AppContext, actor: Principal, key_public_id: str) -> None:
    updated = await ApiKey.filter(public_id=key_public_id, revoked_at__isnull=True).update(
        revoked_at=ctx.clock.now()
    )
    if not updated:
        raise NotFound("API 密钥不存在或已吊销", code="api_key_not_found")
    await record(ctx=ctx, actor=actor, action="api_key.revoke", obj=("api_key", key_public_id))
