"""Search test helpers: backends per profile, seeding venues, a clean index per test.

Import the fixture into a test module: ``search_ctx_fixture`` (used as ``search_ctx``). In the
services profile every test that asks for it starts with no venue index (the outbox drain creates
one); the session deletes every index of its run at the end (``tests/conftest.py``); the embedded
profile has only the database backend.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import Any

import pytest
from elasticsearch import AsyncElasticsearch

from backend.context import AppContext
from backend.elastic import Searches
from search.backends import ElasticsearchBackend, SearchBackend
from search.index import alias_name, drain
from search.service import VENUE_SEARCH
from tests.conftest import PROFILE
from tests.elastic_helpers import delete_indices
from venues.models import IndexOutbox, Venue, VenueKind

BACKEND_NAMES = ["database", "elasticsearch"] if PROFILE == "services" else ["database"]
_seq = itertools.count(1)


async def delete_test_indices(client: AsyncElasticsearch, prefix: str) -> None:
    """Delete this run's venue indices."""
    await delete_indices(client, f"{prefix}-venues-*")


@pytest.fixture(name="search_ctx")
async def search_ctx_fixture(ctx: AppContext) -> AsyncIterator[AppContext]:
    """The app context, with no venue index left over and Elasticsearch not resting."""
    if ctx.elastic is not None:
        ctx.elastic.reset()
        await delete_test_indices(ctx.elastic.client, ctx.settings.es_index_prefix)
    yield ctx


def backend_named(name: str, ctx: AppContext) -> SearchBackend:
    if name == "database":
        # The app's own, long-lived backend: on SQLite its point index has followed the writes
        # of every earlier test (search/points.py), as a server process's does.
        return ctx.get(VENUE_SEARCH).database
    assert ctx.elastic is not None
    return ElasticsearchBackend(Searches(ctx.elastic.client), alias_name(ctx.settings))


@dataclass
class Spec:
    """A venue to seed (WGS-84)."""

    lat: float
    lng: float
    kind: VenueKind = VenueKind.READING_SPACE
    name: str = ""
    address: str = ""
    description: str = ""
    opening_hours: str | None = "24/7"
    accessible: bool = False
    attributes: dict[str, Any] | None = None
    public_id: str | None = None


async def seed(ctx: AppContext, specs: Iterable[Spec]) -> list[Venue]:
    """Insert venues and their outbox rows in bulk, then bring the index up to date."""
    venues = []
    for spec in specs:
        n = next(_seq)
        venues.append(
            Venue(
                public_id=spec.public_id or f"v{n:06d}",
                kind=spec.kind,
                name=spec.name or f"测试场所{n}",
                address=spec.address,
                description=spec.description,
                lat=spec.lat,
                lng=spec.lng,
                opening_hours=spec.opening_hours,
                accessible=spec.accessible,
                attributes=spec.attributes or {},
            )
        )
    await Venue.bulk_create(venues, batch_size=500)
    now = ctx.clock.now()
    await IndexOutbox.bulk_create(
        [IndexOutbox(venue_public_id=v.public_id, created_at=now) for v in venues],
        batch_size=500,
    )
    await drain(ctx, refresh=True)
    return venues


# --- an independent geodesic: Vincenty's inverse formula on WGS-84 -----------------------


def vincenty_m(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Ellipsoidal distance by Vincenty (1975), independent of geopy's Karney algorithm."""
    a, f = 6378137.0, 1 / 298.257223563
    b = (1 - f) * a
    if lat1 == lat2 and lng1 == lng2:
        return 0.0
    u1 = math.atan((1 - f) * math.tan(math.radians(lat1)))
    u2 = math.atan((1 - f) * math.tan(math.radians(lat2)))
    big_l = math.radians(lng2 - lng1)
    lam = big_l
    sin_u1, cos_u1, sin_u2, cos_u2 = math.sin(u1), math.cos(u1), math.sin(u2), math.cos(u2)
    for _ in range(200):
        sin_lam, cos_lam = math.sin(lam), math.cos(lam)
        sin_sigma = math.hypot(cos_u2 * sin_lam, cos_u1 * sin_u2 - sin_u1 * cos_u2 * cos_lam)
        if sin_sigma == 0:
            return 0.0
        cos_sigma = sin_u1 * sin_u2 + cos_u1 * cos_u2 * cos_lam
        sigma = math.atan2(sin_sigma, cos_sigma)
        sin_alpha = cos_u1 * cos_u2 * sin_lam / sin_sigma
        cos2_alpha = 1 - sin_alpha**2
        cos_2sm = cos_sigma - 2 * sin_u1 * sin_u2 / cos2_alpha if cos2_alpha else 0.0
        c = f / 16 * cos2_alpha * (4 + f * (4 - 3 * cos2_alpha))
        previous = lam
        lam = big_l + (1 - c) * f * sin_alpha * (
            sigma + c * sin_sigma * (cos_2sm + c * cos_sigma * (-1 + 2 * cos_2sm**2))
        )
        if abs(lam - previous) < 1e-12:
            break
    u_sq = cos2_alpha * (a**2 - b**2) / b**2
    big_a = 1 + u_sq / 16384 * (4096 + u_sq * (-768 + u_sq * (320 - 175 * u_sq)))
    big_b = u_sq / 1024 * (256 + u_sq * (-128 + u_sq * (74 - 47 * u_sq)))
    delta_sigma = (
        big_b
        * sin_sigma
        * (
            cos_2sm
            + big_b
            / 4
            * (
                cos_sigma * (-1 + 2 * cos_2sm**2)
                - big_b / 6 * cos_2sm * (-3 + 4 * sin_sigma**2) * (-3 + 4 * cos_2sm**2)
            )
        )
    )
    return b * big_a * (sigma - delta_sigma)
