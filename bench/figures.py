"""One measurement (a scenario at one concurrency) and its ratios to a ceiling.

Both load generators (wrk through ``bench.wrk.run_wrk``, and ``bench.pyload``) give the same raw
JSON: ``duration_s``, ``requests``, ``socket_errors``, ``timeouts``, ``statuses`` (code → count)
and ``p50_ms``/``p95_ms``/``p99_ms`` (nearest rank over the requests answered, timed on the
monotonic clock). Throughput counts only the answers the scenario expects (``ok``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(1, round(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def histogram_percentile(counts: dict[int, int], p: float) -> int:
    """``percentile`` of the values a histogram (value → how many) holds, without listing them."""
    total = sum(counts.values())
    if not total:
        return 0
    rank = min(max(1, round(p / 100 * total)), total)
    seen = 0
    for value in sorted(counts):
        seen += counts[value]
        if seen >= rank:
            return value
    raise AssertionError("unreachable: the ranks add up to the total")


@dataclass
class Figure:
    scenario: str
    concurrency: int
    duration_s: float
    requests: int
    ok: int
    statuses: dict[str, int]
    socket_errors: int
    timeouts: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    ratios: dict[str, dict[str, float]] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # bench.cpu: cores by role, busy

    @classmethod
    def from_raw(
        cls, scenario: str, concurrency: int, raw: dict[str, Any], expect: tuple[str, ...]
    ) -> Figure:
        statuses = {str(k): int(v) for k, v in raw["statuses"].items()}
        return cls(
            scenario=scenario,
            concurrency=concurrency,
            duration_s=float(raw["duration_s"]),
            requests=int(raw["requests"]),
            ok=sum(statuses.get(code, 0) for code in expect),
            statuses=statuses,
            socket_errors=int(raw["socket_errors"]),
            timeouts=int(raw["timeouts"]),
            p50_ms=float(raw["p50_ms"]),
            p95_ms=float(raw["p95_ms"]),
            p99_ms=float(raw["p99_ms"]),
        )

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    @property
    def errors(self) -> int:
        return self.requests - self.ok + self.socket_errors + self.timeouts

    def compare(self, name: str, ceiling: Figure) -> None:
        """Each figure divided by the ceiling's (throughput: higher is better, latency: lower)."""

        def ratio(a: float, b: float) -> float:
            return round(a / b, 3) if b else 0.0

        self.ratios[name] = {
            "rps": ratio(self.rps, ceiling.rps),
            "p50": ratio(self.p50_ms, ceiling.p50_ms),
            "p95": ratio(self.p95_ms, ceiling.p95_ms),
            "p99": ratio(self.p99_ms, ceiling.p99_ms),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "concurrency": self.concurrency,
            "rps": round(self.rps, 1),
            "p50_ms": round(self.p50_ms, 2),
            "p95_ms": round(self.p95_ms, 2),
            "p99_ms": round(self.p99_ms, 2),
            "ok": self.ok,
            "requests": self.requests,
            "errors": self.errors,
            "timeouts": self.timeouts,
            "statuses": self.statuses,
            "duration_s": round(self.duration_s, 3),
            "ratios": self.ratios,
            "cpu": self.cpu,
        }
