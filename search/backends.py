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
by ``_geo_distance`` (arc) and is read in batches with ``search_after``, each request going with
the worker's other searches of the moment (``backend.elastic.Searches``). So both backends
return identical pages, cursors included, and neither evaluates more opening hours than it must.
"""

from __future__ import annotations

import abc
import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from backend import geo
from backend.elastic import Searches
from venues.documents import (
    PARKING_STALE_AFTER,
    LiveState,
    VenueDoc,
    live_state,
)
from venues.models import VenueKind, VenueStatus

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
    return _judge(doc, geo.distance_m(params.centre, doc.point), params)


def _judge(doc: VenueDoc, distance: int, params: SearchParams) -> Ranked | None:
    """:func:`rank` for a candidate whose ``distance_m`` is already known."""
    if doc.status == VenueStatus.REMOVED.value:
        return None
    if params.kinds and doc.kind not in params.kinds:
        return None
    if params.accessible and not doc.accessible:
        return None
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
    """Takes candidates in increasing arc distance; keeps the best ``limit + 1`` exact hits.

    A candidate's key ``(distance_m, id)`` is computed first; only a candidate that can still
    enter the page (inside the radius, after the cursor, better than the worst kept hit when
    ``limit + 1`` are kept) has its document built and its opening hours evaluated. Since the
    key alone decides whether a hit could be kept, the kept hits are exactly those of ranking
    every candidate in full.
    """

    def __init__(self, params: SearchParams) -> None:
        self.params = params
        self.best: list[Ranked] = []
        self._keys: list[SortKey] = []
        self._keep = params.limit + 1
        # A candidate nearer than this (arc) is certainly before the cursor.
        self.skip_below = geo.arc_floor_m(params.after[0] - 0.5) if params.after else 0.0

    def offer(self, arc: float, make_doc: Callable[[], VenueDoc]) -> None:
        """Consider one candidate ``arc`` metres away (arc distance)."""
        if arc < self.skip_below:
            return
        doc = make_doc()
        self.offer_at(arc, doc.id, doc.lat, doc.lng, lambda: doc)

    def offer_at(
        self,
        arc: float,
        venue_id: str,
        lat: float,
        lng: float,
        make_doc: Callable[[], VenueDoc],
    ) -> None:
        """:meth:`offer` for a candidate whose id and stored point are known before its
        document (``make_doc()`` must have that id and point): the document is built only when
        the candidate can enter the page."""
        if arc < self.skip_below:
            return
        distance = geo.distance_m(self.params.centre, geo.Point(lat, lng))
        if self._may_enter(distance, venue_id):
            self._keep_hit(_judge(make_doc(), distance, self.params))

    def _may_enter(self, distance: int, venue_id: str) -> bool:
        """False when the key ``(distance, venue_id)`` cannot be on the page, whatever the
        filters say: outside the radius, not after the cursor, or not before the worst of
        ``limit + 1`` kept hits."""
        if distance > self.params.radius_m:
            return False
        key = (distance, venue_id)
        after = self.params.after
        if after is not None and key <= after:
            return False
        return len(self._keys) < self._keep or key < self._keys[-1]

    def _keep_hit(self, ranked: Ranked | None) -> None:
        if ranked is None:
            return
        key = ranked.key
        at = bisect.bisect(self._keys, key)
        self._keys.insert(at, key)
        self.best.insert(at, ranked)
        del self._keys[self._keep :], self.best[self._keep :]

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


class ElasticsearchBackend(SearchBackend):
    """geo_distance filter, ``_geo_distance`` arc sort, search_after, exact re-ranking."""

    name = "elasticsearch"

    def __init__(self, searches: Searches, index: str) -> None:
        self.searches = searches  # the worker's searches, sent together when they meet
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
        # What the clock-dependent filters imply of the stored document, so the index drops
        # candidates that ``live_state`` would refuse anyway (Python still decides the rest):
        # only an open venue can be open now, and only an open parking lot with a free space
        # can have free spaces.
        if params.open_now or params.has_free_spaces:
            filters.append({"term": {"status": VenueStatus.OPEN.value}})
        if params.has_free_spaces:
            filters.append({"term": {"kind": VenueKind.PARKING_LOT.value}})
            filters.append({"range": {"free_spaces": {"gte": 1}}})
        # No clause for removed venues: the index never holds one (the outbox deletes it, a
        # reindex skips it) and ``rank`` refuses one anyway; the clause cost Elasticsearch
        # ~0.3 ms of CPU a request.
        boolean: dict[str, Any] = {"filter": filters}
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
        step = ES_FIRST_REACH_M * math.sqrt((params.limit + 1) / 21)
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
        batch = first_batch(params)
        reranker = Reranker(params)
        # Nothing after the cursor can be nearer (in arc terms) than this: start the scan there.
        start = reranker.skip_below
        search_after: list[Any] | None = [start, ""] if start > 0 else None
        seen: set[str] = set()
        reaches = self.reaches(params, start)
        for stage, reach in enumerate(reaches):
            query = self._query(params, reach)
            while True:
                body: dict[str, Any] = {
                    "query": query,
                    "sort": sort,
                    "size": batch,
                    "_source": {"excludes": SOURCE_EXCLUDES},
                    "track_total_hits": False,
                }
                if search_after is not None:
                    body["search_after"] = search_after
                response = await self.searches(self.index, body)
                hits = response["hits"]["hits"]
                for hit in hits:
                    source = hit["_source"]
                    venue_id = source["id"]
                    if venue_id in seen:
                        continue  # read again in the overlap of two stages
                    seen.add(venue_id)
                    reranker.offer_at(
                        float(hit["sort"][0]),
                        venue_id,
                        source["lat"],
                        source["lng"],
                        partial(_doc_from_hit, source),
                    )
                if len(hits) < batch:
                    break  # this stage's disk is exhausted
                if reranker.complete(float(hits[-1]["sort"][0])):
                    return reranker.result()
                search_after = hits[-1]["sort"]
                batch = min(MAX_BATCH, 2 * batch)  # the page needs more: read further at once
            if stage == len(reaches) - 1:
                break
            # Every venue this stage did not return is at least ``floor`` away (arc), allowing
            # for the filter's own (sloppy) distance; the next, wider stage resumes there.
            floor = max(start, reach * (1 - geo.ARC_SLACK) - geo.ARC_MARGIN_M)
            if reranker.complete(floor):
                break
            search_after = [floor, ""] if floor > 0 else None
        return reranker.result()


def first_batch(params: SearchParams) -> int:
    """How many hits the first Elasticsearch request of a stage asks for.

    The page needs ``limit + 1`` hits, and the re-ranker may stop once the next candidate's arc
    exceeds the last kept hit's distance by ``ARC_SLACK`` + ``ARC_MARGIN_M``: about 2 % more
    candidates on a plane, a few more for the spread of real points. Every hit asked for costs
    Elasticsearch a stored document to read and this process a geodesic, so ask for a quarter
    more (at least 5); twice that when a clock-dependent filter may refuse many candidates. A
    stage that needs more reads on with doubled batches (``search_after``)."""
    need = params.limit + 1
    batch = need + max(5, need // 4)
    if params.open_now or params.has_free_spaces:
        batch *= 2
    return min(MAX_BATCH, batch)


# Fields a hit does not need (``description`` only matters to the ``q`` filter, which the index
# evaluates; ``location`` repeats lat/lng).
SOURCE_EXCLUDES = ["description", "location"]
# The first query's arc radius for a page of 20 (scaled by sqrt of the page size), and how much
# each further query widens it while the page is not complete.
FIRST_REACH_M = 400.0
REACH_GROWTH = 3.0
# Elasticsearch's first reach. A request costs Elasticsearch far more than the distances of the
# few thousand venues a wider disk holds (100,000-venue demo city: ~1.5 requests a search from
# 400 m, ~1.1 from 1,200 m, for about the same Elasticsearch CPU per request), so it starts at
# the database's second radius.
ES_FIRST_REACH_M = FIRST_REACH_M * REACH_GROWTH
# The database backend widens less where the previous box gave enough hits to judge the density.
MIN_REACH_GROWTH = 1.5
REACH_MARGIN = 1.3


def _doc_from_hit(source: dict[str, Any]) -> VenueDoc:
    """The document of a hit whose ``_source`` lacks ``description`` (``SOURCE_EXCLUDES``)."""
    try:
        # The index is written from VenueDoc.to_source and its mapping is strict, so the
        # filtered source holds exactly the other fields: build it directly.
        return VenueDoc(**source, description="")
    except TypeError:  # a field the projection does not know (an index of another version)
        return VenueDoc.from_source({**source, "description": ""})
