"""Two search backends behind one interface, with one ranking rule and one re-ranker.

The ranking rule (both backends, exactly):

* ``distance_m`` is the WGS-84 ellipsoidal geodesic (``backend.geo.distance_m``, whole metres,
  half up) from the query point to the venue's stored point. A venue is a hit when
  ``distance_m <= radius_m``.
* Hits are ordered by the key ``(distance_m, id)``: nearest first, ties by public id (code point
  order). A cursor carries the last key; the next page is the keys strictly greater.
* ``open_now`` and ``has_free_spaces`` depend on the clock and are evaluated in Python at the
  request's moment; ``kind``, ``accessible`` and ``q`` are filtered by the store.

Both backends produce candidates in increasing spherical ("arc") distance, which stays within
``geo.ARC_SLACK`` (+ ``geo.ARC_MARGIN_M``) of the geodesic, and feed them to one :class:`Reranker`:
it computes the exact key of each candidate, evaluates the clock-dependent filters, and stops as
soon as every candidate not yet seen provably has a larger ``distance_m`` than the page needs. The
database backend sorts the rows of a conservative bounding box by arc itself; Elasticsearch sorts
by ``_geo_distance`` (arc) and is read in batches with ``search_after``. So both backends return
identical pages, cursors included, and neither evaluates more opening hours than it must.
"""

from __future__ import annotations

import abc
import bisect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from elasticsearch import AsyncElasticsearch
from tortoise.filters import escape_like

from backend import geo
from venues.documents import (
    PARKING_STALE_AFTER,
    LiveState,
    VenueDoc,
    doc_from_row,
    live_state,
)
from venues.models import Venue, VenueKind, VenueStatus

MIN_BATCH = 50
MAX_BATCH = 1000
# (distance_m, venue public id): the order of every hit, and what a cursor carries.
SortKey = tuple[int, str]


@dataclass(frozen=True, slots=True)
class SearchParams:
    centre: geo.Point
    radius_m: int
    now: datetime
    limit: int = 20
    kinds: tuple[str, ...] = ()
    q: str | None = None
    open_now: bool = False
    accessible: bool = False
    has_free_spaces: bool = False
    after: SortKey | None = None
    parking_stale_after: timedelta = PARKING_STALE_AFTER


@dataclass(frozen=True, slots=True)
class Ranked:
    doc: VenueDoc
    distance_m: int
    state: LiveState

    @property
    def key(self) -> SortKey:
        return (self.distance_m, self.doc.id)


@dataclass(frozen=True, slots=True)
class SearchResult:
    hits: list[Ranked]
    next_key: SortKey | None


def rank(doc: VenueDoc, params: SearchParams) -> Ranked | None:
    """The hit for this candidate, or None when it falls outside the radius or a filter."""
    if doc.status == VenueStatus.REMOVED.value:
        return None
    if params.kinds and doc.kind not in params.kinds:
        return None
    if params.accessible and not doc.accessible:
        return None
    distance = geo.distance_m(params.centre, doc.point)
    if distance > params.radius_m:
        return None
    if params.after is not None and (distance, doc.id) <= params.after:
        return None
    state = live_state(doc, params.now, params.parking_stale_after)
    if params.open_now and not state.open_now:
        return None
    if params.has_free_spaces and not state.has_free_spaces:
        return None
    return Ranked(doc=doc, distance_m=distance, state=state)


class Reranker:
    """Takes candidates in increasing arc distance; keeps the best ``limit + 1`` exact hits."""

    def __init__(self, params: SearchParams) -> None:
        self.params = params
        self.best: list[Ranked] = []
        self._keys: list[SortKey] = []
        # A candidate nearer than this (arc) is certainly before the cursor.
        self.skip_below = geo.arc_floor_m(params.after[0] - 0.5) if params.after else 0.0

    def offer(self, arc: float, make_doc: Callable[[], VenueDoc]) -> None:
        """Consider one candidate ``arc`` metres away (arc distance)."""
        if arc < self.skip_below:
            return
        ranked = rank(make_doc(), self.params)
        if ranked is None:
            return
        keep = self.params.limit + 1
        if len(self._keys) >= keep and ranked.key >= self._keys[-1]:
            return
        at = bisect.bisect(self._keys, ranked.key)
        self._keys.insert(at, ranked.key)
        self.best.insert(at, ranked)
        del self._keys[keep:], self.best[keep:]

    def complete(self, next_arc: float) -> bool:
        """True when no candidate at arc ``next_arc`` or beyond can enter the page."""
        if len(self.best) <= self.params.limit:
            return False
        return self.best[self.params.limit].distance_m < geo.geodesic_floor_m(next_arc)

    def result(self) -> SearchResult:
        hits = self.best[: self.params.limit]
        more = len(self.best) > self.params.limit
        return SearchResult(hits=hits, next_key=hits[-1].key if more and hits else None)


class SearchBackend(abc.ABC):
    name: str

    @abc.abstractmethod
    async def search(self, params: SearchParams) -> SearchResult:
        """One page of hits in (distance_m, id) order, and the key to continue after."""


class DatabaseBackend(SearchBackend):
    """Candidates of a bounding box in arc order straight from SQL (through the R*Tree on SQLite,
    the ``(lat, lng)`` B-tree on PostgreSQL), exact re-ranking in Python."""

    # ``rank`` re-checks kind, accessibility and status of every row it is given; the row and
    # its arc come from one query, so a venue is judged on the state that query saw.

    name = "database"

    async def search(self, params: SearchParams) -> SearchResult:
        # Expanding boxes: the box of a small radius first, a wider one only while the page is
        # not complete. A venue outside the box of radius r is farther than r (geodesic), so
        # its arc is at least ``arc_floor_m(r)``: every venue with a smaller arc is in the box,
        # and the query of that box yields them in arc order exactly as if the whole radius had
        # been read. The next box yields the arcs from there on.
        client = Venue._meta.db
        centre = params.centre
        reranker = Reranker(params)
        chunk = min(MAX_BATCH, max(MIN_BATCH, 2 * (params.limit + 1)))
        floor = reranker.skip_below  # nearer than this was offered, or is before the cursor
        radius = next_radius(params, None, 0)
        while True:
            final = radius >= params.radius_m
            box = geo.bounding_box(centre, params.radius_m if final else radius)
            outside = None if final else geo.arc_floor_m(radius)
            after: tuple[float, int] | None = None
            while True:
                sql, values = candidates_query(
                    client.capabilities.dialect,
                    params,
                    box,
                    floor=floor,
                    below=outside,
                    after=after,
                    limit=chunk,
                )
                _, rows = await client.execute_query(sql, values)
                for row in rows:
                    arc = row[_ARC]
                    if reranker.complete(arc):
                        return reranker.result()
                    reranker.offer(arc, partial(_doc_from_candidate, row))
                if len(rows) < chunk:
                    break
                after = (rows[-1][_ARC], rows[-1][_ID])
            if outside is None or reranker.complete(outside):
                return reranker.result()
            floor = max(floor, outside)
            radius = next_radius(params, radius, len(reranker.best))


# What a candidate row holds, in order: what the hit needs (``description`` only matters to the
# ``q`` filter, which the query evaluates; ``attributes`` only for parking lots), the private id
# and the arc. The arc is ``geo.arc_m`` computed by the database (the same haversine on the same
# sphere, in double precision; its rounding differs from Python's by far less than the slack
# ``geo.ARC_SLACK``/``geo.ARC_MARGIN_M`` leaves, which is all the re-ranker relies on).
_CANDIDATE_COLUMNS = (
    "public_id",
    "kind",
    "name",
    "address",
    "district",
    "street",
    "lat",
    "lng",
    "opening_hours",
    "status",
    "accessible",
)
_ATTRIBUTES = len(_CANDIDATE_COLUMNS)
_ID = _ATTRIBUTES + 1
_ARC = _ATTRIBUTES + 2


def _doc_from_candidate(row: Any) -> VenueDoc:
    """The venue's document from a candidate row (the same projection as ``doc_from_row``)."""
    values = {name: row[i] for i, name in enumerate(_CANDIDATE_COLUMNS)}
    attributes = row[_ATTRIBUTES]
    if isinstance(attributes, str):
        attributes = json.loads(attributes)
    return doc_from_row(values | {"description": "", "attributes": attributes})


# The box's venues on SQLite: the R*Tree of venue points (venues/migrations/0005_venue_rtree.py)
# holds one degenerate box per venue that is not removed, bounds stored as 32-bit floats rounded
# outwards. It only narrows the rows; the exact conditions on the venue's own columns are the same
# as on PostgreSQL's B-tree (and Tortoise's ``icontains`` for ``q``), so both select exactly the
# same venues. CROSS JOIN keeps the R*Tree the outer loop: the planner may not switch to the
# (lat, lng) index.
_RTREE_FROM = (
    ' FROM "venues_venue_rtree" AS r CROSS JOIN "venues_venue" AS v'
    ' WHERE v."id" = r.id AND r.max_lat >= ? AND r.min_lat <= ?'
)
_TABLE_FROM = ' FROM "venues_venue" AS v WHERE TRUE'
_ICONTAINS = """UPPER(CAST(v."{}" AS VARCHAR)) LIKE UPPER(?) ESCAPE '\\'"""


def candidates_query(
    dialect: str,
    params: SearchParams,
    box: geo.Box,
    *,
    floor: float,
    below: float | None,
    after: tuple[float, int] | None,
    limit: int,
) -> tuple[str, list[Any]]:
    """The SQL (and its values) of the next ``limit`` candidates: the matching venues in ``box``
    whose arc from the centre is at least ``floor`` and under ``below`` (if given), after the
    ``(arc, id)`` key ``after`` (if given), in ``(arc, id)`` order. On SQLite the box is read
    through the R*Tree (across the antimeridian as two ranges, one per side)."""
    rtree = dialect == "sqlite"
    where = ' AND v."lat" >= ? AND v."lat" <= ? AND v."status" <> ?'
    values: list[Any] = [box.min_lat, box.max_lat, VenueStatus.REMOVED.value]
    if rtree:
        values = [box.min_lat, box.max_lat, *values]
    if params.kinds:
        where += f' AND v."kind" IN ({", ".join("?" * len(params.kinds))})'
        values += list(params.kinds)
    if params.accessible:
        where += ' AND v."accessible" = ?'
        values.append(True)
    if params.q:
        pattern = f"%{escape_like(params.q)}%"
        matches = (_ICONTAINS.format(column) for column in ("name", "address", "description"))
        where += f" AND ({' OR '.join(matches)})"
        values += [pattern] * 3
    if not box.crosses_antimeridian:
        sides = [
            (
                ' AND r.max_lng >= ? AND r.min_lng <= ? AND v."lng" >= ? AND v."lng" <= ?',
                [box.min_lng, box.max_lng, box.min_lng, box.max_lng],
            )
        ]
    else:
        sides = [
            (' AND r.max_lng >= ? AND v."lng" >= ?', [box.min_lng, box.min_lng]),
            (' AND r.min_lng <= ? AND v."lng" <= ?', [box.max_lng, box.max_lng]),
        ]
    if not rtree:  # one range on the B-tree, no R*Tree bounds
        if box.crosses_antimeridian:
            sides = [(' AND (v."lng" >= ? OR v."lng" <= ?)', [box.min_lng, box.max_lng])]
        else:
            sides = [(' AND v."lng" >= ? AND v."lng" <= ?', [box.min_lng, box.max_lng])]
    columns = ", ".join(f'v."{name}"' for name in _CANDIDATE_COLUMNS)
    # ``attributes`` only for parking lots (the only kind whose document uses them).
    head = (
        f'SELECT {columns}, CASE WHEN v."kind" = ? THEN v."attributes" END,'
        f' v."id", {_arc_sql(dialect)} AS arc'
    )
    phi = math.radians(params.centre.lat)
    head_values: list[Any] = [VenueKind.PARKING_LOT.value, phi, math.cos(phi), params.centre.lng]
    parts = []
    all_values: list[Any] = []
    for condition, side_values in sides:
        parts.append(head + (_RTREE_FROM if rtree else _TABLE_FROM) + where + condition)
        all_values += head_values + values + side_values
    key = " WHERE c.arc >= ?"
    all_values.append(floor)
    if below is not None:
        key += " AND c.arc < ?"
        all_values.append(below)
    if after is not None:
        key += " AND (c.arc > ? OR (c.arc = ? AND c.id > ?))"
        all_values += [after[0], after[0], after[1]]
    union = " UNION ALL ".join(parts)
    sql = f"SELECT * FROM ({union}) AS c{key} ORDER BY c.arc, c.id LIMIT ?"  # noqa: S608 - fixed fragments, bound values
    all_values.append(limit)
    if not rtree:
        sql = _numbered(sql)
    return sql, all_values


def _arc_sql(dialect: str) -> str:
    """``geo.arc_m`` from the centre to the venue, in SQL; its values are ``(radians of the
    centre's latitude, cosine of it, centre's longitude)``."""
    least = "MIN" if dialect == "sqlite" else "LEAST"
    h = (
        'POWER(SIN((RADIANS(v."lat") - ?) / 2), 2)'
        ' + ? * COS(RADIANS(v."lat")) * POWER(SIN(RADIANS(v."lng" - ?) / 2), 2)'
    )
    return f"{2 * geo.MEAN_RADIUS_M!r} * ASIN({least}(1.0, SQRT({h})))"


def _numbered(sql: str) -> str:
    """``?`` placeholders as PostgreSQL's ``$1, $2, …`` (no ``?`` occurs in our SQL otherwise)."""
    parts = sql.split("?")
    return parts[0] + "".join(f"${i}{part}" for i, part in enumerate(parts[1:], 1))


def next_radius(params: SearchParams, radius: float | None, hits: int) -> float:
    """The geodesic radius of the next box: a small one first (beyond the cursor's distance),
    then one sized by the hits the previous box gave (``hits`` of the ``limit + 1`` the page
    needs: as many more as the area they came from suggests, with a margin, from ×1.5 to ×3
    the previous reach), capped at the requested radius."""
    after = params.after[0] if params.after else 0
    if radius is None:
        reach = FIRST_REACH_M * math.sqrt((params.limit + 1) / 21)
    else:
        growth = math.sqrt((params.limit + 1) / max(hits, 1)) * REACH_MARGIN
        reach = (radius - after) * min(REACH_GROWTH, max(MIN_REACH_GROWTH, growth))
    return float(params.radius_m) if after + reach >= params.radius_m else after + reach


class ElasticsearchBackend(SearchBackend):
    """geo_distance filter, ``_geo_distance`` arc sort, search_after, exact re-ranking."""

    name = "elasticsearch"

    def __init__(self, client: AsyncElasticsearch, index: str) -> None:
        self.client = client
        self.index = index

    def _query(self, params: SearchParams, reach: float) -> dict[str, Any]:
        point = {"lat": params.centre.lat, "lon": params.centre.lng}
        filters: list[dict[str, Any]] = [
            {
                "geo_distance": {
                    "distance": f"{reach:.3f}m",
                    "distance_type": "arc",
                    "location": point,
                }
            }
        ]
        if params.kinds:
            filters.append({"terms": {"kind": list(params.kinds)}})
        if params.accessible:
            filters.append({"term": {"accessible": True}})
        boolean: dict[str, Any] = {
            "filter": filters,
            "must_not": [{"term": {"status": VenueStatus.REMOVED.value}}],
        }
        if params.q:
            # The standard analyzer makes one token per CJK character, so a phrase of them is
            # a substring match on Chinese text.
            boolean["should"] = [
                {"match_phrase": {field: params.q}} for field in ("name", "address", "description")
            ]
            boolean["minimum_should_match"] = 1
        return {"bool": boolean}

    @staticmethod
    def reaches(params: SearchParams, skip_below: float) -> list[float]:
        """The arc radii of the successive queries: small first, the full reach last."""
        full = params.radius_m * (1 + geo.ARC_SLACK) + geo.ARC_MARGIN_M
        step = FIRST_REACH_M * math.sqrt((params.limit + 1) / 21)
        reaches = []
        while skip_below + step < full:
            reaches.append(skip_below + step)
            step *= REACH_GROWTH
        reaches.append(full)
        return reaches

    async def search(self, params: SearchParams) -> SearchResult:
        point = {"lat": params.centre.lat, "lon": params.centre.lng}
        sort: list[dict[str, Any]] = [
            {
                "_geo_distance": {
                    "location": point,
                    "order": "asc",
                    "unit": "m",
                    "distance_type": "arc",
                }
            },
            {"id": "asc"},
        ]
        batch = min(MAX_BATCH, max(MIN_BATCH, 2 * (params.limit + 1)))
        reranker = Reranker(params)
        # Nothing after the cursor can be nearer (in arc terms) than this: start the scan there.
        start = reranker.skip_below
        search_after: list[Any] | None = [start, ""] if start > 0 else None
        seen: set[str] = set()
        reaches = self.reaches(params, start)
        for stage, reach in enumerate(reaches):
            query = self._query(params, reach)
            while True:
                response = await self.client.search(
                    index=self.index,
                    query=query,
                    sort=sort,
                    size=batch,
                    search_after=search_after,
                    source_excludes=SOURCE_EXCLUDES,
                    track_total_hits=False,
                )
                hits = response["hits"]["hits"]
                for hit in hits:
                    source = hit["_source"]
                    if source["id"] in seen:
                        continue  # read again in the overlap of two stages
                    seen.add(source["id"])
                    reranker.offer(float(hit["sort"][0]), partial(_doc_from_hit, source))
                if len(hits) < batch:
                    break  # this stage's disk is exhausted
                if reranker.complete(float(hits[-1]["sort"][0])):
                    return reranker.result()
                search_after = hits[-1]["sort"]
            if stage == len(reaches) - 1:
                break
            # Every venue this stage did not return is at least ``floor`` away (arc), allowing
            # for the filter's own (sloppy) distance; the next, wider stage resumes there.
            floor = max(start, reach * (1 - geo.ARC_SLACK) - geo.ARC_MARGIN_M)
            if reranker.complete(floor):
                break
            search_after = [floor, ""] if floor > 0 else None
        return reranker.result()


# Fields a hit does not need (``description`` only matters to the ``q`` filter, which the index
# evaluates; ``location`` repeats lat/lng).
SOURCE_EXCLUDES = ["description", "location"]
# The first query's arc radius for a page of 20 (scaled by sqrt of the page size), and how much
# each further query widens it while the page is not complete.
FIRST_REACH_M = 400.0
REACH_GROWTH = 3.0
# The database backend widens less where the previous box gave enough hits to judge the density.
MIN_REACH_GROWTH = 1.5
REACH_MARGIN = 1.3


def _doc_from_hit(source: dict[str, Any]) -> VenueDoc:
    return VenueDoc.from_source({**source, "description": ""})
