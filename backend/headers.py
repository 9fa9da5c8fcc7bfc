"""Security headers on every response (set by the app's response middleware).

* ``X-Content-Type-Options: nosniff`` and ``X-Frame-Options: DENY`` everywhere; no page of this
  API is meant to be framed (the CSP says the same with ``frame-ancestors 'none'``).
* ``Content-Security-Policy`` on every HTML response that does not bring its own: the default
  allows this origin's scripts, styles, images and fonts and nothing inline. A page with inline
  styles (the booklet) sets a policy naming their hashes (:func:`csp_for_inline_styles`).
* ``Cache-Control: no-store`` (and ``Pragma: no-cache``, RFC 6749 §5.1) on responses that carry
  tokens — a handler marks them with :func:`mark_no_store` — and ``no-store`` on every answer to
  a request that carried credentials, unless the handler set its own ``Cache-Control``: personal
  data stays out of shared and browser caches.
"""

from __future__ import annotations

import base64
import hashlib
import re

from sanic import Request
from sanic.response import HTTPResponse

DEFAULT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_STYLE = re.compile(r"<style[^>]*>(.*?)</style>", re.DOTALL | re.IGNORECASE)


def csp_for_inline_styles(page: str) -> str:
    """A strict policy for a self-contained page: nothing but its own ``<style>`` blocks."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(block.encode()).digest()).decode() + "'"
        for block in _STYLE.findall(page)
    )
    styles = hashes or "'none'"
    return (
        f"default-src 'none'; style-src {styles}; img-src 'self' data:; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


def mark_no_store(request: Request) -> None:
    """This response carries secrets (tokens): never cache it."""
    request.ctx.no_store = True


def apply_security_headers(request: Request, response: HTTPResponse) -> None:
    """Add the headers above to ``response`` (what the handler set itself stays)."""
    headers = response.headers
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    content_type = (response.content_type or headers.get("content-type") or "").lower()
    if content_type.startswith("text/html"):
        headers.setdefault("Content-Security-Policy", DEFAULT_CSP)
    if getattr(request.ctx, "no_store", False):
        headers["Cache-Control"] = "no-store"
        headers["Pragma"] = "no-cache"
    elif "cache-control" not in headers and (
        request.headers.get("authorization") or request.headers.get("x-api-key")
    ):
        headers["Cache-Control"] = "no-store"
