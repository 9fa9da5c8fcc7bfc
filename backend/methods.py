"""HEAD and OPTIONS for every path, added once every route is in.

HEAD on every GET route (the GET handler answers, so it checks the caller; Sanic sends no body)
and OPTIONS on every path (204 with ``Allow``): what sanic-ext's http extension adds. sanic-ext
adds them while the server starts, rebuilding the router once per route — about 5 s of every
worker's start on 2 cores — so its own is switched off in ``server.app`` and these are added
before the router is built.
"""

from __future__ import annotations

from typing import Any

from sanic import DefaultSanic, Request
from sanic.response import HTTPResponse, empty

AUTO_ATTR = "__smartcircle_auto_method__"


def _head(get_handler: Any) -> Any:
    async def head_handler(request: Request, **path: Any) -> HTTPResponse:
        response: HTTPResponse = await get_handler(request, **path)
        return response

    return head_handler


def _options(allowed: str) -> Any:
    async def options_handler(request: Request, **path: Any) -> HTTPResponse:
        return empty(headers={"allow": allowed})

    return options_handler


def add_head_and_options(app: DefaultSanic) -> None:
    """Add HEAD and OPTIONS where the app's routes lack them (call after every route is in)."""
    for group in list(app.router.groups.values()):
        methods = set(group.methods)
        if "GET" in methods and "HEAD" not in methods:
            get_route = next(r for r in group if "GET" in r.methods)
            _add(app, group, _head(get_route.handler), "HEAD", f"{get_route.name}_head")
            methods.add("HEAD")
        if "OPTIONS" not in methods:
            allowed = ",".join(sorted(methods) + ["OPTIONS"])
            _add(app, group, _options(allowed), "OPTIONS", f"{group[0].name}_options")


def _add(app: DefaultSanic, group: Any, handler: Any, method: str, name: str) -> None:
    setattr(handler, AUTO_ATTR, True)
    app.add_route(
        handler,
        group.uri,
        methods=[method],
        name=name,
        strict_slashes=group.strict,
        unquote=group.unquote,
    )


def is_automatic(route: Any) -> bool:
    """A HEAD or OPTIONS route added here, not declared one by one: its access is the GET
    handler's own check (HEAD) or nothing to guard (OPTIONS)."""
    return bool(getattr(route.handler, AUTO_ATTR, False))
