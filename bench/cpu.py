"""Where the cores went while one figure was measured (Linux ``/proc``).

On a machine of two cores the server, PostgreSQL, Redis, Elasticsearch and the load generator
share the same CPUs, so a throughput is bounded by whoever takes them. :func:`measured` reads
every process's CPU time before and after a measurement and sorts the difference by role:

* ``server``: the server under test (``bench.app:create_bench_app``) and its workers;
* ``postgres``, ``redis``, ``elasticsearch`` (a ``java`` process);
* ``load``: the load generators (``wrk``, ``bench.pyload``) — short-lived children of the bench,
  so their time is read from the bench process's reaped-children time;
* ``other``: the rest of the machine's busy time (``/proc/stat``), this process included.

Each is given in cores (CPU seconds per second of the measurement), and ``busy`` is the share of
all cores that was not idle. A process that started during the measurement counts from zero; a
short-lived one another process reaps (a PostgreSQL backend of the votes ceiling's pool) counts
in its parent's reaped-children time.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROLES = ("server", "postgres", "redis", "elasticsearch", "load", "other")
SERVER_MARK = "bench.app:create_bench_app"
_PROC = Path("/proc")


@dataclass(frozen=True, slots=True)
class Proc:
    pid: int
    ppid: int
    comm: str
    cmdline: str
    started: int  # start time after boot, in clock ticks (tells a reused pid apart)
    ticks: int  # own user + system time
    reaped: int  # user + system time of the children it waited for


def _read(pid: str) -> Proc | None:
    try:
        stat = (_PROC / pid / "stat").read_text()
        cmdline = (
            (_PROC / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:  # gone meanwhile
        return None
    comm = stat[stat.index("(") + 1 : stat.rindex(")")]
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 of proc(5), the state: ppid 4, utime 14, stime 15, cutime 16,
    # cstime 17, starttime 22
    return Proc(
        pid=int(pid),
        ppid=int(fields[1]),
        comm=comm,
        cmdline=cmdline,
        started=int(fields[19]),
        ticks=int(fields[11]) + int(fields[12]),
        reaped=int(fields[13]) + int(fields[14]),
    )


def processes() -> dict[int, Proc]:
    found = {}
    for entry in os.listdir(_PROC):
        if entry.isdigit() and (proc := _read(entry)) is not None:
            found[proc.pid] = proc
    return found


def role(proc: Proc, table: dict[int, Proc], me: int) -> str:
    """The role of a process: by its program, or by the server process it descends from."""
    if proc.pid == me:
        return "load"  # its reaped children are the load generators (its own time is ~0)
    if proc.comm == "wrk" or "bench.pyload" in proc.cmdline:
        return "load"
    if proc.comm == "postgres" or proc.cmdline.startswith("postgres"):
        return "postgres"
    if proc.comm.startswith("redis-server"):
        return "redis"
    if proc.comm == "java" and "elasticsearch" in proc.cmdline:
        return "elasticsearch"
    current: Proc | None = proc
    for _ in range(8):  # the server's main process, its workers and their helpers
        if current is None:
            break
        if SERVER_MARK in current.cmdline:
            return "server"
        current = table.get(current.ppid)
    return "other"


def _machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all cores since boot."""
    first = (_PROC / "stat").read_text().splitlines()[0].split()[1:]
    values = [int(v) for v in first[:8]]  # user nice system idle iowait irq softirq steal
    idle = values[3] + values[4]
    return sum(values) - idle, sum(values)


@dataclass
class CpuShare:
    """Cores used by each role during one measurement, and how busy the machine was."""

    cores: dict[str, float] = field(default_factory=dict)
    busy: float = 0.0  # share of all cores not idle (0..1)
    seconds: float = 0.0  # how long the measurement lasted

    def as_json(self) -> dict[str, float]:
        return {"busy": round(self.busy, 3)} | {k: round(v, 3) for k, v in self.cores.items()}


def share(
    before: dict[int, Proc],
    after: dict[int, Proc],
    seconds: float,
    machine: tuple[tuple[int, int], tuple[int, int]],
    *,
    me: int,
    hz: int,
) -> CpuShare:
    """The CPU each role used between two snapshots ``seconds`` apart."""
    used = dict.fromkeys(ROLES, 0.0)
    for pid, proc in after.items():
        old = before.get(pid)
        if old is not None and old.started != proc.started:
            old = None  # the pid was reused
        ticks = proc.ticks + proc.reaped - ((old.ticks + old.reaped) if old else 0)
        if pid == me:
            ticks = proc.reaped - (old.reaped if old else 0)  # only the load generators
        if ticks > 0:
            used[role(proc, after, me)] += ticks
    (busy0, total0), (busy1, total1) = machine
    busy_ticks = busy1 - busy0
    known = sum(v for k, v in used.items() if k != "other")
    used["other"] = max(0.0, busy_ticks - known)
    wall = max(seconds, 1e-9)
    return CpuShare(
        seconds=seconds,
        cores={k: v / hz / wall for k, v in used.items()},
        busy=min(1.0, busy_ticks / (total1 - total0)) if total1 > total0 else 0.0,
    )


@contextmanager
def measured() -> Iterator[CpuShare]:
    """``with measured() as cpu:`` … — ``cpu`` is filled in when the block ends."""
    result = CpuShare()
    hz = os.sysconf("SC_CLK_TCK")
    before, machine0, began = processes(), _machine_ticks(), time.monotonic()
    yield result
    after, machine1 = processes(), _machine_ticks()
    found = share(
        before, after, time.monotonic() - began, (machine0, machine1), me=os.getpid(), hz=hz
    )
    result.cores, result.busy, result.seconds = found.cores, found.busy, found.seconds
