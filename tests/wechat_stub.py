"""A small real HTTP server on 127.0.0.1 that speaks WeChat's ``jscode2session`` protocol.

Codes drive the answer: ``ok-<x>`` signs in openid ``o-<x>``; ``union-<x>`` adds a unionid;
``invalid``, ``used``, ``limited``, ``busy``, ``risky`` give WeChat's error codes; ``crash`` answers
HTTP 500; ``garbage`` answers a non-JSON body (``list-answer`` and ``text-errcode`` JSON of the
wrong shape); ``slow`` waits longer than the client's timeout.

Subscription messages: ``GET /cgi-bin/token`` issues access tokens and ``POST
/cgi-bin/message/subscribe/send`` records each accepted message in :attr:`WeChatStub.sent`.
:meth:`WeChatStub.fail_next` queues failures for the next sends (``busy`` errcode -1, ``http500``,
``refused`` 43101, ``bad_openid`` 40003, ``token_expired`` 42001, ``slow``: delivered but answered
after the client's timeout).
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


SEND_FAILURES = {
    "busy": (-1, "system error"),
    "refused": (43101, "user refuse to accept the msg"),
    "bad_openid": (40003, "invalid openid"),
    "token_expired": (42001, "access_token expired"),
}


class _Subscribe:
    """State of the subscription-message endpoints (shared by the handler threads)."""

    lock = threading.Lock()
    tokens_issued: list[str] = []
    revoked: set[str] = set()
    sent: list[dict[str, object]] = []
    failures: list[str] = []


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
        if parts.path == "/cgi-bin/token":
            self._token(params)
            return
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
        elif code == "list-answer":  # JSON, but not an object
            self._send(200, b"[1, 2]")
        elif code == "text-errcode":  # an errcode that is not a number
            self._send(200, json.dumps({"errcode": "abc", "errmsg": "?"}).encode())
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

    def _token(self, params: dict[str, str]) -> None:
        if params.get("appid") != APPID or params.get("secret") != SECRET:
            self._send(200, json.dumps({"errcode": 40013, "errmsg": "invalid appid"}).encode())
            return
        if params.get("grant_type") != "client_credential":
            self._send(200, json.dumps({"errcode": 40002, "errmsg": "invalid grant"}).encode())
            return
        with _Subscribe.lock:
            token = f"at-{len(_Subscribe.tokens_issued) + 1}"
            _Subscribe.tokens_issued.append(token)
        self._send(200, json.dumps({"access_token": token, "expires_in": 7200}).encode())

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        parts = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if parts.path != "/cgi-bin/message/subscribe/send":
            self._send(404, b'{"errcode":404,"errmsg":"not found"}')
            return
        with _Subscribe.lock:
            failure = _Subscribe.failures.pop(0) if _Subscribe.failures else None
            token = params.get("access_token", "")
            known = token in _Subscribe.tokens_issued and token not in _Subscribe.revoked
        if not known:
            self._send(200, json.dumps({"errcode": 40001, "errmsg": "invalid credential"}).encode())
            return
        if failure == "http500":
            self._send(500, b"internal error", "text/plain")
            return
        if failure == "slow":  # delivered, but answered after the client gave up
            time.sleep(1.5)
        if failure in SEND_FAILURES:
            errcode, errmsg = SEND_FAILURES[failure]
            if failure == "token_expired":
                with _Subscribe.lock:
                    _Subscribe.revoked.add(token)
            self._send(200, json.dumps({"errcode": errcode, "errmsg": errmsg}).encode())
            return
        try:
            body = json.loads(raw)
        except ValueError:
            self._send(200, json.dumps({"errcode": 47001, "errmsg": "data format error"}).encode())
            return
        if not isinstance(body, dict) or not body.get("touser") or not body.get("template_id"):
            self._send(200, json.dumps({"errcode": 47003, "errmsg": "argument invalid"}).encode())
            return
        with _Subscribe.lock:
            _Subscribe.sent.append(body)
        self._send(200, json.dumps({"errcode": 0, "errmsg": "ok"}).encode())


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

    @property
    def sent(self) -> list[dict[str, object]]:
        """Subscription messages accepted so far."""
        return _Subscribe.sent

    @property
    def tokens_issued(self) -> list[str]:
        return _Subscribe.tokens_issued

    def fail_next(self, *failures: str) -> None:
        """Make the next sends fail in these ways, in order."""
        with _Subscribe.lock:
            _Subscribe.failures.extend(failures)

    def reset_subscribe(self) -> None:
        """Forget sent messages, queued failures and issued tokens."""
        with _Subscribe.lock:
            _Subscribe.sent.clear()
            _Subscribe.failures.clear()
            _Subscribe.tokens_issued.clear()
            _Subscribe.revoked.clear()

    def start(self) -> WeChatStub:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
