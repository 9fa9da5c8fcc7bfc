"""Password hashing off the event loop, in a small bounded thread pool.

An argon2id verification takes tens to hundreds of milliseconds of CPU (64 MiB, 3 passes, by
design). On the event loop, a burst of sign-ins stalls every other request of the worker: 30 at
once froze ``/api/v1/health`` for 12 s. argon2-cffi releases the GIL while hashing, so running it
in threads keeps the loop free. The pool is bounded (``SMARTCIRCLE_PASSWORD_HASH_WORKERS``;
default: the number of cores minus one, at least 1, at most 4), so a burst queues for the pool
instead of taking every core and every 64 MiB at once; sign-ins wait, other requests do not.
An unknown account is verified against a dummy hash in the same pool: the same cost.
"""

from __future__ import annotations

import asyncio
import os
import threading
from concurrent.futures import ThreadPoolExecutor

from backend.config import Settings
from backend.security import hash_password, verify_password

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_size = 0


def pool_size(settings: Settings) -> int:
    """Threads for password hashing: configured, or the cores minus one (1..4)."""
    if settings.password_hash_workers > 0:
        return settings.password_hash_workers
    return max(1, min(4, (os.cpu_count() or 2) - 1))


def _executor(settings: Settings) -> ThreadPoolExecutor:
    global _pool, _size
    size = pool_size(settings)
    with _lock:
        if _pool is None or _size != size:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="password-hash")
            _size = size
        return _pool


async def verify(settings: Settings, password_hash: str | None, password: str) -> bool:
    """:func:`backend.security.verify_password` in the hashing pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(settings), verify_password, password_hash, password)


async def hash_(settings: Settings, password: str) -> str:
    """:func:`backend.security.hash_password` in the hashing pool."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(_executor(settings), hash_password, password)
