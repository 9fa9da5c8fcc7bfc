"""Command line of search: ``python -m search reindex | drain``.

``reindex`` builds a fresh Elasticsearch index from the database and swaps the alias to it (run it
once on a new cluster, or after a mapping change); ``drain`` applies pending outbox rows now.
Both need the services profile (``ELASTICSEARCH_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from backend import db, elastic
from backend.access import AppContext
from backend.clock import Clock
from backend.config import Settings
from backend.kv import create_kv
from search.index import drain, reindex


async def _run(command: str, settings: Settings) -> str:
    if not settings.elasticsearch_url:
        raise SystemExit("ELASTICSEARCH_URL is not set: the database backend needs no index")
    kv = create_kv(settings.redis_url or None, prefix=settings.kv_prefix)
    client = elastic.create_client(settings)
    ctx = AppContext(settings=settings, kv=kv, clock=Clock(), extras={"es": client})
    await db.open_database(settings)
    try:
        if command == "reindex":
            return f"index {await reindex(ctx)} now behind the alias"
        return f"{await drain(ctx)} outbox rows applied"
    finally:
        await db.close_database()
        await client.close()
        await kv.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m search")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("reindex", help="rebuild the venue index from the database, swap the alias")
    sub.add_parser("drain", help="apply pending index outbox rows now")
    args = parser.parse_args(argv)
    print(asyncio.run(_run(args.command, Settings.from_env())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
