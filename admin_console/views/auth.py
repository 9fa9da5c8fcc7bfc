"""Sign-in, sign-out, the home page and the console's static files."""

from __future__ import annotations

import mimetypes
from pathlib import Path

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, file, redirect
from sanic_ext.extensions.openapi import openapi

from admin_console import session as sessions
from admin_console.pages import CONSOLE_ROLES, Page, page
from backend.access import ACCESS_ATTR, Access
from backend.auth.service import revoke_family, sign_in_password
from backend.context import AppContext
from backend.errors import RateLimited, Unauthorized
from backend.models import User
from backend.security import TokenError, decode_access_token

bp = Blueprint("console_auth", url_prefix="/console")

ROOT = Path(__file__).resolve().parent.parent
NODE_MODULES = ROOT.parent / "node_modules"
# The only files served: our own and the npm packages' builds (never a CDN).
ASSETS: dict[str, Path] = {
    "console.css": ROOT / "static" / "console.css",
    "console.js": ROOT / "static" / "console.js",
    "charts.js": ROOT / "static" / "charts.js",
    "vendor/htmx.min.js": NODE_MODULES / "htmx.org" / "dist" / "htmx.min.js",
    "vendor/echarts.min.js": NODE_MODULES / "echarts" / "dist" / "echarts.min.js",
}


def _safe_next(value: str) -> str:
    """Only a console path, never another site."""
    if value.startswith("/console/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console/"


@bp.get("/login")
@page(public=True)
async def login_form(request: Request, page: Page) -> HTTPResponse:
    if page.session is not None:
        return redirect(_safe_next(request.args.get("next", "")), status=303)
    token = sessions.new_token()
    response = page.render(
        "login.html", login_csrf=token, next=request.args.get("next", ""), username="", error=""
    )
    sessions.set_cookie(response, request, sessions.LOGIN_COOKIE, token)
    return response


@bp.post("/login")
@page(public=True)
async def login(request: Request, page: Page) -> HTTPResponse:
    """Password sign-in through the API's own rule (lockout included), then a console session."""
    form = page.form
    ctx: AppContext = page.ctx
    username = form.get("username", "")[:64]
    retry_token = request.cookies.get(sessions.LOGIN_COOKIE) or sessions.new_token()

    def again(error: str, status: int, headers: dict[str, str] | None = None) -> HTTPResponse:
        response = page.render(
            "login.html",
            status=status,
            login_csrf=retry_token,
            next=form.get("next", ""),
            username=username,
            error=error,
        )
        response.headers.update(headers or {})
        sessions.set_cookie(response, request, sessions.LOGIN_COOKIE, retry_token)
        return response

    try:
        tokens = await sign_in_password(
            ctx=ctx,
            username=username,
            password=form.get("password", "")[:256],
            client_ip=request.remote_addr or request.ip or "unknown",
        )
    except RateLimited as exc:
        return again(exc.message, 429, {"Retry-After": str(exc.retry_after)})
    except Unauthorized as exc:
        return again(exc.message, 401)
    try:
        claims = decode_access_token(
            tokens.access_token, secret=ctx.settings.token_key, now=ctx.clock.time()
        )
    except TokenError:  # pragma: no cover - we just issued it
        return again("登录失败，请重试", 500)
    user = await User.get(public_id=tokens.user.id)
    if user.role not in CONSOLE_ROLES:
        await revoke_family(ctx=ctx, family=claims.session, reason="not_console_role")
        return again("该账号不能登录管理后台", 403)
    if page.session is not None:
        await sessions.destroy(ctx, page.session.sid)
    session = await sessions.create(ctx, user=user, family=claims.session)
    response = redirect(_safe_next(form.get("next", "")), status=303)
    sessions.set_cookie(response, request, sessions.COOKIE, session.sid)
    sessions.clear_cookie(response, request, sessions.LOGIN_COOKIE)
    return response


@bp.post("/logout")
@page(read=CONSOLE_ROLES, write=CONSOLE_ROLES)
async def logout(request: Request, page: Page) -> HTTPResponse:
    """End the console session and its token family."""
    assert page.session is not None
    await revoke_family(ctx=page.ctx, family=page.session.family, reason="logout")
    await sessions.destroy(page.ctx, page.session.sid)
    response = redirect("/console/login", status=303)
    sessions.clear_cookie(response, request, sessions.COOKIE)
    return response


@bp.get("/")
@page(read=CONSOLE_ROLES)
async def home(request: Request, page: Page) -> HTTPResponse:
    return page.render("home.html")


async def asset(request: Request, name: str) -> HTTPResponse:
    path = ASSETS.get(name)
    if path is None or not path.is_file():
        return HTTPResponse("not found", status=404, content_type="text/plain")
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    return await file(
        path,
        mime_type=mime,
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


public_asset = openapi.exclude()(asset)
setattr(public_asset, ACCESS_ATTR, Access(public=True))
bp.add_route(public_asset, "/assets/<name:path>", methods=["GET"], name="asset")
