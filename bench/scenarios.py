"""The scenarios: what each one sends, to whom, and which answers count as served.

HTTP scenarios with a fixed duration run under wrk (``bench/wrk.py``); voting and the PostgreSQL
ceiling run under the asyncio generator (``bench/pyload.py``) because their counts must be exact;
the booking race is one burst of 256 residents.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from urllib.parse import urlencode

from bench.ceilings import es_requests
from bench.config import BenchConfig
from bench.data import Plan
from bench.wrk import Request

CENTRE, SPREAD = (31.82, 117.25), (0.06, 0.08)  # central Hefei (WGS-84)
VENUE_RADIUS_M, HITS = 3000, 20
WELL_KNOWN_TITLES = ("红楼梦", "三体", "活着")
REQUESTS_PER_FILE = 2000


@dataclass(frozen=True)
class WrkScenario:
    key: str
    title: str
    requests: list[Request]
    target: str = "app"  # or "elasticsearch"
    expect: tuple[str, ...] = ("200",)


def points(count: int = REQUESTS_PER_FILE, seed: int = 7) -> list[tuple[float, float]]:
    rng = random.Random(seed)
    return [
        (
            round(CENTRE[0] + rng.uniform(-SPREAD[0], SPREAD[0]), 6),
            round(CENTRE[1] + rng.uniform(-SPREAD[1], SPREAD[1]), 6),
        )
        for _ in range(count)
    ]


def _search(path: str, where: list[tuple[float, float]]) -> list[Request]:
    return [
        Request(
            "GET",
            path
            + "?"
            + urlencode({"lat": lat, "lng": lng, "radius_m": VENUE_RADIUS_M, "limit": HITS}),
        )
        for lat, lng in where
    ]


def _signed_in(path: str, tokens: list[str]) -> list[Request]:
    return [Request("GET", path, auth=token) for token in tokens[:REQUESTS_PER_FILE]]


def before_votes(config: BenchConfig, plan: Plan) -> list[WrkScenario]:
    where = points()
    books = [
        Request(
            "GET",
            "/api/v1/books/search?"
            + urlencode(
                {"q": WELL_KNOWN_TITLES[i % len(WELL_KNOWN_TITLES)], "lat": lat, "lng": lng}
            ),
        )
        for i, (lat, lng) in enumerate(where)
    ]
    scenarios = [
        WrkScenario(
            "noop", "trivial route, 20 fixed hits (ceiling)", _search("/bench/noop", where)
        ),
        WrkScenario(
            "signed_in", "signed-in check (token only)", _signed_in("/bench/signed-in", plan.tokens)
        ),
        WrkScenario(
            "me", "GET /api/v1/me (token + user row)", _signed_in("/api/v1/me", plan.tokens)
        ),
        WrkScenario(
            "venue_search",
            f"venue search, {VENUE_RADIUS_M // 1000} km, {HITS} hits",
            _search("/api/v1/venues/search", where),
        ),
    ]
    if config.profile == "services":
        scenarios.append(
            WrkScenario(
                "es_direct",
                "the same geo query straight to Elasticsearch (ceiling)",
                es_requests(f"{config.es_prefix}-venues", where, VENUE_RADIUS_M),
                target="elasticsearch",
            )
        )
    scenarios.append(WrkScenario("book_search", "book search, well-known titles, 5 km", books))
    return scenarios


def after_votes(plan: Plan) -> list[WrkScenario]:
    ranking = f"/api/v1/campaigns/{plan.campaign_id}/pain-points?sort=votes"
    return [WrkScenario("ranking", "campaign ranking (sort=votes)", [Request("GET", ranking)])]


def booking_race(plan: Plan, racers: int = 256, *, warm_up: bool = False) -> list[dict[str, str]]:
    """The race: the last ``racers`` residents on the court's 15:00 slot. Its warm-up (run
    before, like every scenario's): as many other residents on the 17:00 slot, so the measured
    burst meets warm pools and connections, not the first requests of a fresh server."""
    start, people = plan.booking_start, plan.tokens[-racers:]
    if warm_up:
        start = start.replace("T15:00", "T17:00", 1)
        people = plan.tokens[-2 * racers : -racers]
    body = f'{{"unit_id": "{plan.unit_id}", "start": "{start}"}}'
    return [
        {"method": "POST", "path": "/api/v1/bookings", "auth": token, "body": body}
        for token in people
    ]


TITLES = {
    "votes": "votes, distinct people, hot pain points",
    "pg_insert": "plain INSERT per vote into PostgreSQL (ceiling)",
    "booking_race": "booking race, 256 residents, one slot",
}
