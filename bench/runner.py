"""One bench run: build the data, start the server, drive every scenario, check, report.

The load generators (wrk, ``bench.pyload``) and the server are processes of their own; this
process only prepares the data, starts them one after another, and counts afterwards.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bench import checks, data, report, scenarios
from bench.ceilings import CEILING_OF, CEILING_SCENARIO, PG_TABLE, prepare_pg_table
from bench.config import REPO, BenchConfig
from bench.cpu import CpuShare, measured
from bench.figures import Figure
from bench.server import running_server
from bench.wrk import run_wrk, write_requests, wrk_binary


def _pyload(spec_path: Path, timeout: float) -> dict[str, Any]:
    done = subprocess.run(  # noqa: S603 - our own module
        [sys.executable, "-m", "bench.pyload", str(spec_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH-JSON "):
            return dict(json.loads(line.removeprefix("BENCH-JSON ")))
    raise RuntimeError(f"bench.pyload failed ({done.returncode}): {done.stderr[-1500:]}")


class Run:
    def __init__(self, config: BenchConfig, plan: data.Plan, base_url: str) -> None:
        self.config, self.plan, self.base_url = config, plan, base_url
        self.figures: list[Figure] = []
        self.checks: dict[str, Any] = {}
        self.titles: dict[str, str] = dict(scenarios.TITLES)

    def record(self, figure: Figure, cpu: CpuShare) -> Figure:
        figure.cpu = cpu.as_json()
        self.figures.append(figure)
        print(
            f"  {self.titles[figure.scenario][:52]:<52} c={figure.concurrency:<3}"
            f" {figure.rps:>9.1f}/s  p50 {figure.p50_ms:8.1f}  p95 {figure.p95_ms:8.1f}"
            f"  p99 {figure.p99_ms:8.1f} ms  errors {figure.errors}",
            flush=True,
        )
        return figure

    async def wrk(self, scenario: scenarios.WrkScenario) -> None:
        if not self.config.runs(scenario.key):
            return
        self.titles[scenario.key] = scenario.title
        url = self.base_url if scenario.target == "app" else self.config.elasticsearch_url
        path = write_requests(self.config.var_dir / f"{scenario.key}.requests", scenario.requests)
        await asyncio.to_thread(run_wrk, url, path, concurrency=16, seconds=self.config.warmup)
        for level in self.config.levels:
            with measured() as cpu:
                raw = await asyncio.to_thread(
                    run_wrk, url, path, concurrency=level, seconds=self.config.seconds
                )
            self.record(Figure.from_raw(scenario.key, level, raw, scenario.expect), cpu)

    async def pyload(self, spec: dict[str, Any]) -> dict[str, Any]:
        path = self.config.var_dir / f"{spec['kind']}.spec.json"
        path.write_text(json.dumps(spec), encoding="utf-8")
        timeout = float(spec.get("seconds", 0)) + 120
        return await asyncio.to_thread(_pyload, path, timeout)

    async def votes(self) -> None:
        start, accepted, refusals = 0, 0, Counter[str]()
        for level in self.config.vote_levels:
            with measured() as cpu:
                raw = await self.pyload(
                    {
                        "kind": "votes",
                        "url": self.base_url,
                        "tokens": self.plan.tokens,
                        "items": self.plan.hot_items,
                        "start": start,
                        "concurrency": level,
                        "seconds": self.config.seconds,
                    }
                )
            start = raw["taken"]
            accepted += self.record(Figure.from_raw("votes", level, raw, ("201",)), cpu).ok
            refusals.update(raw["refusals"])
        result = await checks.votes(self.config, self.plan, self.base_url, accepted)
        available = len(self.plan.tokens) * len(self.plan.hot_items)
        self.checks["votes"] = result | {
            "refused": dict(refusals),
            "pairs_used": start,
            "ran_out_of_voters": start >= available,
        }
        print(f"  votes check: {result}", flush=True)

    async def pg_ceiling(self) -> None:
        await prepare_pg_table(self.config.database_url)
        start = 0
        for level in self.config.vote_levels:
            with measured() as cpu:
                raw = await self.pyload(
                    {
                        "kind": "pg",
                        "dsn": self.config.database_url,
                        "table": PG_TABLE,
                        "people": self.plan.people,
                        "start": start,
                        "concurrency": level,
                        "seconds": self.config.seconds,
                    }
                )
            start = raw["taken"]
            self.record(Figure.from_raw("pg_insert", level, raw, ("inserted",)), cpu)

    async def booking_race(self) -> None:
        warm_up = scenarios.booking_race(self.plan, warm_up=True)
        await self.pyload({"kind": "burst", "url": self.base_url, "requests": warm_up})
        requests = scenarios.booking_race(self.plan)
        with measured() as cpu:
            raw = await self.pyload({"kind": "burst", "url": self.base_url, "requests": requests})
        self.record(Figure.from_raw("booking_race", len(requests), raw, ("201", "409")), cpu)
        self.checks["booking_race"] = result = await checks.booking(self.plan, raw)
        print(f"  booking race check: {result}", flush=True)

    def compare(self) -> None:
        by_key = {(f.scenario, f.concurrency): f for f in self.figures}
        for figure in self.figures:
            for ceiling in CEILING_OF.get(figure.scenario, ()):
                other = by_key.get((CEILING_SCENARIO[ceiling], figure.concurrency))
                if other is not None:
                    figure.compare(ceiling, other)


async def _measure(config: BenchConfig, began: float) -> tuple[data.Plan, Run]:
    async with data.store(config):
        plan = await data.build(config)
        print(f"  data: {plan.sizes()} ({time.time() - began:.0f} s)", flush=True)
        with running_server(config) as base_url:
            bench = Run(config, plan, base_url)
            for scenario in scenarios.before_votes(config, plan):
                await bench.wrk(scenario)
            if config.runs("votes"):
                await bench.votes()
            if config.profile == "services" and config.runs("pg_insert"):
                await bench.pg_ceiling()
            for scenario in scenarios.after_votes(plan):
                await bench.wrk(scenario)
            if config.runs("booking_race"):
                await bench.booking_race()
    bench.compare()
    return plan, bench


def run(config: BenchConfig) -> int:
    wrk_binary()
    began, machine = time.time(), report.machine()
    print(f"bench: {config.profile} profile, {config.variant} variant, {config.workers} worker(s)")
    config.var_dir.mkdir(parents=True, exist_ok=True)
    plan, bench = asyncio.run(_measure(config, began))
    paths = report.write(
        config,
        plan,
        bench.figures,
        bench.checks,
        began=began,
        machine_before=machine,
        titles=bench.titles,
    )
    print("report: " + ", ".join(str(p) for p in paths))
    return 0 if checks.exact(bench.checks) else 1
