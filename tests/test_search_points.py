"""The per-process point index of the database search on SQLite (search/points.py).

A long-lived index must give the same pages as a fresh one after any write, from any process:
it follows ``venues_venue_point_log`` (venues/migrations/0007), reloads the table when the log
has a gap or went backwards, and its boxes and arc order equal a brute force. On PostgreSQL the
database search reads its B-tree and never builds the index.
"""

from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
from tortoise import connections

from backend import geo
from search.backends import SearchParams
from search.database import DatabaseBackend
from search.points import MAX_CHANGES, PointIndex, Points, in_arc_order
from tests.conftest import PROFILE
from tests.search_fixtures import (  # noqa: F401 - fixtures
    Spec,
    search_ctx_fixture,
    seed,
)
from venues.models import Venue, VenueKind, VenueStatus

CENTRE = geo.Point(31.8206, 117.2272)
SQLITE = PROFILE == "embedded"
COLUMNS = (
    '"public_id", "kind", "name", "address", "district", "street", "lat", "lng", "phone", '
    '"description", "photos", "status", "closed_reason", "attributes", "accessible", '
    '"created_at", "updated_at"'
)


def raw_row(public_id: str, point: geo.Point, kind: str = "public_toilet") -> tuple:
    return (
        public_id, kind, public_id, "", "", "", point.lat, point.lng, "", "", "[]", "open", "",
        "{}", 0, "2026-11-30 08:00:00", "2026-11-30 08:00:00",
    )  # fmt: skip


async def insert_raw(rows: list[tuple]) -> None:
    await connections.get("default").execute_many(
        f'INSERT INTO "venues_venue" ({COLUMNS}) VALUES ({", ".join("?" * 17)})', rows
    )


async def found(backend: DatabaseBackend, ctx, centre: geo.Point, radius_m=800, **filters):
    params = SearchParams(centre=centre, radius_m=radius_m, now=ctx.clock.now(), **filters)
    ids, after = [], None
    while True:
        page = await backend.search(dataclasses.replace(params, after=after))
        ids += [h.doc.id for h in page.hits]
        if page.next_key is None:
            return ids
        after = page.next_key


async def log_position() -> int:
    _, rows = await connections.get("default").execute_query(
        'SELECT MAX(seq) FROM "venues_venue_point_log"'
    )
    return rows[0][0] or 0


class CountingIndex(PointIndex):
    """A point index that counts its loads of the whole table."""

    def __init__(self) -> None:
        super().__init__()
        self.loads = 0

    async def _load(self, client) -> None:
        self.loads += 1
        await super()._load(client)


def counting_backend() -> tuple[DatabaseBackend, CountingIndex]:
    backend = DatabaseBackend()
    backend.points = CountingIndex()
    return backend, backend.points


async def test_postgresql_searches_without_the_index(search_ctx):
    if SQLITE:
        return
    backend, index = counting_backend()
    await seed(search_ctx, [Spec(lat=CENTRE.lat, lng=CENTRE.lng, public_id="here")])
    assert await found(backend, search_ctx, CENTRE) == ["here"]
    assert index.loads == 0 and index._state is None


async def test_kind_and_accessibility_changes_reach_a_loaded_index(search_ctx):
    if not SQLITE:
        return
    backend, index = counting_backend()
    await seed(
        search_ctx,
        [
            Spec(lat=CENTRE.lat, lng=CENTRE.lng, public_id="a", kind=VenueKind.PUBLIC_TOILET),
            Spec(lat=CENTRE.lat, lng=CENTRE.lng + 1e-3, public_id="b", accessible=False),
        ],
    )
    toilets = (VenueKind.PUBLIC_TOILET.value,)
    assert await found(backend, search_ctx, CENTRE, kinds=toilets) == ["a"]
    assert await found(backend, search_ctx, CENTRE, accessible=True) == []
    await Venue.filter(public_id="a").update(kind=VenueKind.READING_SPACE)
    await Venue.filter(public_id="b").update(accessible=True, kind=VenueKind.PUBLIC_TOILET)
    assert await found(backend, search_ctx, CENTRE, kinds=toilets) == ["b"]
    assert await found(backend, search_ctx, CENTRE, accessible=True) == ["b"]
    assert index.loads == 1  # the changes were applied, not reloaded


async def test_only_changes_the_index_holds_are_logged(search_ctx):
    if not SQLITE:
        return
    await seed(search_ctx, [Spec(lat=CENTRE.lat, lng=CENTRE.lng, public_id="lot")])
    before = await log_position()
    lot = await Venue.get(public_id="lot")
    lot.name, lot.attributes = "新名字", {"free_spaces": 3}
    await lot.save()  # every column in the UPDATE, none of the index's changed
    await Venue.filter(public_id="lot").update(status=VenueStatus.TEMPORARILY_CLOSED)
    assert await log_position() == before
    await Venue.filter(public_id="lot").update(status=VenueStatus.REMOVED)
    await Venue.filter(public_id="lot").update(lng=CENTRE.lng + 0.01)
    assert await log_position() == before + 2


async def test_another_process_writes_are_applied_then_gaps_and_resets_reload(search_ctx):
    if not SQLITE:
        return
    backend, index = counting_backend()
    spot = CENTRE
    await insert_raw([raw_row("first", spot)])
    assert await found(backend, search_ctx, spot) == ["first"]
    assert index.loads == 1

    # Raw writes (as another process would make them): applied from the log.
    near = geo.Point(spot.lat + 1e-4, spot.lng)
    await insert_raw([raw_row("second", near)])
    conn = connections.get("default")
    await conn.execute_query('DELETE FROM "venues_venue" WHERE "public_id" = ?', ["first"])
    assert await found(backend, search_ctx, spot) == ["second"]
    assert index.loads == 1

    # More changes than the index applies one by one: it loads the table.
    many = [
        raw_row(f"m{i:04d}", geo.Point(spot.lat + 0.02, spot.lng + i * 1e-5))
        for i in range(MAX_CHANGES + 1)
    ]
    await insert_raw(many)
    far = geo.Point(spot.lat + 0.02, spot.lng)
    assert len(await found(backend, search_ctx, far, radius_m=2000)) == MAX_CHANGES + 1
    assert index.loads == 2

    # A gap: the changes the index has not read were trimmed from the log.
    await insert_raw([raw_row("third", geo.Point(spot.lat - 1e-4, spot.lng))])
    await conn.execute_query('DELETE FROM "venues_venue_point_log"')
    await insert_raw([raw_row("fourth", geo.Point(spot.lat - 2e-4, spot.lng))])
    assert await found(backend, search_ctx, spot) == ["second", "third", "fourth"]
    assert index.loads == 3

    # The log went backwards (a database restored, its numbering restarted).
    await conn.execute_query('DELETE FROM "venues_venue_point_log"')
    await conn.execute_query(
        "DELETE FROM sqlite_sequence WHERE name = ?", ["venues_venue_point_log"]
    )
    await conn.execute_query('DELETE FROM "venues_venue" WHERE "public_id" = ?', ["second"])
    assert await log_position() == 1
    assert await found(backend, search_ctx, spot) == ["third", "fourth"]
    assert index.loads == 4


async def test_a_venue_where_the_index_has_none_is_found_at_once(search_ctx):
    if not SQLITE:
        return
    backend, index = counting_backend()
    await seed(search_ctx, [Spec(lat=CENTRE.lat, lng=CENTRE.lng, public_id="here")])
    far = geo.Point(CENTRE.lat + 0.3, CENTRE.lng)
    assert await found(backend, search_ctx, far) == []  # no candidate, no row read
    await insert_raw([raw_row("there", far)])
    assert await found(backend, search_ctx, far) == ["there"]
    assert index.loads == 1


async def test_concurrent_searches_share_one_catch_up(search_ctx):
    if not SQLITE:
        return
    import asyncio

    backend, index = counting_backend()
    await seed(search_ctx, [Spec(lat=CENTRE.lat, lng=CENTRE.lng, public_id="one")])
    assert await found(backend, search_ctx, CENTRE) == ["one"]
    await insert_raw([raw_row("two", geo.Point(CENTRE.lat + 1e-4, CENTRE.lng))])
    reads = 0
    conn = connections.get("default")
    original = conn.execute_query

    async def counting(sql, values=None):
        nonlocal reads
        reads += sql.startswith('SELECT seq, venue_id FROM "venues_venue_point_log"')
        return await original(sql, values)

    conn.execute_query = counting
    try:
        pages = await asyncio.gather(*(found(backend, search_ctx, CENTRE) for _ in range(8)))
    finally:
        del conn.execute_query
    # Each search found its index older than the rows it read, and caught up: one read of the
    # changes served them all (or two, for searches that came after the first read started).
    assert pages == [["one", "two"]] * 8
    assert 1 <= reads <= 2
    assert index.loads == 1


def test_boxes_equal_a_brute_force_across_cells_and_the_antimeridian():
    rng = random.Random(5)
    kinds = [k.value for k in VenueKind]
    entries = []
    for i in range(4000):
        lat = rng.choice([rng.uniform(31.7, 31.9), round(rng.uniform(31.7, 31.9), 2)])
        lng = rng.choice(
            [rng.uniform(117.1, 117.3), rng.uniform(179.9, 180), -rng.uniform(179.9, 180)]
        )
        entries.append((i, lat, lng, rng.choice(kinds), rng.random() < 0.5))
    points = Points.build(entries)
    for _ in range(300):
        centre = geo.Point(rng.uniform(31.7, 31.9), rng.choice([117.2, 179.99, -179.99]))
        box = geo.bounding_box(centre, rng.choice([50, 400, 1500, 6000]))
        want_kinds = tuple(rng.sample(kinds, 2)) if rng.random() < 0.3 else ()
        accessible = rng.random() < 0.3
        ids, arcs = points.near(centre, box, want_kinds, accessible)
        where = {i: (lat, lng) for i, lat, lng, _, _ in entries}
        expected = {
            i
            for i, lat, lng, kind, acc in entries
            if box.contains(geo.Point(lat, lng))
            and (not want_kinds or kind in want_kinds)
            and (acc or not accessible)
        }
        assert sorted(ids.tolist()) == sorted(expected)
        for venue, arc in zip(ids.tolist(), arcs.tolist(), strict=True):
            exact = geo.arc_m(centre, geo.Point(*where[venue]))
            assert math.isclose(arc, exact, rel_tol=1e-9, abs_tol=1e-6)


def test_arc_order_in_chunks_keeps_ties_together():
    rng = random.Random(9)
    for size in (0, 1, 7, 50, 400):
        ids = np.array(rng.sample(range(10_000), size), dtype=np.int64)
        arcs = np.array([float(rng.randrange(20)) for _ in range(size)])  # many ties
        for chunk in (1, 3, 21):
            parts = list(in_arc_order(ids, arcs, chunk))
            keys = [
                (a, i)
                for part_ids, part_arcs in parts
                for i, a in zip(part_ids.tolist(), part_arcs.tolist(), strict=True)
            ]
            assert keys == sorted(zip(arcs.tolist(), ids.tolist(), strict=True))
            assert all(len(part_ids) >= 1 for part_ids, _ in parts)


async def test_a_search_whose_venues_keep_changing_answers_from_sql_after_three_tries(search_ctx):
    if not SQLITE:
        return
    await seed(
        search_ctx,
        [Spec(lat=CENTRE.lat + 0.001 * i, lng=CENTRE.lng, public_id=f"busy-{i}") for i in range(4)],
    )
    tries: list[int] = []

    class Churning(DatabaseBackend):
        """Every read of rows sees the log moved on: another process writes all the time."""

        async def _rank_points(self, client, params, points, seq):
            tries.append(seq)
            return None, seq + 1

    churning = Churning()
    assert await found(churning, search_ctx, CENTRE) == [f"busy-{i}" for i in range(4)]
    assert len(tries) == 3  # three tries on the point index, then the SQL path answered
    assert await found(DatabaseBackend(), search_ctx, CENTRE) == [f"busy-{i}" for i in range(4)]
