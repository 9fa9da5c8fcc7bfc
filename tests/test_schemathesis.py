"""Property-based API testing: schemathesis over the whole OpenAPI document, as every role.

A real server of this run's profile (``sanic server.app:create_app --factory`` on 127.0.0.1, its
own database on the embedded profile, the test PostgreSQL database with its own key-value and
index prefixes on the services profile) is seeded with staff accounts of every role, a campaign
collecting now with a pain point, a court with a unit and a booking. Then schemathesis' command
line runs, once per caller — anonymous, then signed in as each role through the real sign-in
routes — over the operations that caller may call, with the ``not_a_server_error`` check: any
5xx fails the test. The real ids of the seeded objects are offered to the path parameters (half
the time; the other half are generated), so operations reach their rules, not only their 404s.

Bounded: at most ``FUZZ_EXAMPLES`` cases per operation (10), each caller's run under
``ROLE_DEADLINE`` seconds; the whole test takes a few minutes on two cores. The accounts get a
raised sign-in failure limit so the fuzzer's wrong passwords cannot lock them, and sign-out is
left out (it would end the session the run signs in with).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from backend.clock import SHANGHAI
from backend.kv_redis import RedisKeyValue
from tests.conftest import PROFILE, RUN_ID
from tests.crowdsource_helpers import create_campaign, submit
from tests.search_fixtures import delete_test_indices
from tests.server_process import stop
from tests.wechat_stub import APPID, SECRET, WeChatStub

REPO = Path(__file__).resolve().parent.parent
FUZZ_EXAMPLES = int(os.environ.get("SMARTCIRCLE_FUZZ_EXAMPLES", "10"))
ROLE_DEADLINE = int(os.environ.get("SMARTCIRCLE_FUZZ_DEADLINE", "300"))  # one caller's run, s
REPORTS = os.environ.get("SMARTCIRCLE_FUZZ_REPORTS", "")  # a directory for HAR/NDJSON reports
PASSWORD = "fuzz-password-2026"  # noqa: S105 - a test account's
STAFF = ("street_worker", "judge", "vendor", "venue_operator", "curator", "bureau_admin")
CALLERS = ("anonymous", "resident", *STAFF)
# The server's own namespaces on the services profile (the suite's are test:{RUN_ID}: and
# test-{RUN_ID}).
FUZZ_KV_PREFIX = f"test:{RUN_ID}:fuzz:"
FUZZ_ES_PREFIX = f"test-{RUN_ID}-fuzz"
# Operations left out of signed-in runs: signing out ends the session the run signs in with.
SESSION_ENDING = {"logout"}

SEED_STAFF = textwrap.dedent(
    f"""
    import asyncio
    from backend import db
    from backend.config import Settings
    from backend.models import Role, User
    from backend.security import hash_password
    from server import orm

    async def main():
        settings = Settings.from_env()
        await orm.open_database(settings)
        password = hash_password({PASSWORD!r})
        for role in {STAFF!r}:
            await User.create(username="fuzz_" + role, password_hash=password, role=Role(role),
                              street_code="340104011" if role == "street_worker" else None,
                              display_name="fuzz_" + role)
        await db.close_database()

    asyncio.run(main())
    """
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(tmp_path: Path, wechat: WeChatStub) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTCIRCLE_", "PYTEST"))}
    env.update(
        SMARTCIRCLE_LOG_LEVEL="WARNING",
        SMARTCIRCLE_SCHEDULER="0",
        SMARTCIRCLE_DEMO_SIGNIN="1",
        SMARTCIRCLE_LOGIN_MAX_FAILURES="1000000",
        SMARTCIRCLE_ACCESS_TOKEN_TTL="3600",  # outlives a long run by hand
        SMARTCIRCLE_KV_PREFIX=FUZZ_KV_PREFIX,
        SMARTCIRCLE_ES_INDEX_PREFIX=FUZZ_ES_PREFIX,
        # Nothing leaves the machine: WeChat is the test stub.
        WECHAT_BASE_URL=wechat.base_url,
        WECHAT_APPID=APPID,
        WECHAT_SECRET=SECRET,
        WECHAT_TIMEOUT="10",  # the stub shares this machine with the fuzzer: no false outage
    )
    if PROFILE == "services":
        env.update(SMARTCIRCLE_PROFILE="services", DATABASE_URL=os.environ["TEST_DATABASE_URL"])
    else:
        for name in ("DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL"):
            env.pop(name, None)
        env.update(SMARTCIRCLE_PROFILE="embedded", SMARTCIRCLE_VAR_DIR=str(tmp_path))
    return env


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        args, env=env, cwd=REPO, capture_output=True, timeout=180, check=False, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


async def _wait_until_up(http: httpx.AsyncClient, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + 90
    while True:
        try:
            await http.get("/api/v1/health")
            return
        except httpx.TransportError:
            if time.monotonic() > deadline or process.poll() is not None:
                pytest.fail(f"server did not start: {log.read_text()[-3000:]}")
            await asyncio.sleep(0.2)


async def _sign_in(http: httpx.AsyncClient, role: str) -> dict[str, Any]:
    if role == "resident":
        response = await http.post("/api/v1/auth/wechat", json={"code": "dev:fuzz-resident"})
    else:
        response = await http.post(
            "/api/v1/auth/login", json={"username": f"fuzz_{role}", "password": PASSWORD}
        )
    assert response.status_code == 200, (role, response.text)
    body: dict[str, Any] = response.json()
    return body


async def _seed(http: httpx.AsyncClient, ctx, tokens: dict[str, str]) -> dict[str, list[str]]:
    """Objects for the path parameters to find, created through the server's own API."""

    def auth(role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {tokens[role]}"}

    ids: dict[str, list[str]] = {}
    campaign = await create_campaign(http, auth("bureau_admin"), ctx, title="模糊测试征集活动")
    ids["campaign_id"] = [campaign["id"]]
    item = await submit(http, auth("resident"), campaign["id"])
    ids["pain_point_id"] = [item["id"]]
    operator = (await http.get("/api/v1/me", headers=auth("venue_operator"))).json()["id"]
    venue = await http.post(
        "/api/v1/venues",
        headers=auth("bureau_admin"),
        json={
            "kind": "sports_venue",
            "name": "模糊测试羽毛球馆",
            "lat": 31.8206,
            "lng": 117.2272,
            "opening_hours": "Mo-Su 08:00-22:00",
            "attributes": {"sports": ["羽毛球"]},
            "operator_id": operator,
        },
    )
    assert venue.status_code == 201, venue.text
    ids["venue_id"] = [venue.json()["id"]]
    unit = await http.post(
        f"/api/v1/venues/{ids['venue_id'][0]}/units",
        headers=auth("venue_operator"),
        json={"name": "1号场", "price_text": "每小时 30 元"},
    )
    assert unit.status_code == 201, unit.text
    ids["unit_id"] = [unit.json()["id"]]
    tomorrow = (datetime.now(SHANGHAI) + timedelta(days=1)).replace(
        hour=10, minute=0, second=0, microsecond=0
    )
    booking = await http.post(
        "/api/v1/bookings",
        headers=auth("resident"),
        json={"unit_id": ids["unit_id"][0], "start": tomorrow.isoformat()},
    )
    assert booking.status_code == 201, booking.text
    ids["booking_id"] = [booking.json()["id"]]
    spare = await http.post(
        "/api/v1/admin/users",
        headers=auth("bureau_admin"),
        json={"username": "fuzz_target", "password": PASSWORD, "role": "curator"},
    )
    assert spare.status_code == 201, spare.text
    ids["user_id"] = [spare.json()["id"]]  # a user the fuzzer may deactivate: not one of its own
    return ids


async def _clean_up_services(ctx) -> None:
    """The server's own key-value namespace and indices (the suite cleans only its own)."""
    kv = RedisKeyValue.from_url(ctx.settings.redis_url, prefix=FUZZ_KV_PREFIX)
    try:
        await kv.clear_namespace()
    finally:
        await kv.close()
    if ctx.elastic is not None:
        await delete_test_indices(ctx.elastic.client, FUZZ_ES_PREFIX)
        await ctx.elastic.client.indices.delete(
            index=f"{FUZZ_ES_PREFIX}-pain-points", ignore_unavailable=True
        )


def _operations_for(document: dict[str, Any], caller: str) -> dict[str, Any]:
    """The document restricted to the operations this caller may call."""
    paths: dict[str, Any] = {}
    for path, methods in document["paths"].items():
        for method, operation in methods.items():
            access = operation["x-access"]
            if caller == "anonymous":
                wanted = access.get("public", False)
            else:
                roles = access.get("roles", [])
                wanted = (
                    caller in roles
                    or ("any" in roles and caller in ("resident", "street_worker"))
                    or (access.get("public", False) and caller == "bureau_admin")
                ) and operation["operationId"] not in SESSION_ENDING
            if wanted:
                paths.setdefault(path, {})[method] = operation
    return {**document, "paths": paths}


def _config(ids: dict[str, list[str]]) -> str:
    """schemathesis.toml: seeded ids offered to path parameters half the time."""
    lines = []
    for name, values in ids.items():
        lines.append(f"[dictionaries.{name}]\nvalues = {json.dumps(values)}\n")
    lines.append("[parameters]")
    for name in ids:
        lines.append(f'"path.{name}" = {{ dictionary = "{name}", probability = 0.5 }}')
    return "\n".join(lines) + "\n"


async def test_no_input_makes_a_server_error_for_any_role(app, ctx, wechat, tmp_path):
    env = _server_env(tmp_path, wechat)
    if PROFILE != "services":
        _run([sys.executable, "-m", "server", "migrate"], env)
    _run([sys.executable, "-c", SEED_STAFF], env)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as out:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sanic",
                "server.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--single-process",
            ],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    started = time.monotonic()
    failures: list[str] = []
    timings: dict[str, float] = {}
    try:
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            await _wait_until_up(http, server, log_path)
            signed = {role: await _sign_in(http, role) for role in ("resident", *STAFF)}
            tokens = {role: body["access_token"] for role, body in signed.items()}
            ids = await _seed(http, ctx, tokens)
            document = (await http.get("/docs/openapi.json")).json()
        (tmp_path / "schemathesis.toml").write_text(_config(ids))
        fuzz_env = {**env, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"}
        # The bureau admin last: it may rewrite what the others' runs rely on (a venue's operator).
        for caller in CALLERS:
            schema = tmp_path / f"openapi-{caller}.json"
            schema.write_text(json.dumps(_operations_for(document, caller)))
            args = [
                str(Path(sys.executable).parent / "schemathesis"),
                "--config-file",
                str(tmp_path / "schemathesis.toml"),
                "run",
                str(schema),
                "--url",
                base,
                "--checks",
                "not_a_server_error",
                "--max-examples",
                str(FUZZ_EXAMPLES),
                "--phases",
                os.environ.get("SMARTCIRCLE_FUZZ_PHASES", "fuzzing"),
                "--workers",
                "2",
                "--generation-database",
                "none",
                "--request-timeout",
                "20",
                # The caller's own credentials, not generated ones (a random X-Api-Key is a 401).
                "--generation-with-security-parameters",
                "false",
                "--seed",
                "20261130",
                "--no-color",
            ]
            if caller != "anonymous":
                args += ["--header", f"Authorization: Bearer {tokens[caller]}"]
            if REPORTS:  # every request and answer, for a closer look
                args += ["--report", "har,ndjson", "--report-dir", str(Path(REPORTS) / caller)]
            began = time.monotonic()
            done = await asyncio.to_thread(
                subprocess.run,
                args,
                env=fuzz_env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=ROLE_DEADLINE,
                check=False,
            )
            timings[caller] = round(time.monotonic() - began, 1)
            summary = [line for line in done.stdout.splitlines() if line.strip()][-12:]
            print(f"== {caller} ({timings[caller]} s)", *summary, sep="\n")
            if done.returncode != 0:
                failures.append(f"== {caller} ==\n{done.stdout[-6000:]}\n{done.stderr[-2000:]}")
    finally:
        stop(server, timeout=20)
        if PROFILE == "services":
            await _clean_up_services(ctx)
    output = log_path.read_text(errors="replace")
    print(f"schemathesis runs (s): {timings}, total {time.monotonic() - started:.0f} s")
    assert not failures, "\n".join(failures)
    assert "unhandled error" not in output, output[-5000:]
