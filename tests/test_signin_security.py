"""Password sign-in under attack: attempts counted before they are checked, lockouts that do not
shut out everyone behind one address, and hashing that cannot starve other requests."""

from __future__ import annotations

import asyncio
import math
import statistics
import threading
import time
from collections import Counter

import httpx
import pytest

from backend.auth import passwords
from backend.auth.attempts import address_scope
from backend.models import Role
from tests.factories import PASSWORD, make_user

LOGIN = "/api/v1/auth/login"


def from_address(app, address: str) -> httpx.AsyncClient:
    """A client whose requests come from ``address`` (the ASGI scope's client)."""
    transport = httpx.ASGITransport(app=app, client=(address, 40000))  # type: ignore[arg-type]
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def attempt(client: httpx.AsyncClient, username: str, password: str) -> int:
    response = await client.post(LOGIN, json={"username": username, "password": password})
    return response.status_code


@pytest.fixture
def limits(ctx):
    original = ctx.settings

    def apply(**update: int) -> None:
        ctx.settings = original.model_copy(update={"login_lockout_seconds": 600} | update)

    yield apply
    ctx.settings = original


async def test_concurrent_wrong_passwords_are_counted_before_they_are_checked(client, ctx, limits):
    limits(login_max_failures=5)
    await make_user(Role.CURATOR, username="target")
    codes = await asyncio.gather(*(attempt(client, "target", f"guess-{i:04d}") for i in range(30)))
    counted = Counter(codes)
    assert set(counted) <= {401, 429}, counted
    assert counted[401] <= 5, counted
    assert counted[429] >= 25, counted
    # … and the right password is refused too until the window has passed.
    assert await attempt(client, "target", PASSWORD) == 429, counted


async def test_a_locked_account_is_locked_only_for_the_address_that_guessed(app, ctx, limits):
    limits(login_max_failures=3)
    await make_user(Role.CURATOR, username="teacher")
    await make_user(Role.CURATOR, username="colleague")
    async with (
        from_address(app, "203.0.113.7") as school,
        from_address(app, "198.51.100.2") as home,
    ):
        for _ in range(3):
            assert await attempt(school, "teacher", "wrong-password") == 401
        assert await attempt(school, "teacher", PASSWORD) == 429
        # Everyone else behind the school's address still signs in …
        assert await attempt(school, "colleague", PASSWORD) == 200
        # … and so does the teacher from home.
        assert await attempt(home, "teacher", PASSWORD) == 200


async def test_guessing_one_account_from_many_addresses_locks_it_everywhere(app, ctx, limits):
    limits(login_max_failures=3, login_account_max_failures=4)
    await make_user(Role.BUREAU_ADMIN, username="boss")
    for i in range(4):
        async with from_address(app, f"192.0.2.{10 + i}") as bot:
            assert await attempt(bot, "boss", "wrong-password") == 401
    async with from_address(app, "192.0.2.99") as fresh:
        assert await attempt(fresh, "boss", PASSWORD) == 429


async def test_one_address_has_a_much_higher_ceiling_over_all_accounts(app, ctx, limits):
    limits(login_max_failures=3, login_address_max_failures=6)
    names = [f"staff{i}" for i in range(8)]
    for name in names:
        await make_user(Role.CURATOR, username=name)
    async with from_address(app, "2001:db8:1:2::10") as office:
        for name in names[:6]:
            assert await attempt(office, name, "wrong-password") == 401
    # The same /64 is one address (an IPv6 subscriber gets the whole prefix).
    async with from_address(app, "2001:db8:1:2::ffff") as same_office:
        assert await attempt(same_office, names[6], PASSWORD) == 429
    async with from_address(app, "2001:db8:9:9::1") as elsewhere:
        assert await attempt(elsewhere, names[6], PASSWORD) == 200
    assert address_scope("2001:db8:1:2::10") == address_scope("2001:db8:1:2:ffff::1")
    assert address_scope("203.0.113.7") == "203.0.113.7"


async def test_defaults_keep_the_address_ceiling_far_above_the_account_limit(ctx):
    settings = ctx.settings
    assert settings.login_address_max_failures >= 20 * settings.login_max_failures
    assert settings.login_account_max_failures > settings.login_max_failures


async def test_passwords_are_checked_in_the_hashing_pool_unknown_users_too(client, monkeypatch):
    await make_user(Role.CURATOR, username="known")
    threads: list[tuple[str | None, str]] = []
    original = passwords.verify_password

    def spy(password_hash: str | None, password: str) -> bool:
        threads.append((password_hash and "hash", threading.current_thread().name))
        return original(password_hash, password)

    monkeypatch.setattr(passwords, "verify_password", spy)
    assert await attempt(client, "known", "wrong-password") == 401
    assert await attempt(client, "nobody-at-all", "wrong-password") == 401
    assert [kind for kind, _ in threads] == ["hash", None]  # the unknown user is hashed too
    assert all(name.startswith("password-hash") for _, name in threads)


async def test_health_stays_responsive_during_a_burst_of_sign_ins(client, ctx, limits):
    """A burst of sign-ins (each an argon2 verification) while health is probed, real clock.

    A probe's latency counts from when it was due, so a blocked event loop (which would not even
    let the probe start) shows. The burst is sized to keep the hashing pool busy for about two
    seconds on this machine, and the probes run in the first second of it.
    """
    limits(login_max_failures=1000, login_address_max_failures=10000)
    began = time.perf_counter()
    passwords.verify_password(None, "calibrate")
    one = time.perf_counter() - began
    size = min(60, max(10, math.ceil(2.0 * passwords.pool_size(ctx.settings) / one)))
    start = time.perf_counter()
    burst = [
        asyncio.create_task(attempt(client, f"ghost{i}", "wrong-password")) for i in range(size)
    ]
    latencies: list[float] = []
    pending: list[int] = []

    async def probe(due: float) -> None:
        await asyncio.sleep(max(0.0, start + due - time.perf_counter()))
        response = await client.get("/api/v1/health")
        latencies.append(time.perf_counter() - (start + due))
        pending.append(sum(not task.done() for task in burst))
        assert response.status_code == 200

    await asyncio.gather(*(probe(0.05 + 0.1 * k) for k in range(10)))
    p50 = statistics.median(latencies)
    assert p50 < 0.5, (p50, latencies, size, one)
    assert max(latencies) < 2.0, (latencies, size, one)
    assert pending[-1] > 0, "the burst ended before the probes: not measured during it"
    assert set(await asyncio.gather(*burst)) == {401}


def test_the_hashing_pool_is_bounded(ctx):
    size = passwords.pool_size(ctx.settings)
    assert 1 <= size <= 4
    assert passwords.pool_size(ctx.settings.model_copy(update={"password_hash_workers": 2})) == 2
