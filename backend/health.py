"""``GET /api/v1/health``: the app and each backing service in use."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from pydantic import BaseModel
from sanic import Blueprint, Request
from sanic.response import HTTPResponse, json

from backend import db, elastic
from backend.access import Call, endpoint

bp = Blueprint("health", url_prefix="/api/v1")


class ServiceHealth(BaseModel):
    status: str
    backend: str
    latency_ms: float | None = None
    detail: str | None = None


class Health(BaseModel):
    status: str
    profile: str
    version: str
    services: dict[str, ServiceHealth]


async def _probe(backend: str, check: Callable[[], Awaitable[object]]) -> ServiceHealth:
    started = time.perf_counter()
    try:
        detail = await check()
    except Exception as exc:
        return ServiceHealth(status="down", backend=backend, detail=type(exc).__name__)
    latency = round((time.perf_counter() - started) * 1000, 2)
    return ServiceHealth(
        status="ok",
        backend=backend,
        latency_ms=latency,
        detail=detail if isinstance(detail, str) else None,
    )


@bp.get("/health")
@endpoint(
    summary="服务健康状况", tag="health", public=True, response=Health, responses={503: Health}
)
async def health(request: Request, call: Call[None, None]) -> HTTPResponse:
    settings = call.settings

    async def kv_ping() -> None:
        if not await call.kv.ping():
            raise ConnectionError("no answer")

    services = {
        "database": await _probe("sqlite" if settings.is_sqlite else "postgresql", db.ping),
        "kv": await _probe("redis" if settings.redis_url else "memory", kv_ping),
    }
    if services["kv"].status != "ok":
        # Redis holds only what can be rebuilt: requests go on with per-worker fallbacks
        # (backend/kv_resilience.py), so the app is degraded, not down.
        services["kv"].status = "degraded"
        services["kv"].detail = f"{services['kv'].detail}: per-worker fallback"
    es = call.ctx.elastic
    if es is not None:

        async def es_ping() -> str:
            return "cluster " + await elastic.ping(es.client)

        services["search"] = await _probe("elasticsearch", es_ping)
    else:

        async def db_search() -> None:
            await db.ping()

        services["search"] = await _probe("database", db_search)
    down = [name for name, s in services.items() if s.status != "ok"]
    overall = "ok" if not down else ("down" if "database" in down else "degraded")
    body = Health(status=overall, profile=settings.profile, version="0.1.0", services=services)
    return json(body.model_dump(mode="json"), status=503 if overall == "down" else 200)
