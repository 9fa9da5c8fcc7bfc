"""Driving HTTP load with wrk (Debian's package, installed by ``scripts/bench-tools.sh``).

wrk runs in its own process, keeps ``concurrency`` connections busy for a fixed time and sends
the requests the bench wrote to a file (``bench/wrk.lua`` reads them), so randomness (points,
voters) is decided in Python and the API and its ceilings get the very same requests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.config import REPO

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
    threads = min(2, concurrency)
    command = [
        wrk_binary(),
        f"--threads={threads}",
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
            return dict(json.loads(line.removeprefix("BENCH-JSON ")))
    raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-800:]} {done.stderr[-800:]}")
