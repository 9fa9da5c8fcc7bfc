"""A small real HTTP server on 127.0.0.1 that speaks WeChat's ``jscode2session`` protocol.

Codes drive the answer: ``ok-<x>`` signs in openid ``o-<x>``; ``union-<x>`` adds a unionid;
``invalid``, ``used``, ``limited``, ``busy``, ``risky`` give WeChat's error codes; ``crash`` answers
HTTP 500; ``garbage`` answers a non-JSON body; ``slow`` waits longer than the client's timeout.
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

APPID = "wx-test-appid"
SECRET = "wx-test-secret"  # noqa: S105 - test fixture
ERRORS = {
    "invalid": (40029, "invalid code"),
    "used": (40163, "code been used"),
    "limited": (45011, "api minute-quota reach limit"),
    "busy": (-1, "system error"),
    "risky": (40226, "high risk user"),
}


class _Handler(BaseHTTPRequestHandler):
    calls: list[dict[str, str]] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - silence
        return

    def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        parts = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        type(self).calls.append(params)
        if parts.path != "/sns/jscode2session":
            self._send(404, b'{"errcode":404,"errmsg":"not found"}')
            return
        if params.get("appid") != APPID or params.get("secret") != SECRET:
            self._send(200, json.dumps({"errcode": 40013, "errmsg": "invalid appid"}).encode())
            return
        if params.get("grant_type") != "authorization_code":
            self._send(200, json.dumps({"errcode": 40002, "errmsg": "invalid grant"}).encode())
            return
        code = params.get("js_code", "")
        if code in ERRORS:
            errcode, errmsg = ERRORS[code]
            self._send(200, json.dumps({"errcode": errcode, "errmsg": errmsg}).encode())
        elif code == "crash":
            self._send(500, b"internal error", "text/plain")
        elif code == "garbage":
            self._send(200, b"<html>not json</html>", "text/html")
        elif code == "slow":
            time.sleep(1.5)
            self._send(200, json.dumps({"openid": "o-slow", "session_key": "k"}).encode())
        elif code.startswith("ok-"):
            body = {"openid": f"o-{code[3:]}", "session_key": "sk-secret"}
            self._send(200, json.dumps(body).encode())
        elif code.startswith("union-"):
            body = {"openid": f"o-{code[6:]}", "session_key": "sk", "unionid": f"u-{code[6:]}"}
            self._send(200, json.dumps(body).encode())
        else:
            self._send(200, json.dumps({"errcode": 40029, "errmsg": "invalid code"}).encode())


class WeChatStub:
    """Runs the server in a daemon thread on an ephemeral loopback port."""

    def __init__(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def calls(self) -> list[dict[str, str]]:
        return _Handler.calls

    def start(self) -> WeChatStub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
