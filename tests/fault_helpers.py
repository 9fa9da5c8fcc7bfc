"""Backing services that tests can really kill: a private redis-server, a private PostgreSQL
cluster, and an in-process store that fails the way an unreachable Redis does."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from redis.exceptions import ConnectionError as RedisConnectionError

from backend.kv_memory import MemoryKeyValue


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class KillableMemory(MemoryKeyValue):
    """The in-process store, but "killed" it fails every call like an unreachable Redis (and,
    like a restarted Redis, comes back empty)."""

    def __init__(self, prefix: str) -> None:
        super().__init__(prefix=prefix)
        self.down = False
        self.calls = 0

    def kill(self) -> None:
        self.down = True

    def restart(self) -> None:
        self._store.data.clear()
        self._store.deadlines.clear()
        self.down = False


def _guard(name: str):
    original = getattr(MemoryKeyValue, name)

    async def guarded(self: KillableMemory, *args, **kwargs):
        self.calls += 1
        if self.down:
            raise RedisConnectionError("Error 111 connecting to 127.0.0.1. Connection refused.")
        return await original(self, *args, **kwargs)

    guarded.__name__ = name
    return guarded


GUARDED = (
    *("get", "set", "delete", "exists", "ttl", "incr", "get_int", "zadd", "zincrby", "zscore"),
    *("zrem", "ztop", "zsince", "ztrim_below", "lock", "release_lock", "extend_lock", "hit"),
    "clear_namespace",
)
for _name in GUARDED:
    setattr(KillableMemory, _name, _guard(_name))


async def _ping(self: KillableMemory) -> bool:
    return not self.down


KillableMemory.ping = _ping  # type: ignore[method-assign]


class RedisServer:
    """A private ``redis-server`` on a free loopback port, no persistence (like the shared one)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="redis-fault-"))
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (scripts/services-up.sh installs it)"
        self.process = subprocess.Popen(
            [
                binary,
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--save", "",
                "--appendonly", "no",
                "--dir", str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not port_open(self.port):
            assert self.process.poll() is None, "redis-server exited at start"
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: no shutdown, no goodbye to the clients."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)
        self.process = None

    def stop(self) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _pg_bin() -> Path:
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    assert candidates, "PostgreSQL binaries not found (scripts/services-up.sh installs them)"
    return candidates[-1].parent


class PostgresCluster:
    """A private PostgreSQL cluster in a temporary directory, on a free loopback port.

    Run as the ``postgres`` user when the tests run as root (PostgreSQL refuses root), else as
    the current user. Trust authentication on 127.0.0.1 only: it lives for one test.
    """

    def __init__(self) -> None:
        self.bin = _pg_bin()
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="pg-fault-", dir="/tmp"))
        self.data = self.root / "data"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
            self.root.chmod(0o700)

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/faults"

    def _run(self, *args: str, timeout: float = 120) -> None:
        command = [*args]
        if self.as_root:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=timeout, cwd=self.root)

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "-E", "UTF8",
            "--locale=C.UTF-8", "--auth=trust", "-N",
        )  # fmt: skip
        self.start()
        self._run(
            str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
            "postgres", "faults",
        )  # fmt: skip

    def start(self) -> None:
        options = f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off"
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "log"),
            "-o", options, "-w", "-t", "60", "start",
        )  # fmt: skip

    def stop(self) -> None:
        """A fast shutdown: open connections are terminated, new ones refused."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.SubprocessError):
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
