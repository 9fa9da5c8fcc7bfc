"""Command line: ``python -m server migrate | create-user | reindex | drain``.

``reindex`` builds a fresh Elasticsearch index from the database and swaps the alias to it (run it
once on a new cluster, or after a mapping change); ``drain`` applies pending outbox rows now. Both
need the services profile (``ELASTICSEARCH_URL``).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from backend.config import Settings
from backend.context import build_context
from backend.db import close_database
from backend.models import Role, User
from backend.security import hash_password
from server.orm import migrate, open_database


async def _migrate(settings: Settings) -> None:
    await migrate(settings)
    print(f"migrations applied ({'sqlite' if settings.is_sqlite else 'postgresql'})")


async def _create_user(settings: Settings, username: str, role: str, street: str | None) -> None:
    password = getpass.getpass("password: ")
    if len(password) < 10:
        raise SystemExit("password must have at least 10 characters")
    await open_database(settings)
    try:
        await User.create(
            username=username,
            password_hash=hash_password(password),
            role=Role(role),
            street_code=street,
        )
    finally:
        await close_database()
    print(f"created {role} {username}")


async def _search_index(settings: Settings, command: str) -> None:
    from search.index import drain, reindex

    if not settings.elasticsearch_url:
        raise SystemExit("ELASTICSEARCH_URL is not set: the database backend needs no index")
    ctx = build_context(settings)
    await open_database(settings)
    try:
        if command == "reindex":
            print(f"index {await reindex(ctx)} now behind the alias")
        else:
            print(f"{await drain(ctx)} outbox rows applied")
    finally:
        await close_database()
        await ctx.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m server")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations")
    create = sub.add_parser("create-user", help="create a staff account")
    create.add_argument("username")
    create.add_argument("role", choices=[r.value for r in Role if r != Role.RESIDENT])
    create.add_argument("--street")
    sub.add_parser("reindex", help="rebuild the Elasticsearch index and swap the alias")
    sub.add_parser("drain", help="apply pending index outbox rows now")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
    elif args.command == "create-user":
        asyncio.run(_create_user(settings, args.username, args.role, args.street))
    elif args.command in ("reindex", "drain"):
        asyncio.run(_search_index(settings, args.command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
