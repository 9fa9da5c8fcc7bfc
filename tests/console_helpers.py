"""Signing in to the console from a test client (cookies, CSRF tokens)."""

from __future__ import annotations

import re

import httpx

from tests.console_world import PASSWORD

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


async def console_login(
    client: httpx.AsyncClient, username: str, password: str = PASSWORD
) -> httpx.Response:
    """Post the sign-in form with its double-submit token; the answer (303 on success)."""
    await client.get("/console/login")
    token = client.cookies.get("sc_console_login", path="/console") or ""
    return await client.post(
        "/console/login",
        data={"username": username, "password": password, "csrf_token": token, "next": "/console/"},
    )


async def csrf_of(client: httpx.AsyncClient) -> str:
    """The session's CSRF token, read from a page's form."""
    page = await client.get("/console/")
    found = CSRF.search(page.text)
    assert found, page.text[:500]
    return found.group(1)
