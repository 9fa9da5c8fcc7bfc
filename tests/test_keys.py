"""The one configured secret is never used three ways: tokens, cursors and vote origins each have
their own derived key, so a value made with one is refused (or does not match) under another."""

from __future__ import annotations

import base64
import json

from backend import paging
from backend.models import Role
from tests.crowdsource_helpers import create_campaign
from tests.factories import headers_for


def _resigned(cursor: str, secret: str) -> str:
    head = cursor.partition(".")[0]
    payload = json.loads(base64.urlsafe_b64decode(head + "=" * (-len(head) % 4)))
    return paging.encode_cursor(payload[1:], scope=payload[0], secret=secret)


async def test_cursors_are_signed_with_the_cursor_key_only(client, ctx):
    curator = await headers_for(client, Role.CURATOR)
    for _ in range(3):
        await create_campaign(client, curator, ctx)
    first = await client.get("/api/v1/campaigns", params={"limit": 1}, headers=curator)
    cursor = first.json()["next_cursor"]
    assert cursor
    assert cursor == _resigned(cursor, ctx.settings.cursor_key)  # signed with the cursor key
    ok = await client.get(
        "/api/v1/campaigns", params={"limit": 1, "cursor": cursor}, headers=curator
    )
    assert ok.status_code == 200
    for other in (ctx.settings.jwt_secret, ctx.settings.token_key, ctx.settings.origin_key):
        forged = await client.get(
            "/api/v1/campaigns",
            params={"limit": 1, "cursor": _resigned(cursor, other)},
            headers=curator,
        )
        assert forged.status_code == 400
        assert "cursor" in forged.json()["error"]["fields"]
