"""Console access: every page declares who may read it and who may change through it, and the
app enforces it (table-driven, every role); sign-in, CSRF, idle timeout, lockout, logout."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest

from admin_console import session as sessions
from admin_console import tasks
from admin_console.pages import PAGE_ATTR
from backend.models import Role, User, new_public_id
from residents.settings import key_ring
from tests.conftest import PROFILE
from tests.console_helpers import console_login, csrf_of
from tests.console_world import OTHER_STREET_USER, USERNAMES, World, seed

ADMIN = {Role.BUREAU_ADMIN}
CURATORS = {Role.CURATOR, Role.BUREAU_ADMIN}
CURATOR = {Role.CURATOR}
JUDGE = {Role.JUDGE}
VENDOR = {Role.VENDOR}
VENUE_STAFF = {Role.VENUE_OPERATOR, Role.BUREAU_ADMIN}
STREET = {Role.STREET_WORKER}
EVERYONE = set(USERNAMES)
NOBODY: set[Role] = set()
ROLES = sorted(USERNAMES)

# (method, route as declared, concrete path, who may read, who may change, status when allowed)
PAGES: list[tuple[str, str, str, set[Role], set[Role], int]] = [
    ("GET", "console/", "/console/", EVERYONE, NOBODY, 200),
    ("POST", "console/logout", "/console/logout", EVERYONE, EVERYONE, 303),
    ("GET", "console/dashboard/", "/console/dashboard?campaign={campaign}", CURATORS, NOBODY, 200),
    (
        "GET",
        "console/dashboard/data.json",
        "/console/dashboard/data.json?campaign={campaign}",
        CURATORS,
        NOBODY,
        200,
    ),
    ("GET", "console/campaigns/", "/console/campaigns", CURATORS, NOBODY, 200),
    ("POST", "console/campaigns/", "/console/campaigns/", CURATORS, CURATORS, 400),
    ("GET", "console/campaigns/new", "/console/campaigns/new", CURATORS, CURATORS, 200),
    (
        "GET",
        "console/campaigns/<campaign_id:str>",
        "/console/campaigns/{campaign}",
        CURATORS,
        CURATORS,
        200,
    ),
    (
        "POST",
        "console/campaigns/<campaign_id:str>",
        "/console/campaigns/{campaign}",
        CURATORS,
        CURATORS,
        400,
    ),
    (
        "GET",
        "console/campaigns/<campaign_id:str>/exports",
        "/console/campaigns/{campaign}/exports",
        CURATORS,
        CURATORS,
        200,
    ),
    (
        "POST",
        "console/campaigns/<campaign_id:str>/exports",
        "/console/campaigns/{campaign}/exports",
        CURATORS,
        CURATORS,
        200,
    ),
    (
        "GET",
        "console/campaigns/<campaign_id:str>/booklet",
        "/console/campaigns/{campaign}/booklet",
        CURATORS,
        NOBODY,
        200,
    ),
    (
        "POST",
        "console/campaigns/<campaign_id:str>/booklet.pdf",
        "/console/campaigns/{campaign}/booklet.pdf",
        CURATORS,
        CURATORS,
        200,
    ),
    (
        "GET",
        "console/campaigns/<campaign_id:str>/integrity",
        "/console/campaigns/{campaign}/integrity",
        CURATORS,
        CURATORS,
        200,
    ),
    (
        "POST",
        "console/campaigns/<campaign_id:str>/flags/<flag_id:str>",
        "/console/campaigns/{campaign}/flags/nope",
        CURATORS,
        CURATORS,
        400,
    ),
    (
        "GET",
        "console/moderation/",
        "/console/moderation?campaign={campaign}",
        CURATORS,
        CURATORS,
        200,
    ),
    (
        "POST",
        "console/moderation/<pain_point_id:str>",
        "/console/moderation/{spam}",
        CURATORS,
        CURATORS,
        400,
    ),
    (
        "GET",
        "console/challenges/",
        "/console/challenges?campaign={campaign}",
        CURATORS,
        CURATORS,
        200,
    ),
    (
        "POST",
        "console/challenges/shortlist",
        "/console/challenges/shortlist",
        CURATORS,
        CURATORS,
        404,
    ),
    (
        "GET",
        "console/challenges/new",
        "/console/challenges/new?campaign={campaign}",
        CURATORS,
        CURATORS,
        200,
    ),
    ("POST", "console/challenges/new", "/console/challenges/new", CURATORS, CURATORS, 404),
    (
        "GET",
        "console/challenges/<challenge_id:str>",
        "/console/challenges/{open_challenge}",
        CURATORS,
        CURATORS,
        200,
    ),
    (
        "POST",
        "console/challenges/<challenge_id:str>",
        "/console/challenges/{open_challenge}",
        CURATORS,
        CURATORS,
        400,
    ),
    (
        "POST",
        "console/challenges/<challenge_id:str>/review",
        "/console/challenges/{open_challenge}/review",
        CURATORS,
        CURATORS,
        409,
    ),
    (
        "POST",
        "console/challenges/<challenge_id:str>/publish",
        "/console/challenges/{open_challenge}/publish",
        ADMIN,
        ADMIN,
        409,
    ),
    (
        "POST",
        "console/challenges/<challenge_id:str>/return",
        "/console/challenges/{open_challenge}/return",
        ADMIN,
        ADMIN,
        409,
    ),
    ("GET", "console/judging", "/console/judging", CURATORS | JUDGE, NOBODY, 200),
    (
        "GET",
        "console/judging/<challenge_id:str>",
        "/console/judging/{judged_challenge}",
        CURATORS | JUDGE,
        CURATOR | JUDGE,
        200,
    ),
    (
        "POST",
        "console/judging/<challenge_id:str>/judges",
        "/console/judging/{judged_challenge}/judges",
        CURATOR,
        CURATOR,
        400,
    ),
    (
        "POST",
        "console/judging/<challenge_id:str>/conflicts",
        "/console/judging/{judged_challenge}/conflicts",
        JUDGE,
        JUDGE,
        400,
    ),
    (
        "GET",
        "console/proposals/<proposal_id:str>",
        "/console/proposals/{proposal}",
        CURATOR | JUDGE,
        CURATOR | JUDGE,
        200,
    ),
    (
        "POST",
        "console/proposals/<proposal_id:str>/score",
        "/console/proposals/{proposal}/score",
        JUDGE,
        JUDGE,
        400,
    ),
    (
        "POST",
        "console/proposals/<proposal_id:str>/decide",
        "/console/proposals/{proposal}/decide",
        CURATOR,
        CURATOR,
        400,
    ),
    ("GET", "console/admin/users", "/console/admin/users", ADMIN, ADMIN, 200),
    ("POST", "console/admin/users", "/console/admin/users", ADMIN, ADMIN, 400),
    (
        "POST",
        "console/admin/users/<user_id:str>/deactivate",
        "/console/admin/users/nope/deactivate",
        ADMIN,
        ADMIN,
        404,
    ),
    (
        "POST",
        "console/admin/users/<user_id:str>/keys",
        "/console/admin/users/nope/keys",
        ADMIN,
        ADMIN,
        404,
    ),
    (
        "POST",
        "console/admin/keys/<key_id:str>/revoke",
        "/console/admin/keys/nope/revoke",
        ADMIN,
        ADMIN,
        404,
    ),
    ("GET", "console/admin/open311", "/console/admin/open311", ADMIN, ADMIN, 200),
    ("GET", "console/admin/search-index", "/console/admin/search-index", ADMIN, ADMIN, 200),
    (
        "POST",
        "console/admin/search-index/rebuild",
        "/console/admin/search-index/rebuild",
        ADMIN,
        ADMIN,
        200 if PROFILE == "services" else 409,  # no Elasticsearch in the embedded profile
    ),
    ("POST", "console/admin/open311", "/console/admin/open311", ADMIN, ADMIN, 400),
    (
        "POST",
        "console/admin/open311/<client_id:str>/revoke",
        "/console/admin/open311/nope/revoke",
        ADMIN,
        ADMIN,
        404,
    ),
    ("GET", "console/vendors", "/console/vendors", ADMIN, ADMIN, 200),
    ("POST", "console/vendors/<vendor_id:str>", "/console/vendors/nope", ADMIN, ADMIN, 404),
    ("GET", "console/venues", "/console/venues", VENUE_STAFF, NOBODY, 200),
    ("GET", "console/venues/new", "/console/venues/new", ADMIN, ADMIN, 200),
    ("POST", "console/venues/new", "/console/venues/new", ADMIN, ADMIN, 400),
    (
        "POST",
        "console/venues/hours-preview",
        "/console/venues/hours-preview",
        VENUE_STAFF,
        VENUE_STAFF,
        200,
    ),
    (
        "GET",
        "console/venues/<venue_id:str>",
        "/console/venues/{court}",
        VENUE_STAFF,
        VENUE_STAFF,
        200,
    ),
    (
        "POST",
        "console/venues/<venue_id:str>",
        "/console/venues/{court}",
        VENUE_STAFF,
        VENUE_STAFF,
        400,
    ),
    (
        "POST",
        "console/venues/<venue_id:str>/close",
        "/console/venues/{court}/close",
        ADMIN,
        ADMIN,
        400,
    ),
    (
        "POST",
        "console/venues/<venue_id:str>/reopen",
        "/console/venues/{court}/reopen",
        ADMIN,
        ADMIN,
        303,
    ),
    (
        "GET",
        "console/venues/<venue_id:str>/parking",
        "/console/venues/{parking}/parking",
        VENUE_STAFF,
        NOBODY,
        200,
    ),
    (
        "GET",
        "console/venues/<venue_id:str>/bookings",
        "/console/venues/{court}/bookings",
        VENUE_STAFF,
        VENUE_STAFF,
        200,
    ),
    (
        "POST",
        "console/venues/<venue_id:str>/blackouts",
        "/console/venues/{court}/blackouts",
        VENUE_STAFF,
        VENUE_STAFF,
        400,
    ),
    (
        "POST",
        "console/bookings/<booking_id:str>/check-in",
        "/console/bookings/nope/check-in",
        VENUE_STAFF,
        VENUE_STAFF,
        404,
    ),
    (
        "POST",
        "console/bookings/<booking_id:str>/no-show",
        "/console/bookings/nope/no-show",
        VENUE_STAFF,
        VENUE_STAFF,
        404,
    ),
    (
        "POST",
        "console/blackouts/<blackout_id:str>/delete",
        "/console/blackouts/nope/delete",
        VENUE_STAFF,
        VENUE_STAFF,
        404,
    ),
    ("GET", "console/vendor/", "/console/vendor", VENDOR, NOBODY, 200),
    (
        "GET",
        "console/vendor/challenges/<challenge_id:str>",
        "/console/vendor/challenges/{open_challenge}",
        VENDOR,
        VENDOR,
        200,
    ),
    (
        "POST",
        "console/vendor/challenges/<challenge_id:str>",
        "/console/vendor/challenges/{open_challenge}",
        VENDOR,
        VENDOR,
        400,
    ),
    (
        "POST",
        "console/vendor/challenges/<challenge_id:str>/withdraw",
        "/console/vendor/challenges/{open_challenge}/withdraw",
        VENDOR,
        VENDOR,
        303,
    ),
    ("GET", "console/residents", "/console/residents", STREET, STREET, 200),
    ("POST", "console/residents/search", "/console/residents/search", STREET, STREET, 400),
    ("GET", "console/residents/lists", "/console/residents/lists", STREET, NOBODY, 200),
    (
        "GET",
        "console/residents/lists/export.xlsx",
        "/console/residents/lists/export.xlsx",
        STREET,
        NOBODY,
        200,
    ),
    ("POST", "console/residents/id-check", "/console/residents/id-check", STREET, STREET, 200),
    ("GET", "console/residents/new", "/console/residents/new", STREET, STREET, 200),
    ("POST", "console/residents/new", "/console/residents/new", STREET, STREET, 400),
    (
        "GET",
        "console/residents/<resident_id:str>",
        "/console/residents/{resident}",
        STREET,
        STREET,
        200,
    ),
    (
        "POST",
        "console/residents/<resident_id:str>",
        "/console/residents/{resident}",
        STREET,
        STREET,
        400,
    ),
    (
        "POST",
        "console/residents/<resident_id:str>/reveal",
        "/console/residents/{resident}/reveal",
        STREET,
        STREET,
        400,
    ),
    (
        "GET",
        "console/residents/<resident_id:str>/history",
        "/console/residents/{resident}/history",
        STREET,
        NOBODY,
        200,
    ),
    (
        "GET",
        "console/households/<household_id:str>",
        "/console/households/{household}",
        STREET,
        STREET,
        200,
    ),
    (
        "POST",
        "console/households/<household_id:str>",
        "/console/households/{household}",
        STREET,
        STREET,
        400,
    ),
    ("GET", "console/residents/import", "/console/residents/import", STREET, STREET, 200),
    ("POST", "console/residents/import", "/console/residents/import", STREET, STREET, 400),
    (
        "GET",
        "console/residents/imports/<import_id:str>",
        "/console/residents/imports/nope",
        STREET,
        NOBODY,
        404,
    ),
    (
        "GET",
        "console/residents/imports/<import_id:str>/errors.xlsx",
        "/console/residents/imports/nope/errors.xlsx",
        STREET,
        NOBODY,
        404,
    ),
    (
        "GET",
        "console/residents/<resident_id:str>/forms/<template:str>",
        "/console/residents/{resident}/forms/home_visit",
        STREET,
        STREET,
        200,
    ),
    (
        "POST",
        "console/residents/<resident_id:str>/forms/<template:str>",
        "/console/residents/{resident}/forms/home_visit",
        STREET,
        STREET,
        400,
    ),
    ("GET", "console/tasks/<task_id:str>", "/console/tasks/nope", EVERYONE, NOBODY, 404),
    (
        "GET",
        "console/tasks/<task_id:str>/download",
        "/console/tasks/nope/download",
        EVERYONE,
        NOBODY,
        404,
    ),
]
PUBLIC = {
    ("GET", "console/login"),
    ("POST", "console/login"),
    ("GET", "console/vendor/register"),
    ("POST", "console/vendor/register"),
    ("GET", "console/assets/<name:path>"),
}


def _url(template: str, world: World) -> str:
    return template.format(
        campaign=world.campaign,
        spam=world.submitted[3],
        open_challenge=world.open_challenge,
        judged_challenge=world.judged_challenge,
        proposal=world.proposal,
        court=world.court,
        parking=world.parking,
        resident=world.resident,
        household=world.household,
    )


@pytest.fixture
async def world(app) -> World:
    return await seed(ring=key_ring(app.ctx.app_context))


@pytest.fixture
async def clients(app, world) -> AsyncIterator[dict[Role, tuple[httpx.AsyncClient, str]]]:
    """One console client per role with a session made as sign-in makes it (sign-in itself,
    with its password hashing, is tested below), and its CSRF token."""
    ctx = app.ctx.app_context
    opened: dict[Role, tuple[httpx.AsyncClient, str]] = {}
    for role in ROLES:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://testserver",  # type: ignore[arg-type]
        )
        user = await User.get(username=USERNAMES[role])
        session = await sessions.create(ctx, user=user, family=new_public_id())
        client.cookies.set(sessions.COOKIE, session.sid, domain="testserver.local", path="/console")
        opened[role] = (client, session.csrf)
    yield opened
    for client, _ in opened.values():
        await client.aclose()


def _routes(app) -> dict[tuple[str, str], object]:
    found = {}
    for route in app.router.routes:
        if route.path.startswith("console"):
            for method in route.methods - {"HEAD", "OPTIONS"}:
                found[(method, route.path.rstrip("/"))] = route.handler
    return found


def test_every_console_route_is_in_the_role_table(app) -> None:
    routes = _routes(app)
    table = {(m, r.rstrip("/")) for m, r, *_ in PAGES}
    assert set(routes) == table | PUBLIC, set(routes) ^ (table | PUBLIC)
    for method, route, _path, read, write, _ok in PAGES:
        declared = getattr(routes[(method, route.rstrip("/"))], PAGE_ATTR)
        assert declared.read == frozenset(read | write), route
        assert declared.write == frozenset(write), route


@pytest.mark.parametrize(
    ("method", "route", "path", "read", "write", "ok"),
    PAGES,
    ids=[f"{m} {p}" for m, _r, p, *_ in PAGES],
)
async def test_page_roles(client, clients, world, method, route, path, read, write, ok) -> None:
    url = _url(path, world)
    allowed = read if method == "GET" else write
    # Not signed in: to the sign-in page.
    anonymous = await client.request(method, url)
    assert anonymous.status_code == 303, anonymous.text
    assert anonymous.headers["location"].startswith("/console/login")
    for role in ROLES:
        http, csrf = clients[role]
        if method == "GET":
            response = await http.get(url)
        else:
            response = await http.post(url, data={"csrf_token": csrf})
        expected = ok if role in allowed else 403
        assert response.status_code == expected, (role, response.text[-800:])
        if expected == 403:
            assert "无权访问" in response.text
        if method == "POST" and route == "console/logout" and role in allowed:
            clients[role] = (http, "")  # signed out
    await asyncio.gather(*list(tasks._RUNNING))  # long operations started here end here


async def test_sign_in_sets_a_safe_cookie_and_pages_a_strict_policy(client, world) -> None:
    response = await console_login(client, USERNAMES[Role.CURATOR])
    assert response.status_code == 303
    cookie = response.headers.get_list("set-cookie")
    session_cookie = next(c for c in cookie if c.startswith("sc_console="))
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie
    assert "Path=/console" in session_cookie
    page = await client.get("/console/campaigns")
    csp = page.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp and "unsafe" not in csp
    assert "<script>" not in page.text and " on" + "click=" not in page.text
    assert page.headers["x-frame-options"] == "DENY"


async def test_posts_need_the_session_csrf_token(client, world) -> None:
    await console_login(client, USERNAMES[Role.BUREAU_ADMIN])
    without = await client.post("/console/venues/" + world.court + "/reopen")
    assert without.status_code == 403 and "CSRF" in without.text
    wrong = await client.post(
        "/console/venues/" + world.court + "/reopen", headers={"X-CSRF-Token": "x" * 43}
    )
    assert wrong.status_code == 403
    token = await csrf_of(client)
    ok = await client.post(
        "/console/venues/" + world.court + "/reopen", headers={"X-CSRF-Token": token}
    )
    assert ok.status_code == 303
    # The sign-in form has its own double-submit token.
    fresh = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with fresh:
        forged = await fresh.post(
            "/console/login", data={"username": "c_admin", "password": "x", "csrf_token": "forged"}
        )
        assert forged.status_code == 403


async def test_idle_sessions_end(client, ctx, world) -> None:
    await console_login(client, USERNAMES[Role.CURATOR])
    assert (await client.get("/console/campaigns")).status_code == 200
    ctx.clock.advance(29 * 60)
    assert (await client.get("/console/campaigns")).status_code == 200
    ctx.clock.advance(31 * 60)
    gone = await client.get("/console/campaigns")
    assert gone.status_code == 303 and gone.headers["location"].startswith("/console/login")


async def test_the_same_lockout_as_the_api(client, ctx, world) -> None:
    for _ in range(ctx.settings.login_max_failures):
        failed = await console_login(client, USERNAMES[Role.JUDGE], password="wrong-password")
        assert failed.status_code == 401 and "用户名或密码错误" in failed.text
    locked = await console_login(client, USERNAMES[Role.JUDGE])
    assert locked.status_code == 429 and "Retry-After" in locked.headers
    api = await client.post(
        "/api/v1/auth/login",
        json={"username": USERNAMES[Role.JUDGE], "password": "console-pass-2026"},
    )
    assert api.status_code == 429


async def test_logout_and_deactivation_end_the_session(app, client, world) -> None:
    await console_login(client, USERNAMES[Role.JUDGE])
    token = await csrf_of(client)
    out = await client.post("/console/logout", data={"csrf_token": token})
    assert out.status_code == 303
    assert (await client.get("/console/judging")).status_code == 303
    # A disabled account's console session ends at once.
    await console_login(client, USERNAMES[Role.JUDGE])
    assert (await client.get("/console/judging")).status_code == 200
    admin = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with admin:
        await console_login(admin, USERNAMES[Role.BUREAU_ADMIN])
        judge = await User.get(username=USERNAMES[Role.JUDGE])
        done = await admin.post(
            f"/console/admin/users/{judge.public_id}/deactivate",
            data={"csrf_token": await csrf_of(admin)},
        )
        assert done.status_code == 303
    assert (await client.get("/console/judging")).status_code == 303


async def test_a_street_worker_of_another_street_finds_nothing_of_this_street(
    client, world
) -> None:
    """The service's street scoping reaches the console: another street's resident, household
    and import are "not found" (the same 404 as an id that does not exist), for reading, editing,
    revealing and forms alike, and never appear in a list or a search."""
    await console_login(client, OTHER_STREET_USER)
    token = await csrf_of(client)
    resident, household = world.resident, world.household
    for url in (
        f"/console/residents/{resident}",
        f"/console/households/{household}",
        f"/console/residents/{resident}/forms/home_visit",
        f"/console/residents/{resident}/history",
        f"/console/residents/new?household={household}",
    ):
        response = await client.get(url)
        assert response.status_code == 404, (url, response.status_code)
        assert "张建国" not in response.text
    edit = {
        "csrf_token": token,
        "community": "三里庵社区",
        "name": "改名",
        "relation": "head",
        "tags": "veteran",
    }
    for url, data in (
        (f"/console/residents/{resident}", edit),
        (f"/console/residents/{resident}/reveal", {"field": "id_number", "reason": "核对身份信息"}),
        (f"/console/residents/{resident}/forms/home_visit", {"typed.situation": "x"}),
        (f"/console/households/{household}", {"address": "别处 1 号"}),
    ):
        response = await client.post(url, data={"csrf_token": token, **data})
        assert response.status_code == 404, (url, response.text[-500:])
        assert "340104195003070138" not in response.text
    # Their own list has their own resident only; an exact search by name finds nobody here.
    listing = await client.get("/console/residents")
    assert "王其他" in listing.text and "张建国" not in listing.text
    found = await client.post(
        "/console/residents/search", data={"csrf_token": token, "name": "张建国"}
    )
    assert found.status_code == 200 and "查找结果：0 人" in found.text
    assert resident not in found.text and "没有找到符合条件的居民" in found.text
    # Nothing changed, and the street's own worker still sees the resident as it was.
    mine = httpx.AsyncClient(transport=client._transport, base_url="http://testserver")
    async with mine:
        await console_login(mine, USERNAMES[Role.STREET_WORKER])
        page = await mine.get(f"/console/residents/{resident}")
        assert page.status_code == 200 and "张建国" in page.text and "改名" not in page.text
