"""A real server's output is one JSON object per line, tracebacks included.

The server runs as in production — the ``sanic`` command (which loads tracerite, whose hooks
print exceptions as multi-line boxes), a main process and a worker — from a factory that adds
routes failing in every way a traceback reaches the log: an unexpected error in a handler, an
exception handed to the event loop, an uncaught exception in a thread, a warning. Every line of
its stderr and stdout must parse as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

from tests.fault_helpers import free_port
from tests.server_process import stop

REPO = Path(__file__).resolve().parent.parent

PROBE = textwrap.dedent(
    """
    import asyncio
    import threading
    import warnings

    from backend.access import endpoint
    from server.app import create_app as create_real_app


    def create_app():
        app = create_real_app()

        @app.get("/probe/boom")
        @endpoint(summary="boom", tag="probe", public=True)
        async def boom(request, call):
            raise RuntimeError("first line\\nsecond line, phone 13800138000")

        @app.get("/probe/side")
        @endpoint(summary="side effects", tag="probe", public=True)
        async def side(request, call):
            asyncio.get_running_loop().call_exception_handler(
                {"message": "background task failed", "exception": ValueError("in a task\\nx")}
            )
            thread = threading.Thread(target=lambda: 1 / 0, name="probe-thread")
            thread.start()
            thread.join()
            warnings.warn("a warning\\nover two lines")
            return {"ok": True}

        @app.get("/probe/slow")
        @endpoint(summary="slow", tag="probe", public=True)
        async def slow(request, call):
            await asyncio.sleep(0.5)  # long enough for its client to leave first
            return {"ok": True}

        return app
    """
)


async def test_every_line_a_real_server_writes_is_one_json_object(tmp_path: Path):
    (tmp_path / "probe_app.py").write_text(PROBE)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTCIRCLE_", "PYTEST"))}
    for name in ("DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL"):
        env.pop(name, None)
    env.update(
        SMARTCIRCLE_PROFILE="embedded",
        SMARTCIRCLE_VAR_DIR=str(tmp_path / "var"),
        SMARTCIRCLE_SCHEDULER="0",
        SMARTCIRCLE_LOG_LEVEL="INFO",
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(REPO)]),
    )
    migrated = subprocess.run(
        [sys.executable, "-m", "server", "migrate"],
        env=env, cwd=REPO, capture_output=True, timeout=180, check=False,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    port = free_port()
    out_path, err_path = tmp_path / "stdout", tmp_path / "stderr"
    with out_path.open("wb") as out, err_path.open("wb") as err:
        process = subprocess.Popen(
            [sys.executable, "-m", "sanic", "probe_app:create_app", "--factory",
             "--host", "127.0.0.1", "--port", str(port)],
            env=env, cwd=REPO, stdout=out, stderr=err,
            start_new_session=True,  # a failed start kills its process group (Sanic's manager)
        )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=20) as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if (await http.get("/api/v1/health")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail(f"server did not start: {err_path.read_text()[-3000:]}")
                await asyncio.sleep(0.3)
            boom = await http.get("/probe/boom")
            assert boom.status_code == 500
            assert (await http.get("/probe/side")).status_code == 200
            # A client that goes before its answer (a phone losing signal) is no server error.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /probe/slow HTTP/1.1\r\nHost: probe\r\n\r\n")
            await writer.drain()
            writer.close()
            await asyncio.sleep(1.0)
    finally:
        stop(process, timeout=60)

    records = []
    for stream in (err_path, out_path):
        for number, line in enumerate(stream.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                pytest.fail(f"{stream.name} line {number} is not JSON: {line!r}")
    for record in records:
        assert {"ts", "level", "logger", "request_id", "message"} <= set(record), record

    def one(predicate):
        found = [r for r in records if predicate(r)]
        assert found, [r["message"] for r in records]
        return found[0]

    error = one(lambda r: r["message"] == "unhandled error")
    assert "RuntimeError: first line" in error["exc"] and "13800138000" not in error["exc"]
    assert error["request_id"] == boom.headers["x-request-id"]
    assert error["request_id"] in boom.json()["error"]["message"]
    assert "ValueError: in a task" in one(lambda r: r["logger"] == "asyncio")["exc"]
    thread = one(lambda r: r["message"] == "uncaught exception in a thread")
    assert "ZeroDivisionError" in thread["exc"] and thread["thread_name"] == "probe-thread"
    assert "a warning" in one(lambda r: r["logger"] == "py.warnings")["message"]
    assert any(r["logger"].startswith("sanic") for r in records)  # Sanic's own lines too
    gone = one(lambda r: r["message"] == "request" and r.get("path") == "/probe/slow")
    assert gone["status"] == 499, gone  # nginx's "client closed request", not a 500
    assert not [r for r in records if r["level"] in ("ERROR", "CRITICAL") and "slow" in str(r)]
