"""The search contract: the same assertions against every backend of the profile.

Embedded: the database backend. Services: the database backend and Elasticsearch. Each is
checked against an independent geodesic (Vincenty) computed here: a difference in order, or a
distance more than 1 m off, fails.
"""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import datetime, timedelta

import pytest

from backend import geo
from backend.clock import SHANGHAI
from search.backends import SearchParams
from tests.search_fixtures import (  # noqa: F401 - fixtures
    BACKEND_NAMES,
    Spec,
    backend_named,
    search_ctx_fixture,
    seed,
    vincenty_m,
)
from venues.models import VenueKind

CENTRE = geo.Point(31.8206, 117.2272)  # 合肥，荷叶地街道附近
WEDNESDAY_10AM = datetime(2026, 11, 18, 10, 0, tzinfo=SHANGHAI)
pytestmark = pytest.mark.parametrize("backend_name", BACKEND_NAMES)


def offset(centre: geo.Point, north_m: float, east_m: float) -> geo.Point:
    return geo.Point(
        centre.lat + north_m / 111_320,
        centre.lng + east_m / (111_320 * math.cos(math.radians(centre.lat))),
    )


def scatter(n: int, *, seed_: int, reach_m: float) -> list[Spec]:
    rng = random.Random(seed_)
    kinds = list(VenueKind)
    specs = []
    for i in range(n):
        distance = reach_m * math.sqrt(rng.random())
        bearing = rng.uniform(0, 2 * math.pi)
        p = offset(CENTRE, distance * math.cos(bearing), distance * math.sin(bearing))
        specs.append(Spec(lat=p.lat, lng=p.lng, kind=kinds[i % len(kinds)]))
    # Exact ties: several venues on one spot, and a ring at one distance.
    spot = offset(CENTRE, 800, -300)
    specs += [Spec(lat=spot.lat, lng=spot.lng, public_id=f"tie-{c}") for c in "dbcae"]
    return specs


def expected_order(venues, centre: geo.Point, radius_m: int):
    keyed = []
    for v in venues:
        exact = vincenty_m(centre.lat, centre.lng, v.lat, v.lng)
        metres = math.floor(exact + 0.5)
        if metres <= radius_m:
            keyed.append((metres, v.public_id, exact))
    keyed.sort()
    return keyed


async def collect(backend, params: SearchParams) -> tuple[list, int]:
    """Every hit, page by page; and the number of pages."""
    hits, pages, after = [], 0, None
    while True:
        page = await backend.search(dataclasses.replace(params, after=after))
        pages += 1
        hits += page.hits
        if page.next_key is None:
            return hits, pages
        assert page.next_key == page.hits[-1].key
        after = page.next_key
        assert pages < 1000


def params(ctx, **overrides) -> SearchParams:
    base = {"centre": CENTRE, "radius_m": 5000, "now": ctx.clock.now(), "limit": 20}
    return SearchParams(**{**base, **overrides})


async def test_order_and_distance_match_an_independent_geodesic(search_ctx, backend_name):
    venues = await seed(search_ctx, scatter(300, seed_=1, reach_m=7000))
    backend = backend_named(backend_name, search_ctx)
    hits, pages = await collect(backend, params(search_ctx, limit=100))
    expected = expected_order(venues, CENTRE, 5000)
    assert [h.doc.id for h in hits] == [k[1] for k in expected]
    assert pages == math.ceil(len(expected) / 100)
    for hit, (metres, _, exact) in zip(hits, expected, strict=True):
        assert hit.distance_m == metres
        assert abs(hit.distance_m - exact) <= 1
    ties = [h.doc.id for h in hits if h.doc.id.startswith("tie-")]
    assert ties == ["tie-a", "tie-b", "tie-c", "tie-d", "tie-e"]


async def test_small_pages_are_stable_and_complete(search_ctx, backend_name):
    venues = await seed(search_ctx, scatter(150, seed_=2, reach_m=3000))
    backend = backend_named(backend_name, search_ctx)
    whole, _ = await collect(backend, params(search_ctx, limit=100, radius_m=2500))
    paged, pages = await collect(backend, params(search_ctx, limit=7, radius_m=2500))
    assert [h.key for h in paged] == [h.key for h in whole]
    assert len({h.doc.id for h in paged}) == len(paged)
    assert pages == math.ceil(len(whole) / 7)
    assert [h.doc.id for h in whole] == [k[1] for k in expected_order(venues, CENTRE, 2500)]


async def test_a_far_centre_and_a_tiny_radius(search_ctx, backend_name):
    far = offset(CENTRE, 20_000, 20_000)
    near = offset(far, 30, 40)  # 50 m away
    await seed(
        search_ctx,
        [Spec(lat=near.lat, lng=near.lng, public_id="near"), Spec(lat=far.lat, lng=far.lng)],
    )
    backend = backend_named(backend_name, search_ctx)
    result = await backend.search(params(search_ctx, centre=far, radius_m=49))
    assert [h.distance_m for h in result.hits] == [0]
    result = await backend.search(params(search_ctx, centre=far, radius_m=51))
    assert [h.doc.id for h in result.hits][-1] == "near"
    assert result.hits[-1].distance_m == 50
    assert result.next_key is None


async def test_filters(search_ctx, backend_name):
    search_ctx.clock.set(WEDNESDAY_10AM)
    now = search_ctx.clock.now()
    fresh = (now - timedelta(minutes=3)).isoformat()
    old = (now - timedelta(hours=2)).isoformat()

    def at(n):
        p = offset(CENTRE, 100 * n, 50)
        return {"lat": p.lat, "lng": p.lng}

    def lot(n, name, free=None, observed=None):
        attributes = {"capacity": 100, "free_spaces": free, "observed_at": observed}
        return Spec(**at(n), public_id=name, kind=VenueKind.PARKING_LOT, attributes=attributes)

    specs = [
        Spec(**at(1), public_id="toilet-ok", kind=VenueKind.PUBLIC_TOILET, accessible=True),
        Spec(**at(2), public_id="toilet-x", kind=VenueKind.PUBLIC_TOILET),
        Spec(**at(3), public_id="read-shut", opening_hours="Sa-Su 09:00-17:00"),
        Spec(**at(4), public_id="read-open", opening_hours="Mo-Fr 08:00-18:00"),
        Spec(**at(5), public_id="read-nohours", opening_hours=None),
        lot(6, "park-many", 50, fresh),
        lot(7, "park-few", 2, fresh),
        lot(8, "park-full", 0, fresh),
        lot(9, "park-stale", 80, old),
        lot(10, "park-none"),
        Spec(**at(11), public_id="sport", kind=VenueKind.SPORTS_VENUE, accessible=True),
    ]
    await seed(search_ctx, specs)
    backend = backend_named(backend_name, search_ctx)

    async def ids(**filters):
        hits, _ = await collect(backend, params(search_ctx, limit=4, **filters))
        return [h.doc.id for h in hits]

    everything = [s.public_id for s in specs]
    assert await ids() == everything
    assert await ids(kinds=("public_toilet",)) == ["toilet-ok", "toilet-x"]
    assert await ids(kinds=("public_toilet", "sports_venue")) == ["toilet-ok", "toilet-x", "sport"]
    assert await ids(accessible=True) == ["toilet-ok", "sport"]
    open_now = await ids(open_now=True)
    assert "read-shut" not in open_now and "read-nohours" not in open_now
    assert "read-open" in open_now and "toilet-ok" in open_now
    assert await ids(has_free_spaces=True) == ["park-many", "park-few"]
    hits, _ = await collect(backend, params(search_ctx, kinds=("parking_lot",)))
    states = {h.doc.id: (h.state.parking_state, h.state.stale) for h in hits}
    assert states == {
        "park-many": ("many", False),
        "park-few": ("few", False),
        "park-full": ("full", False),
        "park-stale": ("unknown", True),
        "park-none": ("unknown", True),
    }
    hits, _ = await collect(backend, params(search_ctx, kinds=("reading_space",)))
    opened = next(h for h in hits if h.doc.id == "read-open")
    assert opened.state.next_change == WEDNESDAY_10AM.replace(hour=18)


async def test_chinese_keyword(search_ctx, backend_name):
    def at(n):
        p = offset(CENTRE, -120 * n, 30)
        return {"lat": p.lat, "lng": p.lng}

    specs = [
        Spec(**at(1), public_id="k1", name="荷叶地街道阅读空间", address="包河区徽州大道"),
        Spec(**at(2), public_id="k2", name="包河区图书馆", address="包河区马鞍山路"),
        Spec(**at(3), public_id="k3", name="社区活动室", address="蜀山区长江西路100号"),
        Spec(**at(4), public_id="k4", name="体育馆", description="提供羽毛球场地和乒乓球台"),
        Spec(**at(5), public_id="k5", name="城市书房", description="24小时自助阅读"),
    ]
    await seed(search_ctx, specs)
    backend = backend_named(backend_name, search_ctx)

    async def ids(q):
        return [h.doc.id for h in (await backend.search(params(search_ctx, q=q))).hits]

    assert await ids("阅读") == ["k1", "k5"]
    assert await ids("图书") == ["k2"]
    assert await ids("书图") == []
    assert await ids("长江西路") == ["k3"]
    assert await ids("羽毛球") == ["k4"]
    assert await ids("包河区") == ["k1", "k2"]
    assert await ids("叶地街") == ["k1"]


async def test_random_queries_page_in_the_independent_order(search_ctx, backend_name):
    venues = await seed(search_ctx, scatter(400, seed_=3, reach_m=12_000))
    backend = backend_named(backend_name, search_ctx)
    rng = random.Random(4)
    for _ in range(6):
        centre = offset(CENTRE, rng.uniform(-6000, 6000), rng.uniform(-6000, 6000))
        radius = rng.choice([300, 2000, 5000, 9000])
        limit = rng.choice([1, 5, 13, 40])
        hits, _ = await collect(
            backend, params(search_ctx, centre=centre, radius_m=radius, limit=limit)
        )
        expected = expected_order(venues, centre, radius)
        assert [(h.distance_m, h.doc.id) for h in hits] == [k[:2] for k in expected]


async def test_geodesic_order_wins_where_the_sphere_disagrees(search_ctx, backend_name):
    # On the sphere (Elasticsearch's arc) a point due east looks ~0.5 % nearer than one due north
    # at the same geodesic distance: the arc order of these pairs is the reverse of the true one.
    from geopy.distance import geodesic

    def at(bearing: float, metres: float) -> dict:
        p = geodesic(meters=metres).destination((CENTRE.lat, CENTRE.lng), bearing)
        return {"lat": p.latitude, "lng": p.longitude}

    specs, expected = [], []
    for n, base in enumerate((3000, 10_000, 20_000)):
        group = [Spec(**at(0, base), public_id=f"n{n}")]
        group += [Spec(**at(90, base * (1 + k / 1000)), public_id=f"e{n}{k}") for k in (1, 2, 3)]
        specs += group
        expected += [g.public_id for g in group]
        # The premise: the sphere puts all three east venues before the north one.
        north = geo.arc_m(CENTRE, geo.Point(group[0].lat, group[0].lng))
        assert all(geo.arc_m(CENTRE, geo.Point(e.lat, e.lng)) < north for e in group[1:])
    await seed(search_ctx, specs)
    backend = backend_named(backend_name, search_ctx)
    for limit in (1, 2, 5):
        hits, _ = await collect(backend, params(search_ctx, radius_m=25_000, limit=limit))
        assert [h.doc.id for h in hits] == expected


async def test_the_scan_crosses_batches_when_the_sphere_disagrees(search_ctx, backend_name):
    # Sixty venues east of the centre that the sphere puts before one due north, although the
    # north one is truly the nearest: more than one Elasticsearch batch must be read.
    from geopy.distance import geodesic

    def at(bearing: float, metres: float) -> dict:
        p = geodesic(meters=metres).destination((CENTRE.lat, CENTRE.lng), bearing)
        return {"lat": p.latitude, "lng": p.longitude}

    base = 15_000
    north = Spec(**at(0, base), public_id="north")
    east = [
        Spec(**at(85 + k / 6, base * (1.001 + k / 30_000)), public_id=f"east{k:02d}")
        for k in range(60)
    ]
    north_arc = geo.arc_m(CENTRE, geo.Point(north.lat, north.lng))
    assert all(geo.arc_m(CENTRE, geo.Point(e.lat, e.lng)) < north_arc for e in east)
    await seed(search_ctx, [north, *east])
    backend = backend_named(backend_name, search_ctx)
    first = await backend.search(params(search_ctx, radius_m=20_000, limit=1))
    assert [h.doc.id for h in first.hits] == ["north"]
    hits, _ = await collect(backend, params(search_ctx, radius_m=20_000, limit=7))
    expected = expected_order([north, *east], CENTRE, 20_000)
    assert [h.doc.id for h in hits] == [k[1] for k in expected]
