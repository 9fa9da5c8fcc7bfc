"""``python -m residents rotate-keys [--status] [--batch N] | new-dev-key``.

``rotate-keys`` starts (or resumes) re-encrypting every stored value under the current key and
runs it here, printing its progress after each batch, while the app keeps serving;
``--status`` prints the latest rotation and how many rows are still under an old key.
``new-dev-key`` (development only) puts a new current key in the generated development key
ring, so a rotation can be tried locally; restart the app after it.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from backend.config import Settings
from backend.context import build_context
from backend.db import close_database, open_database
from backend.feature import FEATURE as CORE
from backend.features import model_apps
from residents.feature import FEATURE as RESIDENTS
from residents.models import KeyRotation
from residents.rotation import get_rotation, pending, rotation_out, run_rotation, start_rotation
from residents.settings import (
    RESIDENT_SETTINGS,
    ResidentSettings,
    add_development_key,
)


def _show(rotation: KeyRotation) -> None:
    out = rotation_out(rotation)
    print(
        f"rotation {out.id} to key {out.target_key_id}: {out.status.value}, "
        f"{out.done}/{out.total} rows ({out.percent}%)",
        flush=True,
    )


async def _rotate(settings: Settings, status_only: bool, batch: int | None) -> int:
    ctx = build_context(settings)
    ctx.provide(RESIDENT_SETTINGS, ResidentSettings.from_env(settings))
    await open_database(settings, model_apps((CORE, RESIDENTS)))
    try:
        ring = ctx.get(RESIDENT_SETTINGS).ring
        if status_only:
            try:
                _show(await get_rotation("latest"))
            except Exception:
                print("no rotation has run yet")
            print(f"current key {ring.current}; rows under an old key: {await pending(ring)}")
            return 0
        rotation = await start_rotation(ctx)
        _show(rotation)
        rotation = await run_rotation(ctx, rotation, batch=batch, progress=_show)
        _show(rotation)
        return 0 if rotation.status.value == "done" else 1
    finally:
        await close_database()
        await ctx.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m residents")
    sub = parser.add_subparsers(dest="command", required=True)
    rotate = sub.add_parser("rotate-keys", help="re-encrypt every value under the current key")
    rotate.add_argument("--status", action="store_true", help="only report progress")
    rotate.add_argument("--batch", type=int, default=None, help="rows per batch")
    sub.add_parser("new-dev-key", help="add a new current key to the development key ring")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.command == "new-dev-key":
        if settings.environment == "production":
            raise SystemExit("production keys come from SMARTCIRCLE_RESIDENT_KEYS")
        print(f"new current key {add_development_key(settings)}; restart the app, then rotate")
        return 0
    return asyncio.run(_rotate(settings, args.status, args.batch))


if __name__ == "__main__":
    sys.exit(main())
