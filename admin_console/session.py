"""Console sessions: a random id in an HttpOnly cookie, the state server-side in the KV store.

The cookie holds only the session id; the key-value store holds, under the id's SHA-256 digest,
who signed in (public id, role, street), the sign-in's token family (so logging out, or the
bureau disabling the account, ends it like an API session), the CSRF token (synchronizer token,
checked on every POST) and the times of sign-in and of the last request (idle timeout and
absolute lifetime, against the app clock).
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field

from sanic import Request
from sanic.response import HTTPResponse

from admin_console.settings import CONSOLE_SETTINGS
from backend.access import Principal
from backend.context import AppContext
from backend.models import Role, User
from backend.security import digest

COOKIE = "sc_console"
LOGIN_COOKIE = "sc_console_login"  # double-submit CSRF token of the sign-in form
PATH = "/console"


@dataclass
class ConsoleSession:
    sid: str
    user_id: str
    role: str
    display_name: str
    street: str | None
    family: str
    csrf: str
    created: float
    last_seen: float
    flash: list[str] = field(default_factory=list)

    @property
    def principal(self) -> Principal:
        return Principal(
            user_id=self.user_id, role=Role(self.role), session=self.family, street=self.street
        )


def _key(sid: str) -> str:
    return f"console:session:{digest(sid)}"


def new_token() -> str:
    return secrets.token_urlsafe(32)


async def save(ctx: AppContext, session: ConsoleSession) -> None:
    idle = ctx.get(CONSOLE_SETTINGS).idle_minutes * 60
    await ctx.kv.set(_key(session.sid), json.dumps(asdict(session)), ttl=idle)


async def create(ctx: AppContext, *, user: User, family: str) -> ConsoleSession:
    now = ctx.clock.time()
    session = ConsoleSession(
        sid=new_token(),
        user_id=user.public_id,
        role=user.role.value,
        display_name=user.display_name or user.username or "",
        street=user.street_code,
        family=family,
        csrf=new_token(),
        created=now,
        last_seen=now,
    )
    await save(ctx, session)
    return session


async def destroy(ctx: AppContext, sid: str) -> None:
    await ctx.kv.delete(_key(sid))


async def load(request: Request, ctx: AppContext) -> ConsoleSession | None:
    """The live session of this request, or None (absent, idle too long, expired, revoked)."""
    sid = request.cookies.get(COOKIE)
    if not sid or len(sid) > 100:
        return None
    raw = await ctx.kv.get(_key(sid))
    if raw is None:
        return None
    try:
        session = ConsoleSession(**json.loads(raw))
    except (TypeError, ValueError):
        await destroy(ctx, sid)
        return None
    settings = ctx.get(CONSOLE_SETTINGS)
    now = ctx.clock.time()
    expired = (
        now - session.last_seen > settings.idle_minutes * 60
        or now - session.created > settings.session_hours * 3600
    )
    revoked = await ctx.kv.exists(f"revoked-session:{session.family}")
    active = await User.filter(public_id=session.user_id, is_active=True).exists()
    if expired or revoked or not active:
        await destroy(ctx, sid)
        return None
    session.last_seen = now
    await save(ctx, session)
    return session


def set_cookie(response: HTTPResponse, request: Request, name: str, value: str) -> None:
    ctx: AppContext = request.app.ctx.app_context
    response.add_cookie(
        name,
        value,
        path=PATH,
        httponly=True,
        samesite="Lax",
        secure=ctx.settings.environment != "development",
    )


def clear_cookie(response: HTTPResponse, request: Request, name: str) -> None:
    ctx: AppContext = request.app.ctx.app_context
    response.add_cookie(
        name,
        "",
        path=PATH,
        max_age=0,
        httponly=True,
        samesite="Lax",
        secure=ctx.settings.environment != "development",
    )
