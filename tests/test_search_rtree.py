"""The database search's spatial index follows every write, and the search stays exact.

On SQLite the database backend reads its boxes through the R*Tree ``venues_venue_rtree``
(``venues/migrations/0005_venue_rtree.py``), kept by triggers; on PostgreSQL through the
``(lat, lng)`` B-tree. Either way a moved venue is found at its new place only, a removed one
never, and pages equal a brute-force ranking of every venue. On SQLite the R*Tree's contents are
also compared with the table after each step.
"""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import UTC, datetime

from tortoise import connections

from backend import geo
from search.backends import SearchParams
from search.database import DatabaseBackend, candidates_query, next_radius
from search.service import VENUE_SEARCH
from tests.conftest import PROFILE
from tests.search_fixtures import (  # noqa: F401 - fixtures
    Spec,
    search_ctx_fixture,
    seed,
    vincenty_m,
)
from venues.models import Venue, VenueKind, VenueStatus

CENTRE = geo.Point(31.8206, 117.2272)
SQLITE = PROFILE == "embedded"


def offset(centre: geo.Point, north_m: float, east_m: float) -> geo.Point:
    return geo.Point(
        centre.lat + north_m / 111_320,
        centre.lng + east_m / (111_320 * math.cos(math.radians(centre.lat))),
    )


async def found(ctx, centre: geo.Point, radius_m: int = 500, **filters) -> list[str]:
    """Every hit's public id, all pages, nearest first."""
    params = SearchParams(centre=centre, radius_m=radius_m, now=ctx.clock.now(), **filters)
    # The app's long-lived backend (on SQLite its point index catches up with the writes since
    # its last search) and a new one (which loads the table) must agree.
    answers = []
    for backend in (ctx.get(VENUE_SEARCH).database, DatabaseBackend()):
        ids, after = [], None
        while True:
            page = await backend.search(dataclasses.replace(params, after=after))
            ids += [h.doc.id for h in page.hits]
            if page.next_key is None:
                break
            after = page.next_key
        answers.append(ids)
    assert answers[0] == answers[1]
    return answers[0]


async def assert_index_matches_table() -> None:
    """SQLite: one R*Tree entry per venue not removed, its (32-bit) box holding the point."""
    if not SQLITE:
        return
    conn = connections.get("default")
    _, entries = await conn.execute_query(
        'SELECT id, min_lat, max_lat, min_lng, max_lng FROM "venues_venue_rtree"'
    )
    boxes = {row[0]: tuple(row[1:]) for row in entries}
    venues = await Venue.exclude(status=VenueStatus.REMOVED).values_list("id", "lat", "lng")
    assert set(boxes) == {pk for pk, _, _ in venues}
    for pk, lat, lng in venues:
        min_lat, max_lat, min_lng, max_lng = boxes[pk]
        assert min_lat <= lat <= max_lat and min_lng <= lng <= max_lng
        assert max_lat - min_lat < 1e-4 and max_lng - min_lng < 1e-4


async def test_the_index_follows_inserts_moves_and_removals(search_ctx):
    here, there = CENTRE, offset(CENTRE, 5000, 3000)
    await seed(search_ctx, [Spec(lat=here.lat, lng=here.lng, public_id="mover")])
    created = await Venue.create(
        public_id="created",
        kind=VenueKind.PUBLIC_TOILET,
        name="新建公厕",
        lat=here.lat,
        lng=here.lng + 0.001,
    )
    await assert_index_matches_table()
    assert await found(search_ctx, here) == ["mover", "created"]
    assert await found(search_ctx, there) == []

    # Moved by a bulk UPDATE: found at the new place, not at the old.
    await Venue.filter(public_id="mover").update(lat=there.lat, lng=there.lng)
    await assert_index_matches_table()
    assert await found(search_ctx, here) == ["created"]
    assert await found(search_ctx, there) == ["mover"]

    # Moved by saving the model.
    created.lat, created.lng = there.lat, there.lng + 0.001
    await created.save()
    await assert_index_matches_table()
    assert await found(search_ctx, here) == []
    assert await found(search_ctx, there) == ["mover", "created"]

    # Removed: never found, not even on its own spot with a wide radius; reopened: back.
    await Venue.filter(public_id="mover").update(status=VenueStatus.REMOVED)
    await assert_index_matches_table()
    assert await found(search_ctx, there, radius_m=50_000) == ["created"]
    await Venue.filter(public_id="mover").update(status=VenueStatus.TEMPORARILY_CLOSED)
    await assert_index_matches_table()
    assert await found(search_ctx, there) == ["mover", "created"]

    # A removed venue that moves stays out; deleted rows leave the index.
    await Venue.filter(public_id="mover").update(status=VenueStatus.REMOVED)
    await Venue.filter(public_id="mover").update(lat=here.lat, lng=here.lng)
    await assert_index_matches_table()
    assert await found(search_ctx, here, radius_m=50_000) == ["created"]
    await created.delete()
    await assert_index_matches_table()
    assert await found(search_ctx, there, radius_m=50_000) == []


async def _raw_writes_are_found_on_postgresql(search_ctx) -> None:
    conn = connections.get("default")
    spot = offset(CENTRE, 1000, 0)
    stamp = datetime(2026, 11, 30, 8, tzinfo=UTC)
    for i in range(3):
        await conn.execute_query(
            'INSERT INTO "venues_venue" ("public_id", "kind", "name", "address", "district", '
            '"street", "lat", "lng", "phone", "description", "photos", "status", "closed_reason", '
            '"attributes", "accessible", "created_at", "updated_at") VALUES ($1, $2, $3, \'\', '
            "'', '', $4, $5, '', '', '[]', $6, '', '{}', false, $7, $7)",
            [f"raw-{i}", "public_toilet", f"公厕{i}", spot.lat + i * 1e-4, spot.lng,
             "removed" if i == 2 else "open", stamp],
        )  # fmt: skip
    assert await found(search_ctx, spot) == ["raw-0", "raw-1"]
    await conn.execute_query(
        'UPDATE "venues_venue" SET "lng" = "lng" + 0.1 WHERE "public_id" = $1', ["raw-0"]
    )
    assert await found(search_ctx, spot) == ["raw-1"]


async def test_raw_sql_writes_keep_the_index(search_ctx):
    if not SQLITE:  # PostgreSQL has no R*Tree to keep: the search reads the table itself
        await _raw_writes_are_found_on_postgresql(search_ctx)
        return
    conn = connections.get("default")
    spot = offset(CENTRE, 1000, 0)
    columns = (
        '"public_id", "kind", "name", "address", "district", "street", "lat", "lng", "phone", '
        '"description", "photos", "status", "closed_reason", "attributes", "accessible", '
        '"created_at", "updated_at"'
    )
    rows = [
        (
            f"raw-{i}",
            "public_toilet",
            f"公厕{i}",
            "",
            "",
            "",
            spot.lat + i * 1e-4,
            spot.lng,
            "",
            "",
            "[]",
            "removed" if i == 2 else "open",
            "",
            "{}",
            0,
            "2026-11-30 08:00:00",
            "2026-11-30 08:00:00",
        )
        for i in range(4)
    ]
    await conn.execute_many(
        f'INSERT INTO "venues_venue" ({columns}) VALUES ({", ".join("?" * 17)})', rows
    )
    await assert_index_matches_table()
    assert await found(search_ctx, spot) == ["raw-0", "raw-1", "raw-3"]
    await conn.execute_query(
        'UPDATE "venues_venue" SET "lng" = "lng" + 0.1 WHERE "public_id" IN (?, ?)',
        ["raw-0", "raw-2"],
    )
    await conn.execute_query('DELETE FROM "venues_venue" WHERE "public_id" = ?', ["raw-3"])
    await assert_index_matches_table()
    assert await found(search_ctx, spot) == ["raw-1"]
    assert await found(search_ctx, geo.Point(spot.lat, spot.lng + 0.1)) == ["raw-0"]


def brute_force(venues: list[Venue], params: SearchParams) -> list[tuple[int, str]]:
    """Every venue's key by an independent geodesic, filtered as the contract says."""
    keys = []
    for v in venues:
        if v.status == VenueStatus.REMOVED:
            continue
        if params.kinds and v.kind not in params.kinds:
            continue
        if params.accessible and not v.accessible:
            continue
        if params.q and not any(params.q in text for text in (v.name, v.address, v.description)):
            continue
        metres = math.floor(vincenty_m(params.centre.lat, params.centre.lng, v.lat, v.lng) + 0.5)
        if metres <= params.radius_m:
            keys.append((metres, v.public_id))
    return sorted(keys)


async def test_random_searches_equal_a_brute_force_ranking_after_random_writes(search_ctx):
    rng = random.Random(13)
    kinds = list(VenueKind)
    names = ["城市书房", "社区公厕", "羽毛球馆", "停车场", "活动室"]
    specs = []
    for i in range(400):
        p = offset(CENTRE, rng.uniform(-8000, 8000), rng.uniform(-8000, 8000))
        specs.append(
            Spec(
                lat=p.lat,
                lng=p.lng,
                kind=kinds[i % len(kinds)],
                name=f"{rng.choice(names)}{i}",
                accessible=rng.random() < 0.4,
            )
        )
    specs += [Spec(lat=CENTRE.lat, lng=CENTRE.lng, public_id=f"tie-{c}") for c in "cab"]
    await seed(search_ctx, specs)
    # Writes after the load: moves (some far away), removals, reopenings.
    ids = await Venue.all().values_list("id", flat=True)
    for pk in rng.sample(ids, 80):
        p = offset(CENTRE, rng.uniform(-20_000, 20_000), rng.uniform(-20_000, 20_000))
        await Venue.filter(id=pk).update(lat=p.lat, lng=p.lng)
    for pk in rng.sample(ids, 60):
        await Venue.filter(id=pk).update(status=VenueStatus.REMOVED)
    for pk in rng.sample(ids, 20):
        await Venue.filter(id=pk).update(status=VenueStatus.OPEN)
    await assert_index_matches_table()
    venues = await Venue.all()
    backend = search_ctx.get(VENUE_SEARCH).database
    for _ in range(25):
        params = SearchParams(
            centre=offset(CENTRE, rng.uniform(-9000, 9000), rng.uniform(-9000, 9000)),
            radius_m=rng.choice([200, 1000, 3000, 8000, 25_000]),
            now=search_ctx.clock.now(),
            limit=rng.choice([1, 7, 20, 60]),
            kinds=tuple(rng.sample(kinds, 2)) if rng.random() < 0.3 else (),
            accessible=rng.random() < 0.3,
            q=rng.choice(names[:3]) if rng.random() < 0.25 else None,
        )
        keys, after = [], None
        while True:
            page = await backend.search(dataclasses.replace(params, after=after))
            keys += [h.key for h in page.hits]
            if page.next_key is None:
                break
            after = page.next_key
        assert keys == brute_force(venues, params), params


async def test_boxes_across_the_antimeridian(search_ctx):
    # Taveuni, Fiji: the 180th meridian runs through the island.
    centre = geo.Point(-16.85, 179.999)
    east, west = offset(centre, 300, 50), offset(centre, -200, 300)
    assert west.lng > 180  # the offset runs past the meridian: wrap it
    west = geo.Point(west.lat, west.lng - 360)
    far = geo.Point(-16.85, -179.9)
    await seed(
        search_ctx,
        [
            Spec(lat=east.lat, lng=east.lng, public_id="east"),
            Spec(lat=west.lat, lng=west.lng, public_id="west"),
            Spec(lat=far.lat, lng=far.lng, public_id="far"),
        ],
    )
    assert geo.bounding_box(centre, 2000).crosses_antimeridian
    assert await found(search_ctx, centre, radius_m=2000) == ["east", "west"]
    assert await found(search_ctx, centre, radius_m=20_000) == ["east", "west", "far"]
    assert await found(search_ctx, far, radius_m=50) == ["far"]
    venues = await Venue.all()
    params = SearchParams(centre=centre, radius_m=20_000, now=search_ctx.clock.now())
    assert [k[1] for k in brute_force(venues, params)] == ["east", "west", "far"]


async def test_the_box_query_walks_the_rtree(search_ctx):
    if not SQLITE:  # PostgreSQL keeps the (lat, lng) B-tree: no R*Tree table exists there
        conn = connections.get("default")
        _, rows = await conn.execute_query(
            "SELECT count(*) AS n FROM information_schema.tables WHERE table_name LIKE '%rtree%'"
        )
        assert rows[0]["n"] == 0
        return
    box = geo.bounding_box(CENTRE, 3000)
    params = SearchParams(centre=CENTRE, radius_m=3000, now=search_ctx.clock.now(), q="书")
    sql, values = candidates_query(
        "sqlite", params, box, floor=0.0, below=None, after=None, limit=50
    )
    conn = connections.get("default")
    _, plan = await conn.execute_query(f"EXPLAIN QUERY PLAN {sql}", values)
    steps = [row[3] for row in plan]
    assert any("VIRTUAL TABLE" in step for step in steps), steps
    assert not any("idx_venues_ven_lat" in step for step in steps), steps


async def test_candidates_are_read_in_arc_order_across_chunks_and_ties(search_ctx):
    # 70 closed venues share one spot (the same arc), so a page of open ones needs several
    # chunks of candidates (50 for a page of 20) whose keys continue inside a tie.
    spot, near = offset(CENTRE, 300, 0), offset(CENTRE, 0, 100)
    specs = [
        Spec(lat=spot.lat, lng=spot.lng, opening_hours=None, public_id=f"closed-{i:02d}")
        for i in range(70)
    ]
    specs += [Spec(lat=spot.lat, lng=spot.lng, public_id=f"open-{i:02d}") for i in range(25)]
    specs.append(Spec(lat=near.lat, lng=near.lng, public_id="near"))
    await seed(search_ctx, specs)
    expected_open = ["near"] + [f"open-{i:02d}" for i in range(25)]
    assert await found(search_ctx, CENTRE, open_now=True) == expected_open
    everything = await found(search_ctx, CENTRE)
    assert everything == ["near"] + sorted(f"closed-{i:02d}" for i in range(70)) + expected_open[1:]
    # The database's arc is geo.arc_m (the re-ranker's bounds rely on it).
    conn = connections.get("default")
    params = SearchParams(centre=CENTRE, radius_m=500, now=search_ctx.clock.now())
    dialect = conn.capabilities.dialect
    sql, values = candidates_query(
        dialect, params, geo.bounding_box(CENTRE, 500), floor=0.0, below=None, after=None, limit=5
    )
    _, rows = await conn.execute_query(sql, values)
    assert [row[0] for row in rows] == ["near"] + [f"closed-{i:02d}" for i in range(4)]
    for row in rows:
        assert math.isclose(row[-1], geo.arc_m(CENTRE, geo.Point(row[6], row[7])), abs_tol=1e-6)


def test_the_next_box_is_sized_by_the_hits_of_the_previous_one():
    params = SearchParams(centre=CENTRE, radius_m=3000, now=datetime(2026, 11, 30, tzinfo=UTC))
    assert next_radius(params, None, 0) == 400.0
    assert next_radius(params, 400.0, 0) == 1200.0  # nothing found: ×3
    assert math.isclose(next_radius(params, 400.0, 10), 400 * math.sqrt(21 / 10) * 1.3)
    assert next_radius(params, 400.0, 20) == 600.0  # nearly enough: at least ×1.5
    assert next_radius(params, 1200.0, 0) == 3000.0  # never beyond the requested radius
    after = dataclasses.replace(params, after=(1000, "x"))
    assert next_radius(after, None, 0) == 1400.0  # measured from the cursor's distance
    assert next_radius(after, 1400.0, 0) == 2200.0
