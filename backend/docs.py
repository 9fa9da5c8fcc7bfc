"""``/docs``: the OpenAPI document and Swagger UI, served by the app itself (works offline).

Swagger UI comes from the npm package ``swagger-ui-dist`` that ``make install`` puts under
``node_modules/`` (pinned in ``package-lock.json``), never from a CDN. The page is a Jinja2
template that loads only same-origin files, and the initializer is a static file rather than an
inline script, so the page carries ``Content-Security-Policy: default-src 'self'``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sanic import DefaultSanic, Request
from sanic.handlers.directory import DirectoryHandler
from sanic.response import HTTPResponse, html
from sanic.response import json as json_response

from backend.access import Call, declare_public, endpoint
from backend.config import REPO_ROOT
from backend.errors import NotFound
from backend.openapi import build_document

log = logging.getLogger("smartcircle.docs")

DOCS = "/docs"
DOCUMENT = f"{DOCS}/openapi.json"
ASSETS = f"{DOCS}/assets/swagger-ui"
INITIALIZER = f"{DOCS}/assets/docs-init.js"
SWAGGER_UI_DIST = REPO_ROOT / "node_modules" / "swagger-ui-dist"
HERE = Path(__file__).resolve().parent
# Swagger UI sets styles through the DOM (allowed) and its stylesheet embeds SVG icons as data:
# URLs; everything else comes from this origin.
DOCS_CSP = (
    "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "frame-ancestors 'none'; form-action 'none'"
)


class _NoListing(DirectoryHandler):
    """The assets' directory itself is not a page: 404, neither a listing nor an index."""

    async def handle(self, request: Request, path: str) -> HTTPResponse:
        raise NotFound()


def install_docs(app: DefaultSanic, *, title: str, version: str, description: str) -> None:
    """Serve the OpenAPI document, the Swagger UI page and its assets under ``/docs``."""
    page = (
        Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape())
        .get_template("docs.html")
        .render(title=title, assets=ASSETS, document=DOCUMENT, initializer=INITIALIZER)
    )

    @app.get(DOCUMENT, name="docs_document")
    @endpoint(summary="OpenAPI 文档", tag="docs", public=True, documented=False)
    async def docs_document(request: Request, call: Call[None, None]) -> HTTPResponse:
        document: dict[str, Any] = request.app.ctx.openapi_document
        return json_response(document)

    @app.get(DOCS, name="docs_page")
    @endpoint(
        summary="API 文档（Swagger UI）",
        tag="docs",
        public=True,
        produces="text/html",
        documented=False,
    )
    async def docs_page(request: Request, call: Call[None, None]) -> HTTPResponse:
        return html(page, headers={"Content-Security-Policy": DOCS_CSP})

    app.static(INITIALIZER, HERE / "static" / "docs-init.js", name="docs_initializer")
    declare_public(app, "docs_initializer")
    if SWAGGER_UI_DIST.is_dir():
        directory = SWAGGER_UI_DIST.resolve()
        app.static(
            ASSETS,
            directory,
            name="docs_assets",
            directory_handler=_NoListing(uri=ASSETS, directory=directory),
        )
        declare_public(app, "docs_assets")
    else:  # pragma: no cover - make install puts it there
        log.warning("swagger-ui-dist is not installed (make install): /docs shows no UI")

    @app.before_server_start
    async def _build_document(app: DefaultSanic) -> None:
        app.ctx.openapi_document = build_document(
            app, title=title, version=version, description=description
        )
