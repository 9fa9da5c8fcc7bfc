"""The app factory: ``sanic server.app:create_app --factory``."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from sanic import DefaultSanic, Request, Sanic
from sanic.response import HTTPResponse

from backend import db
from backend.access import check_every_route_declared, route_access
from backend.config import Settings
from backend.context import AppContext, build_context
from backend.docs import install_docs
from backend.errors import Forbidden, install_error_handlers
from backend.features import Feature
from backend.headers import apply_security_headers
from backend.logs import configure_logging, request_id_for
from backend.methods import add_head_and_options
from backend.scheduler import Jobs
from server.features import FEATURES
from server.orm import apps

log = logging.getLogger("smartcircle.access")
API_TITLE = "智慧生活圈 API"
API_VERSION = "0.1.0"
API_DESCRIPTION = "Neighbourhood resources, geo search, bookings and pain-point crowdsourcing."


_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_NON_STR_KEYS


def _dumps(value: object, *, default: Callable[[Any], Any] | None = None, **kwargs: Any) -> str:
    """Response bodies as compact UTF-8 JSON, through orjson (a quarter of a small request's
    CPU went to the standard library's encoder). Times still go through ``default`` (the
    endpoint's: Asia/Shanghai with the offset), so the output is the one ``json.dumps`` gave."""
    if kwargs:  # a caller asking for json.dumps options (indent, sort_keys…)
        return json.dumps(
            value, ensure_ascii=False, separators=(",", ":"), default=default, **kwargs
        )
    # Sanic sends bytes as they are: no decoding round trip.
    return orjson.dumps(value, default=default, option=_ORJSON_OPTIONS)  # type: ignore[return-value]


# Connections the kernel queues before a worker accepts them. Sanic's default of 100 drops the
# rest of a burst (a WeChat push: hundreds of phones at once), and a dropped SYN is retried only
# after a second. The kernel caps it at net.core.somaxconn (4096 on current kernels).
LISTEN_BACKLOG = 1024


def raise_backlog(app: DefaultSanic) -> None:
    """Every listening socket of the app queues LISTEN_BACKLOG connections (the sanic command
    line has no option for it; the main process binds the sockets after this runs)."""
    for info in app.state.server_info:
        info.settings["backlog"] = max(LISTEN_BACKLOG, int(info.settings.get("backlog") or 0))


def create_app(
    settings: Settings | None = None, *, features: tuple[Feature, ...] = FEATURES
) -> Sanic:
    """Build the app for these settings (read from the environment when not given)."""
    if not isinstance(settings, Settings):  # the sanic CLI passes its own arguments
        settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_json)
    # configure_logging=False: Sanic's own configuration would put its box-printing handlers
    # back on its loggers; ours (above) sends every record through one JSON line handler.
    app = Sanic("smartcircle", strict_slashes=False, dumps=_dumps, configure_logging=False)
    app.config.REQUEST_MAX_SIZE = settings.max_body_bytes
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.ACCESS_LOG = False
    app.config.DEBUG = settings.debug
    app.config.CORS = False
    # The OpenAPI document and /docs are our own (backend/docs.py): sanic-ext's would load its
    # UI from a CDN and describe query parameters wrongly.
    app.extend(
        config={
            "oas": False,
            "health": False,
            # HEAD and OPTIONS: backend.methods.add_head_and_options, without the slow start.
            "http_auto_head": False,
            "http_auto_options": False,
        }
    )

    ctx = build_context(settings)
    app.ctx.app_context = ctx
    app.ctx.settings = settings
    jobs = Jobs(ctx)
    app.ctx.jobs = jobs
    for feature in features:
        for job in feature.jobs:
            jobs.every(job.name, job.interval(settings), job.func)

    # Start-up listeners run in this order. The checks that hold nothing open come first; a
    # start that fails after the database is open closes it again (the SQLite client's thread
    # would otherwise keep the failed process alive, never exiting).
    @app.before_server_start
    async def _check_routes(app: DefaultSanic) -> None:
        check_every_route_declared(app)

    install_docs(app, title=API_TITLE, version=API_VERSION, description=API_DESCRIPTION)
    db.register_database(app, settings, apps())
    _register_features(app, ctx, features)
    _register_middleware(app)
    for feature in features:
        for bp in feature.blueprints:
            app.blueprint(bp)
    install_error_handlers(app)
    add_head_and_options(app)  # after every route

    @app.main_process_start
    async def _backlog(app: DefaultSanic) -> None:
        raise_backlog(app)

    @app.after_server_start
    async def _start_jobs(app: DefaultSanic) -> None:
        if settings.scheduler_enabled:
            jobs.start()

    @app.before_server_stop
    async def _stop_jobs(app: DefaultSanic) -> None:
        jobs.shutdown()

    return app


def _register_features(app: Sanic, ctx: AppContext, features: tuple[Feature, ...]) -> None:
    """Run each feature's start-up hooks once the database is open; stop hooks, then close."""

    @app.before_server_start  # registered after the database listener, so it runs after it
    async def _start_features(app: Sanic) -> None:
        try:
            for feature in features:
                for hook in feature.on_start:
                    await hook(ctx)
        except BaseException:
            await ctx.close()
            await db.close_database()
            raise

    @app.after_server_stop
    async def _stop_features(app: Sanic) -> None:
        for feature in reversed(features):
            for hook in feature.on_stop:
                await hook(ctx)
        await ctx.close()


def _register_middleware(app: DefaultSanic) -> None:
    @app.on_request
    async def _before(request: Request) -> None:
        request_id_for(request)
        request.ctx.started = time.perf_counter()
        if route_access(request) is None:
            raise Forbidden("该接口未声明访问权限", code="route_not_declared")

    @app.on_response  # type: ignore[untyped-decorator]  # sanic leaves on_response unannotated
    async def _after(request: Request, response: HTTPResponse) -> None:
        response.headers["X-Request-Id"] = request_id_for(request)
        apply_security_headers(request, response)
        started = getattr(request.ctx, "started", None)
        principal = getattr(request.ctx, "principal", None)
        log.info(
            "request",
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status,
                "ms": round((time.perf_counter() - started) * 1000, 1) if started else None,
                "user": principal.user_id if principal else None,
            },
        )
