"""Driving HTTP load with wrk (Debian's package, installed by ``scripts/bench-tools.sh``).

wrk runs in its own process, keeps ``concurrency`` connections busy for a fixed time and sends
the requests the bench wrote to a file (``bench/wrk.lua`` reads them), so randomness (points,
voters) is decided in Python and the API and its ceilings get the very same requests.

The latencies and the duration are the script's own, on the monotonic clock, with one connection
per wrk thread (see ``bench/wrk.lua``): wrk's histogram is rewritten by its coordinated-omission
correction before a script sees it, and wrk times everything on the wall clock. The percentiles
are nearest-rank over the requests answered, like ``bench.pyload``'s; answers slower than wrk's
timeout are counted as timeouts and left out, as wrk does.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import REPO
from bench.figures import histogram_percentile

SCRIPT = REPO / "bench" / "wrk.lua"
TIMEOUT_S = 10


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    auth: str = ""
    body: str = ""

    def line(self) -> str:
        for part in (self.method, self.path, self.auth, self.body):
            if "\t" in part or "\n" in part:
                raise ValueError("a request field may not hold a tab or a newline")
        return f"{self.method}\t{self.path}\t{self.auth}\t{self.body}"


def write_requests(path: Path, requests: list[Request]) -> Path:
    path.write_text("".join(r.line() + "\n" for r in requests), encoding="utf-8")
    return path


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: run scripts/bench-tools.sh (make bench does)")
    return found


def run_wrk(
    base_url: str, requests_file: Path, *, concurrency: int, seconds: float
) -> dict[str, Any]:
    """One wrk run; the raw figures its script prints (see ``bench/figures.py``)."""
    command = [
        wrk_binary(),
        f"--threads={concurrency}",  # one connection per thread: the script times each request
        f"--connections={concurrency}",
        f"--duration={max(1, round(seconds))}s",
        f"--timeout={TIMEOUT_S}s",
        f"--script={SCRIPT}",
        base_url,
        "--",
        str(requests_file),
    ]
    done = subprocess.run(  # noqa: S603 - fixed command line
        command, capture_output=True, text=True, timeout=seconds + 3 * TIMEOUT_S, check=False
    )
    for line in done.stdout.splitlines():
        if line.startswith("BENCH-JSON "):
            return raw_figures(json.loads(line.removeprefix("BENCH-JSON ")))
    raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-800:]} {done.stderr[-800:]}")


def raw_figures(printed: dict[str, Any]) -> dict[str, Any]:
    """The script's JSON with the percentiles of its latency histogram (µs) in place of it."""
    raw = dict(printed)
    limit_us = TIMEOUT_S * 1_000_000
    histogram = {int(us): int(n) for us, n in raw.pop("latency_us").items() if int(us) < limit_us}
    for p in (50, 95, 99):
        raw[f"p{p}_ms"] = histogram_percentile(histogram, p) / 1000
    return raw
