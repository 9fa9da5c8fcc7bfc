"""The report: JSON and a Markdown table under ``var/bench/``, and the run's section of
``docs/benchmarks.md`` (between ``<!-- bench:<profile>-<variant> -->`` markers; the other
sections stay as they are).
"""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.ceilings import SKIPPED_EMBEDDED
from bench.config import BenchConfig
from bench.cpu import ROLES
from bench.data import Plan
from bench.figures import Figure


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "cores": os.cpu_count(),
        "cpu": "?",
        "memory_gib": 0.0,
        "os": platform.platform(terse=True),
        "python": platform.python_version(),
        "load_average": [round(x, 2) for x in os.getloadavg()],
    }
    cpuinfo, meminfo = Path("/proc/cpuinfo"), Path("/proc/meminfo")
    if cpuinfo.exists():
        found = re.search(r"^model name\s*:\s*(.+)$", cpuinfo.read_text(), re.M)
        info["cpu"] = found.group(1).strip() if found else "?"
    if meminfo.exists():
        found = re.search(r"^MemTotal:\s*(\d+) kB", meminfo.read_text(), re.M)
        info["memory_gib"] = round(int(found.group(1)) / 2**20, 1) if found else 0.0
    wrk = shutil.which("wrk")
    if wrk:
        done = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)  # noqa: S603
        info["wrk"] = (done.stdout or done.stderr).split(" [")[0].strip()
    return info


def write(
    config: BenchConfig,
    plan: Plan,
    figures: list[Figure],
    checks: dict[str, Any],
    *,
    began: float,
    machine_before: dict[str, Any],
    titles: dict[str, str],
) -> list[Path]:
    """Write the JSON and Markdown of this run, and its section of docs/benchmarks.md."""
    result = {
        "profile": config.profile,
        "variant": config.variant,
        "workers": config.workers,
        "seconds_per_level": config.seconds,
        "levels": list(config.levels),
        "only": sorted(config.only) if config.partial else None,
        "started": time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(began)),
        "wall_s": round(time.time() - began),
        "machine": machine_before | {"load_average_after": machine()["load_average"]},
        "data": plan.sizes(),
        "figures": [{"title": titles.get(f.scenario, f.scenario)} | f.as_json() for f in figures],
        "checks": checks,
        "notes": [SKIPPED_EMBEDDED] if config.profile == "embedded" else [],
    }
    stem = config.out_dir / f"{config.profile}-{config.variant}"
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(began))
    paths = [stem.with_suffix(".json"), config.out_dir / f"{stem.name}-{stamp}.json"]
    for path in paths:
        path.write_text(json.dumps(result, ensure_ascii=False, indent=1), encoding="utf-8")
    markdown = render(result)
    paths.append(stem.with_suffix(".md"))
    paths[-1].write_text(markdown, encoding="utf-8")
    if config.docs is not None:
        update_docs(config.docs, f"{config.profile}-{config.variant}", markdown)
        paths.append(config.docs)
    return paths


def _busy(m: dict[str, Any]) -> str:
    if max(m["load_average"][0], m["load_average_after"][0]) < 0.5 * (m["cores"] or 1):
        return ""
    return " The machine was busy with other work while measured: compare within one run only."


def _ms(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def render(result: dict[str, Any]) -> str:
    """The Markdown of one run's JSON (``python -m bench.report FILE.json`` prints it again)."""
    m, d = result["machine"], result["data"]
    lines = [
        f"### {result['profile']} profile, {result['variant']} variant — {result['started']}",
        "",
        f"Machine: {m['cores']} cores ({m['cpu']}), {m['memory_gib']} GiB memory, {m['os']}, "
        f"Python {m['python']}; load average {m['load_average'][0]} before, "
        f"{m['load_average_after'][0]} after (1 min).{_busy(m)}",
        "",
        f"Server: `sanic bench.app:create_bench_app --factory --workers {result['workers']}` "
        f"on 127.0.0.1; load: {m.get('wrk', 'wrk')} and `bench.pyload` (asyncio); "
        f"{result['seconds_per_level']:g} s per scenario and connection count; "
        f"whole run {result['wall_s']} s.",
        "",
        f"Data: {d['venues']:,} venues, {d['titles']:,} titles, {d['holdings']:,} holdings, "
        f"{d['people']:,} residents, {d['pain_points']} pain points ({d['hot_pain_points']} hot).",
        "",
        "| scenario | conn. | ok/s | p50 ms | p95 ms | p99 ms | errors |",
        "|---|--:|--:|--:|--:|--:|--:|",
    ]
    for f in result["figures"]:
        lines.append(
            f"| {f['title']} | {f['concurrency']} | {f['rps']:,.1f} "
            f"| {_ms(f['p50_ms'])} | {_ms(f['p95_ms'])} | {_ms(f['p99_ms'])} | {f['errors']} |"
        )
    lines += [
        "",
        "Ratios to the ceilings, same run and connection count (ok/s: higher is better; "
        "latency: lower is better):",
        "",
        "| scenario | conn. | ceiling | ok/s × | p50 × | p95 × | p99 × |",
        "|---|--:|---|--:|--:|--:|--:|",
    ]
    for f in result["figures"]:
        for name, r in f["ratios"].items():
            lines.append(
                f"| {f['title']} | {f['concurrency']} | {name} "
                f"| {r['rps']:.3f} | {r['p50']:.2f} | {r['p95']:.2f} | {r['p99']:.2f} |"
            )
    lines += _cpu_table(result)
    lines += ["", *_checks(result["checks"]), *(f"- {note}" for note in result["notes"]), ""]
    return "\n".join(lines)


def _cpu_table(result: dict[str, Any]) -> list[str]:
    """Cores each role used while a figure was measured (``bench/cpu.py``)."""
    measured = [f for f in result["figures"] if f.get("cpu")]
    if not measured:
        return []
    cores = result["machine"]["cores"]
    lines = [
        "",
        f"Where the cores went while measured (cores used, of {cores}; busy: share of all "
        "cores not idle; load: wrk or `bench.pyload`; other: the rest of the machine):",
        "",
        "| scenario | conn. | busy | " + " | ".join(ROLES) + " |",
        "|---|--:|--:|" + "--:|" * len(ROLES),
    ]
    for f in measured:
        cpu = f["cpu"]
        lines.append(
            f"| {f['title']} | {f['concurrency']} | {cpu['busy']:.0%} | "
            + " | ".join(f"{cpu.get(role, 0.0):.2f}" for role in ROLES)
            + " |"
        )
    return lines


def _checks(checks: dict[str, Any]) -> list[str]:
    lines = []
    if "votes" in checks:
        lines.append(_votes_line(checks["votes"]))
    if "booking_race" in checks:
        b = checks["booking_race"]
        lines.append(
            f"- Booking race: {b['racers']} residents, {b['created']} booking(s) created, "
            f"{b['bookings_in_database']} in the database, {b['unanswered']} unanswered, refused: "
            f"{', '.join(f'{k}: {n}' for k, n in b['refused'].items()) or 'none'} — "
            f"**{'exactly one' if b['exactly_one'] else 'NOT exactly one'}**."
        )
    return lines


def _votes_line(v: dict[str, Any]) -> str:
    live = f"{v['live_counter_api']:,} on the live counter (API)"
    if "live_counter_redis" in v:
        live += f", {v['live_counter_redis']:,} in the Redis sorted sets"
    refused = ", ".join(f"{k}: {n}" for k, n in v["refused"].items()) or "none"
    if v["ran_out_of_voters"]:
        refused += " (the distinct (person, item) pairs ran out before the time was up)"
    return (
        f"- Votes: {v['accepted_responses']:,} accepted (201), {v['database_count']:,} in the "
        f"database, {live} — **{'equal' if v['equal'] else 'NOT EQUAL'}**; refused: {refused}."
    )


def update_docs(path: Path, section: str, markdown: str) -> None:
    begin, end = f"<!-- bench:{section} -->", f"<!-- /bench:{section} -->"
    block = f"{begin}\n{markdown.rstrip()}\n{end}"
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    print(render(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8"))))
