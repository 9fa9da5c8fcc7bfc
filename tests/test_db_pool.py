"""PostgreSQL's pooled connections come back without a reset round trip, and still clean.

``backend.db.SessionlessConnection`` drops asyncpg's per-release reset query (the app keeps no
session state on a pooled connection); an open transaction is still rolled back on release.
"""

from __future__ import annotations

from tortoise import connections

from backend.db import SessionlessConnection, connection_config
from tests.conftest import PROFILE
from venues.models import Book


async def test_released_connections_are_not_reset_but_transactions_are_rolled_back(ctx):
    config = connection_config(ctx.settings)
    if PROFILE == "embedded":
        assert isinstance(config, str) and config.startswith("sqlite")
        return
    assert isinstance(config, dict)
    assert config["credentials"]["connection_class"] is SessionlessConnection
    pool = connections.get("default")._pool
    sent: list[str] = []
    async with pool.acquire() as raw:
        assert isinstance(raw, SessionlessConnection)
        assert raw.get_reset_query() == ""
        raw.add_query_logger(lambda record: sent.append(record.query))
        await raw.execute("BEGIN")
        await raw.execute(
            "INSERT INTO venues_book (isbn13, title, author, publisher, created_at)"
            " VALUES ('9787000099999', '未提交', '某人', '', now())"
        )
    # Released inside its transaction: rolled back, and nothing else was sent.
    assert sent[-1] == "ROLLBACK", sent
    assert not any("RESET ALL" in query for query in sent)
    assert not await Book.filter(isbn13="9787000099999").exists()
    assert await Book.all().count() == 0
