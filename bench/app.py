"""The app the bench serves: ``sanic bench.app:create_bench_app --factory``.

It is the shipped app (``server.app.create_app``: the same features, middleware, access checks and
workers) plus one bench-only blueprint under ``/bench`` that gives the ceilings of the web layer:

* ``GET /bench/noop`` parses the venue search's query and answers 20 fixed hits — everything a
  search request costs except the search;
* ``GET /bench/signed-in`` only authenticates the caller (token signature, expiry, revocation).

Nothing shipped imports this module (an import-linter contract forbids it).
"""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request, Sanic
from sanic.response import HTTPResponse, json
from sanic.worker.manager import WorkerManager

from backend.access import Call, endpoint
from search.schemas import SearchHit, SearchPage, VenueSearchQuery
from server.app import create_app

# Sanic gives workers 30 s to come up (in tenths of a second; its documented knob). On a busy
# 2-core machine spawning workers that import the whole app can take longer than that.
WorkerManager.THRESHOLD = 1200


def _fake_page() -> dict[str, Any]:
    hits = [
        SearchHit(
            id=f"bench{i:027d}",
            kind="public_toilet",  # type: ignore[arg-type]
            name=f"长江中路{i}号公厕",
            address=f"合肥市庐阳区长江中路{i}号",
            district="庐阳区",
            street="逍遥津街道",
            location={"lat": 31.86 + i / 1000, "lng": 117.28},  # type: ignore[arg-type]
            distance_m=100 * i,
            open_now=True,
            next_change=None,
            status="open",  # type: ignore[arg-type]
            accessible=True,
        )
        for i in range(20)
    ]
    return SearchPage(items=hits, next_cursor=None).model_dump(mode="json")


PAGE = _fake_page()


def bench_blueprint() -> Blueprint:
    bp = Blueprint("bench", url_prefix="/bench")

    @bp.get("/noop")
    @endpoint(summary="bench: 20 fixed hits", tag="bench", public=True, query=VenueSearchQuery)
    async def noop(request: Request, call: Call) -> HTTPResponse:
        return json(PAGE)

    @bp.get("/signed-in")
    @endpoint(summary="bench: authenticate only", tag="bench", signed_in=True)
    async def signed_in(request: Request, call: Call) -> HTTPResponse:
        return json({"user": call.user.user_id})

    return bp


def create_bench_app(*_: object) -> Sanic:
    """The shipped app with the bench blueprint (settings from the environment)."""
    app = create_app()
    app.blueprint(bench_blueprint())
    return app
