"""Counts of venues per grid cell of a map view, for clustered markers.

The view (a lat/lng box in the client's coordinate system) is cut into ``cells × cells`` equal
cells in that same system; each venue is placed by its position in that system, so what the
client draws matches what it asked. A cell's ``centre`` is the mean position of its venues.
Answered from the database (a bounding-box query, then binning in Python).
"""

from __future__ import annotations

from backend import geo
from backend.context import AppContext
from backend.errors import ValidationFailed
from search.schemas import MAX_SPAN_DEG, Cluster, ClusterQuery, ClusterSummary
from venues.models import Venue, VenueStatus
from venues.schemas import Location

# GCJ-02/BD-09 move points by well under this (degrees): the prefilter box grows by it.
SHIFT_MARGIN_DEG = 0.02


def _check(query: ClusterQuery) -> None:
    problems = {}
    if query.max_lat <= query.min_lat:
        problems["max_lat"] = "须大于 min_lat"
    elif query.max_lat - query.min_lat > MAX_SPAN_DEG:
        problems["max_lat"] = f"视野南北跨度不能超过 {MAX_SPAN_DEG} 度"
    if query.max_lng <= query.min_lng:
        problems["max_lng"] = "须大于 min_lng（不支持跨越 180° 经线）"
    elif query.max_lng - query.min_lng > MAX_SPAN_DEG:
        problems["max_lng"] = f"视野东西跨度不能超过 {MAX_SPAN_DEG} 度"
    if problems:
        raise ValidationFailed(fields=problems)


async def summarise(*, ctx: AppContext, query: ClusterQuery) -> ClusterSummary:
    """Venue counts per cell of the view, non-empty cells only."""
    _check(query)
    corners = [
        geo.to_wgs84(lat, lng, query.coord)
        for lat in (query.min_lat, query.max_lat)
        for lng in (query.min_lng, query.max_lng)
    ]
    margin = 0.0 if query.coord == geo.CoordSystem.WGS84 else SHIFT_MARGIN_DEG
    rows = Venue.filter(
        lat__gte=min(c.lat for c in corners) - margin,
        lat__lte=max(c.lat for c in corners) + margin,
        lng__gte=min(c.lng for c in corners) - margin,
        lng__lte=max(c.lng for c in corners) + margin,
    ).exclude(status=VenueStatus.REMOVED)
    if query.kind:
        rows = rows.filter(kind__in=[k.value for k in query.kind])
    height = (query.max_lat - query.min_lat) / query.cells
    width = (query.max_lng - query.min_lng) / query.cells
    sums: dict[tuple[int, int], list[float]] = {}
    for lat, lng in await rows.values_list("lat", "lng"):
        shown = geo.from_wgs84(geo.Point(lat, lng), query.coord)
        if not (
            query.min_lat <= shown.lat <= query.max_lat
            and query.min_lng <= shown.lng <= query.max_lng
        ):
            continue
        row = min(query.cells - 1, int((shown.lat - query.min_lat) / height))
        col = min(query.cells - 1, int((shown.lng - query.min_lng) / width))
        acc = sums.setdefault((row, col), [0, 0.0, 0.0])
        acc[0] += 1
        acc[1] += shown.lat
        acc[2] += shown.lng
    items = [
        Cluster(
            row=row,
            col=col,
            count=int(n),
            centre=Location(lat=sum_lat / n, lng=sum_lng / n),
        )
        for (row, col), (n, sum_lat, sum_lng) in sorted(sums.items())
    ]
    return ClusterSummary(
        cells=query.cells,
        cell_lat_deg=height,
        cell_lng_deg=width,
        total=sum(c.count for c in items),
        items=items,
    )
