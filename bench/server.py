"""The server under test: ``sanic bench.app:create_bench_app --factory --workers N`` on 127.0.0.1.

It runs in its own process group, with the bench's environment (``BenchConfig.server_env``),
its output in ``var/bench/<profile>/server.log``; it is stopped with SIGINT (then SIGKILL), and
gets SIGINT when the bench process dies without stopping it (killed by a timeout, say), so no
server outlives its bench.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from bench.config import REPO, BenchConfig

READY_TIMEOUT = 120.0
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _interrupt_with_parent() -> None:
    """In the child, before exec: SIGINT when the process that started it dies."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def spawn(command: list[str], **options: Any) -> subprocess.Popen[bytes]:
    """``Popen(command)`` in a process group of its own that is interrupted when this process
    dies (Linux). Call it from the thread that lives as long as the process (the main one):
    the kernel ties the signal to the thread that started the child."""
    return subprocess.Popen(  # noqa: S603 - callers pass fixed command lines
        command,
        start_new_session=True,
        preexec_fn=_interrupt_with_parent,  # noqa: PLW1509 - one thread starts the server
        **options,
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own server
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def running_server(config: BenchConfig) -> Iterator[str]:
    """Start the server, wait until every worker answers, yield its base URL, stop it."""
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = config.var_dir / "server.log"
    command = [
        sys.executable,
        "-m",
        "sanic",
        "bench.app:create_bench_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(config.workers),
        "--no-motd",
    ]
    with log_path.open("ab") as log:
        process = spawn(
            command, cwd=REPO, env=config.server_env(), stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        answered = 0
        while answered < 3 * config.workers:  # a few answers in a row: all workers are up
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}); see {log_path}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the server did not answer in {READY_TIMEOUT:.0f} s")
            if _ready(f"{base}/bench/noop?lat=31.8&lng=117.2"):
                answered += 1
            else:
                answered = 0
                time.sleep(0.3)
        yield base
    finally:
        _stop(process)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)
