"""The bench's account of where the cores went (``bench/cpu.py``)."""

from __future__ import annotations

import subprocess
import sys
import time

from bench import cpu, report
from bench.cpu import Proc, role, share

ME = 100


def _proc(pid: int, ppid: int, comm: str, cmdline: str, ticks: int = 0, **kw: int) -> Proc:
    return Proc(
        pid=pid,
        ppid=ppid,
        comm=comm,
        cmdline=cmdline,
        started=kw.get("started", 1),
        ticks=ticks,
        reaped=kw.get("reaped", 0),
    )


TABLE = {
    p.pid: p
    for p in (
        _proc(1, 0, "init", "/sbin/init"),
        _proc(ME, 1, "python", "python -m bench --profile services"),
        _proc(200, ME, "python", "python -m sanic bench.app:create_bench_app --factory"),
        _proc(201, 200, "python", "python -B -c from multiprocessing.spawn import spawn_main"),
        _proc(300, ME, "wrk", "wrk -t 64 -c 64"),
        _proc(301, ME, "python", "python -m bench.pyload votes.spec.json"),
        _proc(400, 1, "postgres", "postgres: smartcircle smartcircle_bench 127.0.0.1 idle"),
        _proc(500, 1, "redis-server", "redis-server 127.0.0.1:63790"),
        _proc(600, 1, "java", "/usr/lib/jvm/java-17/bin/java org.elasticsearch.bootstrap"),
        _proc(700, 1, "python", "python -m pytest"),
    )
}


def test_each_process_gets_its_role() -> None:
    roles = {pid: role(proc, TABLE, ME) for pid, proc in TABLE.items()}
    assert roles == {
        1: "other",
        ME: "load",
        200: "server",
        201: "server",  # a worker, found through its parent
        300: "load",
        301: "load",
        400: "postgres",
        500: "redis",
        600: "elasticsearch",
        700: "other",
    }


def test_cores_by_role_between_two_snapshots() -> None:
    before = {
        ME: _proc(ME, 1, "python", "python -m bench", ticks=50, reaped=10),
        201: _proc(201, 200, "python", "spawn_main", ticks=1000),
        200: _proc(200, 1, "python", "bench.app:create_bench_app", ticks=5),
        400: _proc(400, 1, "postgres", "postgres: idle", ticks=300),
        500: _proc(500, 1, "redis-server", "redis-server", ticks=7, started=5),
    }
    after = {
        # the bench's own time goes to "other"; its reaped children (wrk) are the load
        ME: _proc(ME, 1, "python", "python -m bench", ticks=90, reaped=110),
        201: _proc(201, 200, "python", "spawn_main", ticks=1400),
        200: _proc(200, 1, "python", "bench.app:create_bench_app", ticks=5),
        # the process title changes with each statement: the same process all the same
        400: _proc(400, 1, "postgres", "postgres: INSERT", ticks=350),
        # pid 500 was reused by a process started since: counted from zero
        500: _proc(500, 1, "redis-server", "redis-server", ticks=30, started=900),
    }
    machine = ((10_000, 50_000), (10_000 + 900, 50_000 + 1_000))
    found = share(before, after, 5.0, machine, me=ME, hz=100)
    assert found.cores["server"] == 400 / 100 / 5
    assert found.cores["postgres"] == 50 / 100 / 5
    assert found.cores["redis"] == 30 / 100 / 5
    assert found.cores["load"] == 100 / 100 / 5
    assert found.cores["elasticsearch"] == 0
    assert found.cores["other"] == (900 - 580) / 100 / 5
    assert found.busy == 0.9


def test_a_real_measurement_sees_a_busy_server_and_a_reaped_load_generator() -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"
    # A stand-in server: burns 1.5 s of CPU, says so, then idles (it must still run when the
    # measurement ends: a child this process reaps counts as a load generator).
    server = subprocess.Popen(  # noqa: S603 - fixed command line
        [
            sys.executable,
            "-c",
            burn.format(s=1.5) + f"print(flush=True)\ntime.sleep(60)\n# {cpu.SERVER_MARK}",
        ],
        stdout=subprocess.PIPE,
    )
    try:
        with cpu.measured() as used:
            subprocess.run(  # noqa: S603 - a stand-in load generator, reaped by this process
                [sys.executable, "-c", burn.format(s=0.5) + "# bench.pyload"], check=True
            )
            assert server.stdout is not None
            server.stdout.readline()
            time.sleep(0.05)
    finally:
        server.kill()
        server.wait(timeout=10)
    # CPU time, not wall time: however busy the machine, the two burned what they were told.
    seconds = {role: used.cores[role] * used.seconds for role in cpu.ROLES}
    assert 0.4 <= seconds["load"] <= 0.8
    assert 1.0 <= seconds["server"] <= 1.8
    assert 0 < used.busy <= 1


def test_the_report_shows_where_the_cores_went() -> None:
    result = {
        "profile": "services",
        "variant": "short",
        "workers": 2,
        "seconds_per_level": 10,
        "started": "now",
        "wall_s": 1,
        "machine": {
            "cores": 2,
            "cpu": "x",
            "memory_gib": 1,
            "os": "linux",
            "python": "3.11",
            "load_average": [0.1],
            "load_average_after": [0.1],
        },
        "data": {
            "venues": 1,
            "titles": 1,
            "holdings": 1,
            "people": 1,
            "pain_points": 1,
            "hot_pain_points": 1,
        },
        "figures": [
            {
                "title": "votes",
                "concurrency": 64,
                "rps": 1.0,
                "p50_ms": 1,
                "p95_ms": 1,
                "p99_ms": 1,
                "errors": 0,
                "ratios": {},
                "cpu": {"busy": 0.97, "server": 1.39, "postgres": 0.25, "load": 0.16},
            }
        ],
        "checks": {},
        "notes": [],
    }
    text = report.render(result)
    assert "| votes | 64 | 97% | 1.39 | 0.25 | 0.00 | 0.00 | 0.16 | 0.00 |" in text
