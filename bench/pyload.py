"""The asyncio load generator: ``python -m bench.pyload SPEC.json`` (a process of its own).

Used where wrk cannot be: it stops sending at the deadline but lets the requests in flight finish,
so every request it sent has an answer it counted — which is what makes "accepted votes ==
database count == live counter" checkable. Kinds of spec:

* ``votes``: distinct (person, pain point) pairs, pair *n* being person ``n % P`` voting for hot
  item ``(n // P) % H``, from ``start`` on; answers how many pairs it used (``taken``). Each
  connection is a plain keep-alive HTTP/1.1 socket (:class:`_Connection`, on uvloop): at
  thousands of requests a second a general client would take a good part of the cores the
  server under test shares with it;
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
from urllib.parse import urlsplit

import aiohttp
import asyncpg
import uvloop

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
        except (aiohttp.ClientError, OSError, asyncio.IncompleteReadError, ValueError):
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


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends a request and reads its answer (the
    server answers with Content-Length), reconnecting after an error."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _answer(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        self.writer.write(request)
        status = int((await self.reader.readuntil(b"\r\n"))[9:12])
        length = 0
        while (line := await self.reader.readuntil(b"\r\n")) != b"\r\n":
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        return status, await self.reader.readexactly(length)

    async def post(self, path: str, auth: str, expect: str) -> tuple[str, str | None]:
        request = (
            f"POST {path} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: {auth}\r\nContent-Length: 0\r\n\r\n"
        ).encode()
        try:
            status, body = await asyncio.wait_for(self._answer(request), TIMEOUT_S)
        except BaseException:
            self.close()
            raise
        if str(status) == expect:
            return expect, None
        try:
            code = json.loads(body)["error"]["code"]
        except (ValueError, KeyError, TypeError):
            code = "?"
        return str(status), f"{status} {code}"

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def votes(spec: dict[str, Any]) -> dict[str, Any]:
    tokens, items = spec["tokens"], spec["items"]
    limit, people = len(tokens) * len(items), len(tokens)
    state = {"next": int(spec["start"])}
    tally = Tally()
    started = time.perf_counter()
    deadline = started + float(spec["seconds"])

    async def worker() -> None:
        connection = _Connection(spec["url"])
        try:
            while time.perf_counter() < deadline and state["next"] < limit:
                n = state["next"]
                state["next"] = n + 1
                path = f"/api/v1/pain-points/{items[(n // people) % len(items)]}/vote"
                await tally.time(connection.post(path, tokens[n % people], "201"))
        finally:
            connection.close()

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
    raw = uvloop.run(KINDS[spec["kind"]](spec))
    print("BENCH-JSON " + json.dumps(raw), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
