"""``/docs`` works offline: Swagger UI from the installed swagger-ui-dist, same-origin only."""

from __future__ import annotations

import re
from html.parser import HTMLParser

from backend.docs import DOCS_CSP


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.urls.append(str(values[name]))
        if "style" in values or any(name.startswith("on") for name in values):
            self.inline_scripts.append(f"{tag}: inline style or handler")
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script and data.strip():
            self.inline_scripts.append(data)


async def test_the_docs_page_loads_only_same_origin_assets(client):
    page = await client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert csp == DOCS_CSP and "default-src 'self'" in csp
    assert "http:" not in csp and "https:" not in csp and "unsafe" not in csp
    parser = _Links()
    parser.feed(page.text)
    assert not parser.inline_scripts, parser.inline_scripts
    assert len(parser.urls) >= 4, parser.urls
    for url in parser.urls:
        # Same origin: an absolute path, never a scheme or a protocol-relative host.
        assert url.startswith("/") and not url.startswith("//"), url
    assert not re.search(r"https?://", page.text)
    types = {}
    for url in parser.urls:
        asset = await client.get(url)
        assert asset.status_code == 200, url
        types[url.rsplit(".", 1)[-1]] = asset.headers["content-type"]
    assert types["js"].startswith(("text/javascript", "application/javascript")), types
    assert types["css"].startswith("text/css"), types
    assert types["png"].startswith("image/png"), types
    assert 'data-document="/docs/openapi.json"' in page.text
    document = await client.get("/docs/openapi.json")
    assert document.status_code == 200 and document.json()["openapi"].startswith("3.1")


async def test_the_initializer_points_swagger_ui_at_our_document_and_no_validator(client):
    script = await client.get("/docs/assets/docs-init.js")
    assert script.status_code == 200
    assert "SwaggerUIBundle" in script.text
    assert "validatorUrl: null" in script.text  # the UI would otherwise call a public validator
    assert not re.search(r"https?://", script.text)


async def test_the_assets_directory_serves_nothing_outside_swagger_ui(client):
    for path in (
        "/docs/assets/swagger-ui/../../../pyproject.toml",
        "/docs/assets/swagger-ui/%2e%2e/%2e%2e/package.json",
        "/docs/assets/swagger-ui/",
    ):
        response = await client.get(path)
        assert response.status_code in (403, 404), (path, response.status_code)
