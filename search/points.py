"""Each process's in-memory index of venue points, for the database search on SQLite.

The embedded profile's venue search needs a box's venues in arc order. Reading them through the
R*Tree and joining each to its row costs SQLite ~4 µs a venue, and a 3 km box of the demo city
holds ~11,000. This index keeps, per process, every venue that is not removed as arrays (id,
point, kind, accessibility) sorted by a grid cell of ``CELL_DEG`` degrees; a box is a handful of
contiguous slices, and the arcs of its venues are computed at once with NumPy (the same
haversine on the same sphere as ``geo.arc_m``). The search then reads only the rows of the
candidates it looks at, by primary key.

It follows every write through ``venues_venue_point_log`` (venues/migrations/0007): triggers
number each change of a venue's point, kind, accessibility or removal. Before each search the
process reads the log past the last number it applied (concurrent searches share that read,
:class:`backend.coalesce.Coalesced`, which never serves a read that started before the call) and
rebuilds its arrays with the changed venues' rows. A gap in the numbers (the log keeps the last
4,096 changes) or a log that went backwards makes it load the whole table again. So a search
sees every change committed before it started, whichever process wrote it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from backend import geo
from backend.coalesce import Coalesced
from venues.models import VenueKind, VenueStatus

CELL_DEG = 0.01  # ~1.1 km of latitude: a 400 m box is one to four cells, a 3 km one ~40
_COLUMNS = 1 << 16  # cell columns per row key (360 / CELL_DEG = 36,000 fit)
MAX_CHUNK = 1000
# A venue's kind in the arrays (-1: a kind this code does not know, which no filter asks for).
KIND_CODES = {kind.value: code for code, kind in enumerate(VenueKind)}
# More changes than this since the last search: load the table instead of applying them.
MAX_CHANGES = 512

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


def _cell_keys(lat: Floats, lng: Floats) -> Ints:
    rows = np.floor((lat + 90.0) / CELL_DEG).astype(np.int64)
    columns = np.floor((lng + 180.0) / CELL_DEG).astype(np.int64)
    return rows * _COLUMNS + columns


@dataclass(frozen=True, slots=True)
class Points:
    """The venues that are not removed, sorted by (grid cell, id). Immutable: a change builds
    a new one, so a search reads one consistent set."""

    keys: Ints
    ids: Ints
    lat: Floats
    lng: Floats
    phi: Floats  # radians(lat)
    lam: Floats  # radians(lng)
    cos_phi: Floats
    kinds: npt.NDArray[np.int8]  # ``KIND_CODES``
    accessible: npt.NDArray[np.bool_]

    @classmethod
    def build(cls, entries: Sequence[tuple[int, float, float, str, bool]]) -> Points:
        """From ``(id, lat, lng, kind, accessible)`` of each venue that is not removed."""
        ids = np.fromiter((e[0] for e in entries), np.int64, len(entries))
        lat = np.fromiter((e[1] for e in entries), np.float64, len(entries))
        lng = np.fromiter((e[2] for e in entries), np.float64, len(entries))
        kinds = np.fromiter((KIND_CODES.get(e[3], -1) for e in entries), np.int8, len(entries))
        accessible = np.fromiter((bool(e[4]) for e in entries), np.bool_, len(entries))
        return cls._sorted(ids, lat, lng, kinds, accessible)

    @classmethod
    def _sorted(
        cls,
        ids: Ints,
        lat: Floats,
        lng: Floats,
        kinds: npt.NDArray[np.int8],
        accessible: npt.NDArray[np.bool_],
    ) -> Points:
        keys = _cell_keys(lat, lng)
        order = np.lexsort((ids, keys))
        phi = np.radians(lat[order])
        return cls(
            keys=keys[order],
            ids=ids[order],
            lat=lat[order],
            lng=lng[order],
            phi=phi,
            lam=np.radians(lng[order]),
            cos_phi=np.cos(phi),
            kinds=kinds[order],
            accessible=accessible[order],
        )

    def changed(
        self, gone: set[int], entries: Sequence[tuple[int, float, float, str, bool]]
    ) -> Points:
        """These points without the venues ``gone`` and with ``entries`` (their new state)."""
        keep = ~np.isin(self.ids, np.fromiter(gone, np.int64, len(gone)))
        added = Points.build(entries)
        return Points._sorted(
            np.concatenate([self.ids[keep], added.ids]),
            np.concatenate([self.lat[keep], added.lat]),
            np.concatenate([self.lng[keep], added.lng]),
            np.concatenate([self.kinds[keep], added.kinds]),
            np.concatenate([self.accessible[keep], added.accessible]),
        )

    def __len__(self) -> int:
        return int(self.ids.size)

    def near(
        self, centre: geo.Point, box: geo.Box, kinds: tuple[str, ...], accessible: bool
    ) -> tuple[Ints, Floats]:
        """Ids of the venues inside ``box`` (bounds included, as the SQL reads it) that pass
        the kind and accessibility filters, and their ``geo.arc_m`` from ``centre``."""
        spans = self._spans(box)
        if len(spans) == 1:  # one row of cells (most small boxes): views, no index array
            first, last = spans[0]
            lat, lng = self.lat[first:last], self.lng[first:last]
        else:
            at = np.concatenate([np.arange(s, e) for s, e in spans] or [np.empty(0, np.intp)])
            lat, lng = self.lat[at], self.lng[at]
        inside = (lat >= box.min_lat) & (lat <= box.max_lat)
        if box.crosses_antimeridian:
            inside &= (lng >= box.min_lng) | (lng <= box.max_lng)
        else:
            inside &= (lng >= box.min_lng) & (lng <= box.max_lng)
        pos = np.flatnonzero(inside)
        pos = pos + spans[0][0] if len(spans) == 1 else at[pos]
        if kinds:
            codes = np.array([KIND_CODES.get(kind, -2) for kind in kinds], dtype=np.int8)
            pos = pos[np.isin(self.kinds[pos], codes)]
        if accessible:
            pos = pos[self.accessible[pos]]
        # The haversine of geo.arc_m, in place where it can be.
        phi1, lam1 = math.radians(centre.lat), math.radians(centre.lng)
        h = np.sin((self.phi[pos] - phi1) * 0.5)
        h *= h
        across = np.sin((self.lam[pos] - lam1) * 0.5)
        across *= across
        across *= self.cos_phi[pos]
        across *= math.cos(phi1)
        h += across
        np.sqrt(h, out=h)
        np.minimum(h, 1.0, out=h)
        np.arcsin(h, out=h)
        h *= 2 * geo.MEAN_RADIUS_M
        return self.ids[pos], h

    def _spans(self, box: geo.Box) -> list[tuple[int, int]]:
        """The ``[start, end)`` ranges of the arrays holding the cells ``box`` touches."""
        first_row = math.floor((box.min_lat + 90.0) / CELL_DEG)
        last_row = math.floor((box.max_lat + 90.0) / CELL_DEG)
        first_col = math.floor((box.min_lng + 180.0) / CELL_DEG)
        last_col = math.floor((box.max_lng + 180.0) / CELL_DEG)
        if box.crosses_antimeridian:
            columns = [(first_col, _COLUMNS - 1), (0, last_col)]
        else:
            columns = [(first_col, last_col)]
        rows = np.arange(first_row, last_row + 1, dtype=np.int64) * _COLUMNS
        spans = []
        for low, high in columns:
            starts = np.searchsorted(self.keys, rows + low, side="left").tolist()
            ends = np.searchsorted(self.keys, rows + high, side="right").tolist()
            spans += [(s, e) for s, e in zip(starts, ends, strict=True) if e > s]
        return spans


def in_arc_order(ids: Ints, arcs: Floats, chunk: int) -> Iterator[tuple[Ints, Floats]]:
    """``(ids, arcs)`` in ``(arc, id)`` order, in chunks of about ``chunk``, then twice as many
    each time (every tie of a chunk's last arc goes with it): only as much is sorted as the
    caller reads."""
    remaining = np.arange(ids.size)
    while remaining.size:
        if remaining.size <= 2 * chunk:
            order = remaining[np.lexsort((ids[remaining], arcs[remaining]))]
            yield ids[order[:chunk]], arcs[order[:chunk]]
            if order.size > chunk:
                yield ids[order[chunk:]], arcs[order[chunk:]]
            return
        rest = arcs[remaining]
        kth = np.partition(rest, chunk - 1)[chunk - 1]
        take = remaining[rest <= kth]
        take = take[np.lexsort((ids[take], arcs[take]))]
        yield ids[take], arcs[take]
        remaining = remaining[rest > kth]
        chunk = min(MAX_CHUNK, 2 * chunk)


class PointIndex:
    """The process's :class:`Points`, kept equal to the table through the change log."""

    def __init__(self) -> None:
        self._state: tuple[Points, int] | None = None  # the points, the log position they hold
        self._catch_up = Coalesced[Any, None](self._catch_up_batch, max_batch=4096)

    async def snapshot(self, client: Any) -> tuple[Points, int]:
        """The points and the log position they include, without reading the log (but for
        the first load): the caller checks the position (:func:`log_position`)."""
        return self._state or await self.current(client)

    async def current(self, client: Any) -> tuple[Points, int]:
        """The points as of a read of the log that started after this call."""
        await self._catch_up(client)
        assert self._state is not None
        return self._state

    async def _catch_up_batch(self, clients: list[Any]) -> list[None]:
        client = clients[0]
        if self._state is None:
            await self._load(client)
            return [None] * len(clients)
        points, seq = self._state
        last = await log_position(client)
        if last == seq:
            return [None] * len(clients)
        changes: list[tuple[int, int]] = []
        if seq < last <= seq + MAX_CHANGES:
            _, rows = await client.execute_query(
                'SELECT seq, venue_id FROM "venues_venue_point_log"'
                " WHERE seq > ? AND seq <= ? ORDER BY seq",
                [seq, last],
            )
            changes = [(row[0], row[1]) for row in rows]
        if len(changes) != last - seq:
            # The log went backwards (another database), too much changed, or changes were
            # trimmed from the log before this process read them: load the table again.
            await self._load(client)
        else:
            changed = {venue for _, venue in changes}
            entries = await _entries(client, changed)
            self._state = (points.changed(changed, entries), last)
        return [None] * len(clients)

    async def _load(self, client: Any) -> None:
        # The log's position first: a change committed after it is applied again later (a
        # row's state is applied whole, so twice is harmless); one committed before is in
        # the table read next.
        seq = await log_position(client)
        entries = await _entries(client, None)
        self._state = (Points.build(entries), seq)


# The log's position: every change numbered up to it is committed.
LOG_POSITION_SQL = 'SELECT MAX(seq) FROM "venues_venue_point_log"'


async def log_position(client: Any) -> int:
    """The change log's position now (0 for an empty log)."""
    _, rows = await client.execute_query(LOG_POSITION_SQL)
    return int(rows[0][0] or 0)


async def _entries(client: Any, ids: set[int] | None) -> list[tuple[int, float, float, str, bool]]:
    """``(id, lat, lng, kind, accessible)`` of the venues (of ``ids``, or all) not removed."""
    sql = 'SELECT "id", "lat", "lng", "kind", "accessible" FROM "venues_venue" WHERE "status" <> ?'
    values: list[Any] = [VenueStatus.REMOVED.value]
    if ids is not None:
        sql += f' AND "id" IN ({", ".join("?" * len(ids))})'
        values += sorted(ids)
    _, rows = await client.execute_query(sql, values)
    return [(row[0], row[1], row[2], row[3], row[4]) for row in rows]
