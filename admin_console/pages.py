"""``@page``: who may read a console page and who may change through it; CSRF; HTML errors.

Every console route is declared with ``@page(read=…, write=…)`` (or ``public=True``): GET and
HEAD need a role in ``read`` (or ``write``), every other method a role in ``write``. Not signed
in → redirect to the sign-in page (htmx: ``HX-Redirect``); signed in with another role → 403.
Each non-GET request must carry the session's CSRF token (form field ``csrf_token`` or header
``X-CSRF-Token``, which htmx sends from ``hx-headers`` on ``<body>``). The route also gets the
access declaration that the app's default-deny check reads (``backend.access.ACCESS_ATTR``).
"""

from __future__ import annotations

import hmac
import typing
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import wraps
from typing import Any
from urllib.parse import quote

from sanic import Request
from sanic.response import HTTPResponse, redirect
from sanic_ext.extensions.openapi import openapi

from admin_console import session as sessions
from admin_console.render import render
from backend.access import ACCESS_ATTR, Access, Principal
from backend.context import AppContext
from backend.errors import AppError
from backend.models import Role

PAGE_ATTR = "__console_page__"
SAFE_METHODS = frozenset({"GET", "HEAD"})

ADMIN = frozenset({Role.BUREAU_ADMIN})
CURATORS = frozenset({Role.CURATOR, Role.BUREAU_ADMIN})
CURATOR_ONLY = frozenset({Role.CURATOR})
JUDGES = frozenset({Role.JUDGE})
VENDORS = frozenset({Role.VENDOR})
VENUE_STAFF = frozenset({Role.VENUE_OPERATOR, Role.BUREAU_ADMIN})
STREET = frozenset({Role.STREET_WORKER})
CONSOLE_ROLES = frozenset(Role) - {Role.RESIDENT}

# The navigation: (label, path, roles that may read it).
NAV: tuple[tuple[str, str, frozenset[Role]], ...] = (
    ("首页", "/console/", CONSOLE_ROLES),
    ("数据看板", "/console/dashboard", CURATORS),
    ("征集活动", "/console/campaigns", CURATORS),
    ("审核队列", "/console/moderation", CURATORS),
    ("挑战策划", "/console/challenges", CURATORS),
    ("评审", "/console/judging", CURATORS | JUDGES),
    ("企业", "/console/vendors", ADMIN),
    ("账号与密钥", "/console/admin/users", ADMIN),
    ("Open311 客户端", "/console/admin/open311", ADMIN),
    ("搜索索引", "/console/admin/search-index", ADMIN),
    ("场所", "/console/venues", VENUE_STAFF),
    ("我的企业", "/console/vendor", VENDORS),
    ("居民信息", "/console/residents", STREET),
)


@dataclass(frozen=True)
class PageAccess:
    """Who may read a page and who may change through it (for the role tests)."""

    public: bool
    read: frozenset[Role]
    write: frozenset[Role]


@dataclass
class Page:
    """What a console handler receives besides the request."""

    request: Request
    ctx: AppContext
    session: sessions.ConsoleSession | None
    access: PageAccess
    _form: dict[str, str] | None = field(default=None, repr=False)
    dirty: bool = False  # the session changed (a flash message shown or added): save it

    @property
    def user(self) -> Principal:
        if self.session is None:  # pragma: no cover - guarded by @page
            raise RuntimeError("page without a session")
        return self.session.principal

    @property
    def may_write(self) -> bool:
        return self.session is not None and self.session.principal.role in self.access.write

    def can(self, roles: Iterable[Role]) -> bool:
        return self.session is not None and self.session.principal.role in frozenset(roles)

    @property
    def htmx(self) -> bool:
        return self.request.headers.get("hx-request") == "true"

    @property
    def form(self) -> dict[str, str]:
        """The posted form, one string per field (the last value wins)."""
        if self._form is None:
            data: dict[str, list[Any]] = dict(self.request.form or {})
            self._form = {k: str(v[-1]).strip() for k, v in data.items() if v}
        return self._form

    def form_list(self, name: str) -> list[str]:
        if self.request.form is None:
            return []
        values: list[Any] = self.request.form.getlist(name) or []
        return [str(v).strip() for v in values if str(v).strip()]

    def nav(self) -> list[tuple[str, str]]:
        if self.session is None:
            return []
        role = self.session.principal.role
        return [(label, path) for label, path, roles in NAV if role in roles]

    def render(self, template: str, *, status: int = 200, **values: Any) -> HTTPResponse:
        flash: list[str] = []
        if self.session is not None and self.session.flash and not self.htmx:
            flash, self.session.flash = self.session.flash, []
            self.dirty = True
        return render(
            template,
            status=status,
            page=self,
            session=self.session,
            flash=flash,
            csrf=self.session.csrf if self.session else "",
            path=self.request.path,
            **values,
        )

    async def redirect(self, url: str, *, flash: str | None = None) -> HTTPResponse:
        """After a change: back to a page (303), with a one-time message."""
        if flash and self.session is not None:
            self.session.flash.append(flash)
            await sessions.save(self.ctx, self.session)
        if self.htmx:
            return HTTPResponse(status=204, headers={"HX-Location": url})
        return redirect(url, status=303)


Handler = Callable[..., Awaitable[HTTPResponse]]


def _login_redirect(request: Request) -> HTTPResponse:
    target = "/console/login?next=" + quote(request.path, safe="/")
    if request.headers.get("hx-request") == "true":
        return HTTPResponse(status=401, headers={"HX-Redirect": target})
    return redirect(target, status=303)


def error_page(
    page: Page, status: int, message: str, fields: dict[str, str] | None = None
) -> HTTPResponse:
    """An error as a page, or (htmx) as a message in the page's flash area."""
    if page.htmx:
        response = page.render("_error.html", status=status, message=message, fields=fields or {})
        response.headers["HX-Retarget"] = "#flash"
        response.headers["HX-Reswap"] = "innerHTML"
        return response
    return page.render("error.html", status=status, message=message, fields=fields or {})


def _csrf_ok(request: Request, expected: str) -> bool:
    given = request.headers.get("x-csrf-token") or ""
    if not given and request.form is not None:
        given = str(request.form.get("csrf_token") or "")
    return bool(given) and hmac.compare_digest(given, expected)


def page(
    *,
    read: Iterable[Role] = (),
    write: Iterable[Role] = (),
    public: bool = False,
) -> Callable[[Handler], Handler]:
    """Declare a console page: who may read it, who may change through it."""
    write_roles = frozenset(write)
    read_roles = frozenset(read) | write_roles
    if not public and not read_roles:
        raise ValueError("a console page must say who may read it")
    access = PageAccess(public=public, read=read_roles, write=write_roles)
    declared = Access(public=True) if public else Access(signed_in=True, roles=read_roles)

    def decorate(func: Handler) -> Handler:
        @wraps(func)
        async def handler(request: Request, **path: Any) -> HTTPResponse:
            ctx: AppContext = request.app.ctx.app_context
            session = await sessions.load(request, ctx)
            current = Page(request=request, ctx=ctx, session=session, access=access)
            writing = request.method not in SAFE_METHODS
            if session is not None:
                request.ctx.principal = session.principal
            if not public:
                if session is None:
                    return _login_redirect(request)
                allowed = write_roles if writing else read_roles
                if session.principal.role not in allowed:
                    return error_page(current, 403, "您的账号无权访问此页面")
            if writing:
                # Signed-in forms: the session's token. Public forms (sign-in, vendor
                # registration): the double-submit cookie set with the form.
                expected = (
                    request.cookies.get(sessions.LOGIN_COOKIE) or ""
                    if public
                    else session.csrf
                    if session is not None
                    else ""
                )
                if not expected or not _csrf_ok(request, expected):
                    return error_page(current, 403, "表单已失效（CSRF 校验失败），请刷新页面后重试")
            try:
                response = await func(request, current, **path)
            except AppError as exc:
                response = error_page(current, exc.status_code, exc.message, exc.fields)
            if current.dirty and current.session is not None:
                await sessions.save(ctx, current.session)
            return response

        # HTML pages are not part of the API's OpenAPI document.
        excluded: Any = openapi.exclude()(handler)
        setattr(excluded, ACCESS_ATTR, declared)
        setattr(excluded, PAGE_ATTR, access)
        return typing.cast(Handler, excluded)

    return decorate
