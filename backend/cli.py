"""Command line: ``python -m backend migrate | load-demo | create-user``."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from backend import db
from backend.config import Settings
from backend.models import Role, User
from backend.security import hash_password


async def _migrate(settings: Settings) -> None:
    await db.migrate(settings)
    print(f"migrations applied ({'sqlite' if settings.is_sqlite else 'postgresql'})")


async def _load_demo(settings: Settings) -> None:
    from fixtures.demo import load_demo

    await db.open_database(settings)
    try:
        summary = await load_demo(settings)
    finally:
        await db.close_database()
    for line in summary:
        print(line)


async def _create_user(settings: Settings, username: str, role: str, street: str | None) -> None:
    password = getpass.getpass("password: ")
    if len(password) < 10:
        raise SystemExit("password must have at least 10 characters")
    await db.open_database(settings)
    try:
        await User.create(
            username=username,
            password_hash=hash_password(password),
            role=Role(role),
            street_code=street,
        )
    finally:
        await db.close_database()
    print(f"created {role} {username}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="apply database migrations")
    sub.add_parser("load-demo", help="load the demo data (idempotent)")
    create = sub.add_parser("create-user", help="create a staff account")
    create.add_argument("username")
    create.add_argument("role", choices=[r.value for r in Role if r != Role.RESIDENT])
    create.add_argument("--street")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.command == "migrate":
        asyncio.run(_migrate(settings))
    elif args.command == "load-demo":
        asyncio.run(_load_demo(settings))
    elif args.command == "create-user":
        asyncio.run(_create_user(settings, args.username, args.role, args.street))
    return 0


if __name__ == "__main__":
    sys.exit(main())
