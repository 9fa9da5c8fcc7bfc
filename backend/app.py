"""The app factory: ``sanic backend.app:create_app --factory``."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid

import httpx
from sanic import DefaultSanic, Request, Sanic
from sanic.response import HTTPResponse

from backend import db, elastic, scheduler
from backend.access import AppContext, check_every_route_declared, route_access
from backend.auth.views import bp as auth_bp
from backend.auth.wechat import WeChatClient
from backend.clock import Clock
from backend.config import Settings
from backend.errors import Forbidden, install_error_handlers
from backend.health import bp as health_bp
from backend.kv import MemoryKeyValue, RedisKeyValue
from backend.logs import configure_logging, request_id_var
from backend.notifications import bp as notifications_bp
from crowdsource import scheduled as crowdsource_scheduled
from crowdsource.challenges import scheduled as challenges_scheduled
from crowdsource.challenges.views import bp as vendors_bp
from crowdsource.challenges.views import challenges_bp
from crowdsource.open311 import bp as open311_bp
from crowdsource.open311 import clients_bp as open311_clients_bp
from crowdsource.views import bp as crowdsource_bp
from search import scheduled as search_scheduled
from search.views import bp as search_bp
from venues.bookings import scheduled as bookings_scheduled
from venues.bookings.views import bp as bookings_bp
from venues.views import bp as venues_bp

log = logging.getLogger("smartcircle.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")

# (blueprint, job registration) of every feature, in mounting order.
BLUEPRINTS = (
    health_bp,
    auth_bp,
    crowdsource_bp,
    vendors_bp,
    challenges_bp,
    notifications_bp,
    open311_bp,
    open311_clients_bp,
    search_bp,
    venues_bp,
    bookings_bp,
)
JOB_REGISTRATIONS = (
    scheduler.register,
    search_scheduled.register,
    crowdsource_scheduled.register,
    challenges_scheduled.register,
    bookings_scheduled.register,
)


def _dumps(value: object, **kwargs: object) -> str:
    # json.dumps types each keyword on its own; Sanic passes only the ones json.dumps takes.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), **kwargs)  # type: ignore[arg-type]


def create_app(settings: Settings | None = None) -> DefaultSanic:
    """Build the app for these settings (read from the environment when not given)."""
    if not isinstance(settings, Settings):  # the sanic CLI passes its own arguments
        settings = Settings.from_env()
    configure_logging(settings.log_level, settings.log_json)
    app = Sanic("smartcircle", strict_slashes=False, dumps=_dumps)
    app.config.REQUEST_MAX_SIZE = settings.max_body_bytes
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.ACCESS_LOG = False
    app.config.DEBUG = settings.debug
    app.config.OAS_UI_DEFAULT = "swagger"
    app.config.OAS_URL_PREFIX = "/docs"
    app.config.OAS_IGNORE_HEAD = True
    app.config.OAS_IGNORE_OPTIONS = True
    app.config.CORS = False
    app.extend(config={"oas_autodoc": False, "health": False})
    app.ext.openapi.describe(
        "智慧生活圈 API",
        version="0.1.0",
        description="Neighbourhood resources, geo search, bookings and pain-point crowdsourcing.",
    )
    app.ext.openapi.add_security_scheme("bearer", "http", scheme="bearer", bearer_format="JWT")
    app.ext.openapi.add_security_scheme("apiKey", "apiKey", location="header", name="X-Api-Key")

    clock = Clock()
    kv = (
        RedisKeyValue.from_url(settings.redis_url, prefix=settings.kv_prefix)
        if settings.redis_url
        else MemoryKeyValue(prefix=settings.kv_prefix)
    )
    ctx = AppContext(settings=settings, kv=kv, clock=clock)
    app.ctx.app_context = ctx
    app.ctx.settings = settings
    jobs = scheduler.Jobs(ctx)
    app.ctx.jobs = jobs
    for register in JOB_REGISTRATIONS:
        register(jobs)

    db.register_database(app, settings)
    _register_clients(app, ctx)
    _register_middleware(app)
    for bp in BLUEPRINTS:
        app.blueprint(bp)
    install_error_handlers(app)

    @app.before_server_start
    async def _check_routes(app: DefaultSanic) -> None:
        check_every_route_declared(app)

    @app.after_server_start
    async def _start_jobs(app: DefaultSanic) -> None:
        if settings.scheduler_enabled:
            jobs.start()

    @app.before_server_stop
    async def _stop_jobs(app: DefaultSanic) -> None:
        jobs.shutdown()

    return app


def _register_clients(app: DefaultSanic, ctx: AppContext) -> None:
    settings = ctx.settings

    @app.before_server_start
    async def _open_clients(app: DefaultSanic) -> None:
        http = httpx.AsyncClient(timeout=settings.wechat_timeout)
        ctx.extras["http"] = http
        ctx.extras["wechat"] = WeChatClient(
            base_url=settings.wechat_base_url,
            appid=settings.wechat_appid,
            secret=settings.wechat_secret,
            http=http,
        )
        if settings.elasticsearch_url:
            ctx.extras["es"] = elastic.create_client(settings)

    @app.after_server_stop
    async def _close_clients(app: DefaultSanic) -> None:
        http = ctx.extras.pop("http", None)
        if http is not None:
            await http.aclose()
        es = ctx.extras.pop("es", None)
        if es is not None:
            await es.close()
        await ctx.kv.close()


def _register_middleware(app: DefaultSanic) -> None:
    @app.on_request
    async def _before(request: Request) -> None:
        incoming = request.headers.get("x-request-id", "")
        request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.ctx.request_id = request_id
        request.ctx.started = time.perf_counter()
        request_id_var.set(request_id)
        if route_access(request) is None:
            raise Forbidden("该接口未声明访问权限", code="route_not_declared")

    @app.on_response  # type: ignore[untyped-decorator]  # sanic leaves on_response unannotated
    async def _after(request: Request, response: HTTPResponse) -> None:
        request_id = getattr(request.ctx, "request_id", None) or uuid.uuid4().hex
        response.headers["X-Request-Id"] = request_id
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
