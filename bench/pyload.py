"""The asyncio load generator: ``python -m bench.pyload SPEC.json`` (a process of its own).

Used where wrk cannot be: it stops sending at the deadline but lets the requests in flight finish,
so every request it sent has an answer it counted — which is what makes "accepted votes ==
database count == live counter" checkable. Kinds of spec:

* ``votes``: distinct (person, pain point) pairs, pair *n* being person ``n % P`` voting for hot
  item ``(n // P) % H``, from ``start`` on; answers how many pairs it used (``taken``);
* ``burst``: all requests at once, one connection each (the booking race);
* ``pg``: the votes ceiling, one plain ``INSERT`` per vote into a scratch table (asyncpg); pair
  *n* is (``n // P``, ``n % P``), so pairs never repeat however fast it goes.

It prints one ``BENCH-JSON`` line in the shape ``bench/figures.py`` reads, plus ``refusals``
(status and error code of unexpected answers).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg

from bench.figures import percentile

TIMEOUT_S = 10
RACE_TIMEOUT_S = 60  # every racer gets an answer, however slow: the race is judged on all of them


class Tally:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.refusals: Counter[str] = Counter()
        self.socket_errors = 0
        self.timeouts = 0

    async def time(self, call: Awaitable[tuple[str, str | None]]) -> None:
        began = time.perf_counter()
        try:
            status, refusal = await call
        except TimeoutError:
            self.timeouts += 1
            return
        except (aiohttp.ClientError, OSError):
            self.socket_errors += 1
            return
        self.latencies.append(time.perf_counter() - began)
        self.statuses[status] += 1
        if refusal:
            self.refusals[refusal] += 1

    def raw(self, duration: float, **extra: Any) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "duration_s": duration,
            "requests": len(ordered),
            "socket_errors": self.socket_errors,
            "timeouts": self.timeouts,
            "p50_ms": percentile(ordered, 50) * 1000,
            "p95_ms": percentile(ordered, 95) * 1000,
            "p99_ms": percentile(ordered, 99) * 1000,
            "statuses": dict(self.statuses),
            "refusals": dict(self.refusals),
        } | extra


async def _http(
    session: aiohttp.ClientSession, method: str, url: str, auth: str, body: str, expect: str
) -> tuple[str, str | None]:
    headers = {"Authorization": auth} if auth else {}
    if body:
        headers["Content-Type"] = "application/json"
    async with session.request(method, url, headers=headers, data=body or None) as response:
        text = await response.text()
    status = str(response.status)
    if status == expect:
        return status, None
    try:
        code = json.loads(text)["error"]["code"]
    except (ValueError, KeyError, TypeError):
        code = "?"
    return status, f"{status} {code}"


def _session(connections: int, timeout: float = TIMEOUT_S) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=connections),
        timeout=aiohttp.ClientTimeout(total=timeout),
    )


async def votes(spec: dict[str, Any]) -> dict[str, Any]:
    tokens, items = spec["tokens"], spec["items"]
    limit, people = len(tokens) * len(items), len(tokens)
    state = {"next": int(spec["start"])}
    tally = Tally()
    started = time.perf_counter()
    deadline = started + float(spec["seconds"])
    async with _session(spec["concurrency"]) as session:

        async def worker() -> None:
            while time.perf_counter() < deadline and state["next"] < limit:
                n = state["next"]
                state["next"] = n + 1
                url = f"{spec['url']}/api/v1/pain-points/{items[(n // people) % len(items)]}/vote"
                token = tokens[n % people]
                await tally.time(_http(session, "POST", url, token, "", "201"))

        await asyncio.gather(*(worker() for _ in range(spec["concurrency"])))
    return tally.raw(time.perf_counter() - started, taken=state["next"])


async def burst(spec: dict[str, Any]) -> dict[str, Any]:
    requests, base = spec["requests"], spec["url"]
    tally = Tally()
    async with _session(len(requests), RACE_TIMEOUT_S) as session:
        started = time.perf_counter()
        calls = [
            _http(session, r["method"], base + r["path"], r["auth"], r["body"], "201")
            for r in requests
        ]
        await asyncio.gather(*(tally.time(call) for call in calls))
        return tally.raw(time.perf_counter() - started)


async def pg(spec: dict[str, Any]) -> dict[str, Any]:
    concurrency, people = spec["concurrency"], spec["people"]
    state = {"next": int(spec["start"])}
    tally = Tally()
    pool = await asyncpg.create_pool(spec["dsn"], min_size=concurrency, max_size=concurrency)
    insert = f"INSERT INTO {spec['table']} (pain_point, person) VALUES ($1, $2)"  # noqa: S608
    try:
        started = time.perf_counter()
        deadline = started + float(spec["seconds"])

        async def worker() -> None:
            async with pool.acquire() as conn:

                async def one(n: int) -> tuple[str, str | None]:
                    try:
                        await conn.execute(insert, n // people, n % people)
                    except asyncpg.UniqueViolationError:
                        return "unique_violation", "unique_violation"
                    return "inserted", None

                while time.perf_counter() < deadline:
                    n = state["next"]
                    state["next"] = n + 1
                    await tally.time(one(n))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return tally.raw(time.perf_counter() - started, taken=state["next"])
    finally:
        await pool.close()


KINDS = {"votes": votes, "burst": burst, "pg": pg}


def main(argv: list[str]) -> int:
    spec = json.loads(Path(argv[1]).read_text(encoding="utf-8"))
    raw = asyncio.run(KINDS[spec["kind"]](spec))
    print("BENCH-JSON " + json.dumps(raw), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
