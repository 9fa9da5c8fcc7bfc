"""The bench's server never outlives the bench: killed without a chance to stop it (a timeout's
SIGKILL), the bench still takes its server down (``bench.server.spawn``)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

from bench.config import REPO

# A stand-in for the bench: starts a long-lived child the way the bench starts its server,
# prints the child's pid and waits to be killed.
PARENT = textwrap.dedent(
    """
    import sys, time
    from bench.server import spawn
    child = spawn([sys.executable, "-c", "import time; time.sleep(120)"])
    print(child.pid, flush=True)
    time.sleep(120)
    """
)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_the_server_is_interrupted_when_the_bench_is_killed() -> None:
    parent = subprocess.Popen(  # noqa: S603 - fixed command line
        [sys.executable, "-c", PARENT], cwd=REPO, stdout=subprocess.PIPE, text=True
    )
    try:
        assert parent.stdout is not None
        child = int(parent.stdout.readline())
        assert _alive(child)
        os.killpg(child, 0)  # a process group of its own: a terminal's ^C does not reach it
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _alive(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(child), "the child outlived the process that started it"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait(timeout=10)
