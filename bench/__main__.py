"""Run the benchmarks on the embedded profile and print one line per measurement.

Each figure is requests (or operations) per second over a fixed count, measured in one run on
this machine; compare figures from the same run only.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

import httpx
from sanic import Sanic

from backend import db
from backend.app import create_app
from backend.config import Settings
from backend.kv import MemoryKeyValue
from backend.models import Role, User
from backend.security import encode_access_token

Sanic.test_mode = True


async def _timed(label: str, count: int, make_call, concurrency: int = 20) -> None:  # type: ignore[no-untyped-def]
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with semaphore:
            await make_call(i)

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(count)))
    elapsed = time.perf_counter() - started
    print(f"{label:<48} {count / elapsed:>10.0f} /s   ({count} in {elapsed:.2f} s)")


async def main() -> None:
    with tempfile.TemporaryDirectory(prefix="smartcircle-bench-") as tmp:
        settings = Settings(var_dir=Path(tmp), scheduler_enabled=False, log_level="WARNING")
        settings = settings.resolved()
        await db.migrate(settings)
        app = create_app(settings)
        app.asgi = True
        await app._startup()
        await app._server_event("init", "before")
        await app._server_event("init", "after")
        user = await User.create(role=Role.RESIDENT, wechat_openid="bench", display_name="bench")
        token, _ = encode_access_token(
            secret=settings.jwt_secret,
            user_id=user.public_id,
            role="resident",
            session="bench",
            street=None,
            ttl=3600,
        )
        headers = {"Authorization": f"Bearer {token}"}
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as http:

            async def health(_: int) -> None:
                (await http.get("/api/v1/health")).raise_for_status()

            async def me(_: int) -> None:
                (await http.get("/api/v1/me", headers=headers)).raise_for_status()

            await _timed("GET /api/v1/health (ASGI, embedded)", 2000, health)
            await _timed("GET /api/v1/me, token verified (ASGI, embedded)", 2000, me)
        kv = MemoryKeyValue(prefix="bench:")

        async def incr(i: int) -> None:
            await kv.zincrby("ranking", f"item-{i % 500}", 1)

        await _timed("in-process ranking zincrby", 100_000, incr, concurrency=100)
        await app._server_event("shutdown", "before")
        await app._server_event("shutdown", "after")


if __name__ == "__main__":
    asyncio.run(main())
