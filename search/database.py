"""The database backend of the venue search (the embedded profile, and the fallback while
Elasticsearch is down): a bounding box's candidates in arc order straight from SQL, fed to the
one :class:`~search.backends.Reranker` (the ranking rule is in :mod:`search.backends`)."""

from __future__ import annotations

import json
import math
from functools import partial
from typing import Any

from tortoise.filters import escape_like

from backend import geo
from search.backends import (
    FIRST_REACH_M,
    MAX_BATCH,
    MIN_BATCH,
    MIN_REACH_GROWTH,
    REACH_GROWTH,
    REACH_MARGIN,
    Reranker,
    SearchBackend,
    SearchParams,
    SearchResult,
)
from search.points import LOG_POSITION_SQL, PointIndex, Points, in_arc_order, log_position
from search.sql import for_dialect, icontains
from venues.documents import (
    DOC_COLUMNS,
    VenueDoc,
    doc_from_row,
)
from venues.models import Venue, VenueKind, VenueStatus


class DatabaseBackend(SearchBackend):
    """Candidates of a bounding box in arc order straight from SQL (through the R*Tree on SQLite,
    the ``(lat, lng)`` B-tree on PostgreSQL), exact re-ranking in Python."""

    # ``rank`` re-checks kind, accessibility and status of every row it is given; the row and
    # its arc come from one query, so a venue is judged on the state that query saw.

    name = "database"

    def __init__(self) -> None:
        self.points = PointIndex()

    async def search(self, params: SearchParams) -> SearchResult:
        client = Venue._meta.db
        if client.capabilities.dialect == "sqlite" and not params.q:
            return await self._search_points(client, params)
        return await self._search_sql(client, params)

    async def _search_points(self, client: Any, params: SearchParams) -> SearchResult:
        """SQLite without ``q``: the candidates and their arcs from the process's point index
        (``search/points.py``), the rows of only those the re-ranker looks at. The boxes and
        their order are those of :meth:`_search_sql`, so the pages are the same.

        The index is not read against the log first: each read of rows also reads the log's
        position, and a search whose index turns out older than that is run again on the
        caught-up index (so a search sees every change committed before it started, for one
        round trip less per search); a search that read no row reads the position alone."""
        points, seq = await self.points.snapshot(client)
        for _ in range(3):
            result, position = await self._rank_points(client, params, points, seq)
            if position is None:
                position = await log_position(client)
            if result is not None and position == seq:
                return result
            points, seq = await self.points.current(client)
        return await self._search_sql(client, params)  # the venues keep changing under us

    async def _rank_points(
        self, client: Any, params: SearchParams, points: Points, seq: int
    ) -> tuple[SearchResult | None, int | None]:
        """The page from ``points`` (holding the log up to ``seq``), and the log position the
        rows were read at (None if no row was read); no page if a read saw another position."""
        reranker = Reranker(params)
        kinds = _index_kinds(params)
        # Rows in the first read: the page and a few more (a page of 20 is usually complete
        # within the first 24 candidates of its arc order); each further read doubles.
        chunk = params.limit + 1 + max(3, (params.limit + 1) // 8)
        floor = reranker.skip_below
        radius = next_radius(params, None, 0)
        seen: int | None = None
        while True:
            final = radius >= params.radius_m
            box = geo.bounding_box(params.centre, params.radius_m if final else radius)
            outside = None if final else geo.arc_floor_m(radius)
            ids, arcs = _box_candidates(points, params, box, kinds, floor, outside)
            for part_ids, part_arcs in in_arc_order(ids, arcs, chunk):
                rows, position = await _rows_by_id(client, part_ids.tolist())
                if position is not None:
                    if position != seq:
                        return None, position
                    seen = position
                for venue_id, arc in zip(part_ids.tolist(), part_arcs.tolist(), strict=True):
                    if reranker.complete(arc):
                        return reranker.result(), seen
                    row = rows.get(venue_id)
                    if row is not None:  # None: removed or deleted since the index was read
                        _offer(reranker, arc, row)
            if outside is None or reranker.complete(outside):
                return reranker.result(), seen
            floor = max(floor, outside)
            radius = next_radius(params, radius, len(reranker.best))

    async def _search_sql(self, client: Any, params: SearchParams) -> SearchResult:
        # Expanding boxes: the box of a small radius first, a wider one only while the page is
        # not complete. A venue outside the box of radius r is farther than r (geodesic), so
        # its arc is at least ``arc_floor_m(r)``: every venue with a smaller arc is in the box,
        # and the query of that box yields them in arc order exactly as if the whole radius had
        # been read. The next box yields the arcs from there on.
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
                    _offer(reranker, arc, row)
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
_CANDIDATE_COLUMNS = tuple(c for c in DOC_COLUMNS if c not in ("description", "attributes"))
_PUBLIC_ID, _LAT, _LNG = (_CANDIDATE_COLUMNS.index(c) for c in ("public_id", "lat", "lng"))
_ATTRIBUTES = len(_CANDIDATE_COLUMNS)
_ID = _ATTRIBUTES + 1
_ARC = _ATTRIBUTES + 2


def _index_kinds(params: SearchParams) -> tuple[str, ...]:
    """The kinds the point index keeps: those asked for, or only parking lots when free spaces
    are asked for (only a parking lot can have any; the re-ranker still decides)."""
    parking = VenueKind.PARKING_LOT.value
    if params.has_free_spaces and (not params.kinds or parking in params.kinds):
        return (parking,)
    return params.kinds


def _box_candidates(
    points: Points,
    params: SearchParams,
    box: geo.Box,
    kinds: tuple[str, ...],
    floor: float,
    below: float | None,
) -> tuple[Any, Any]:
    """Ids and arcs of the indexed venues in ``box`` that pass the filters, at least ``floor``
    and under ``below`` (if given) away in arc."""
    ids, arcs = points.near(params.centre, box, kinds, params.accessible)
    keep = arcs >= floor
    if below is not None:
        keep &= arcs < below
    return ids[keep], arcs[keep]


# The rows of chosen candidates: ``_CANDIDATE_COLUMNS``, the attributes (parking lots only), the
# id, and the point log's position the read saw.
_ROWS_BY_ID = (
    "SELECT "  # noqa: S608 - fixed fragments, bound values
    + ", ".join(f'v."{name}"' for name in _CANDIDATE_COLUMNS)
    + f', CASE WHEN v."kind" = ? THEN v."attributes" END, v."id", ({LOG_POSITION_SQL})'
    ' FROM "venues_venue" AS v WHERE v."status" <> ? AND v."id" IN '
)


async def _rows_by_id(client: Any, ids: list[int]) -> tuple[dict[int, Any], int | None]:
    """Candidate rows of the venues ``ids`` that are not removed, by id; and the point log's
    position the read saw (None when no row was found)."""
    sql = _ROWS_BY_ID + f"({', '.join('?' * len(ids))})"
    values: list[Any] = [VenueKind.PARKING_LOT.value, VenueStatus.REMOVED.value, *ids]
    _, rows = await client.execute_query(sql, values)
    position = (rows[0][_ID + 1] or 0) if rows else None
    return {row[_ID]: row for row in rows}, position


def _offer(reranker: Reranker, arc: float, row: Any) -> None:
    """Offer a candidate row (either path's layout: ``_CANDIDATE_COLUMNS`` first)."""
    reranker.offer_at(arc, row[_PUBLIC_ID], row[_LAT], row[_LNG], partial(_doc_from_candidate, row))


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
        matches = (icontains(f'v."{column}"') for column in ("name", "address", "description"))
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
    return for_dialect(sql, dialect), all_values


def _arc_sql(dialect: str) -> str:
    """``geo.arc_m`` from the centre to the venue, in SQL; its values are ``(radians of the
    centre's latitude, cosine of it, centre's longitude)``."""
    least = "MIN" if dialect == "sqlite" else "LEAST"
    h = (
        'POWER(SIN((RADIANS(v."lat") - ?) / 2), 2)'
        ' + ? * COS(RADIANS(v."lat")) * POWER(SIN(RADIANS(v."lng" - ?) / 2), 2)'
    )
    return f"{2 * geo.MEAN_RADIUS_M!r} * ASIN({least}(1.0, SQRT({h})))"


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
