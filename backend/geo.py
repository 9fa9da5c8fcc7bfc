"""Geography in one place: storage in WGS-84, GCJ-02/BD-09 conversion, distances, boxes.

* Everything stored is WGS-84. Clients may speak GCJ-02 (WeChat ``wx.getLocation`` with
  ``type: 'gcj02'``, Tencent/AMap) or BD-09 (Baidu); conversion happens only here, with
  ``prcoords`` (its iterative "bored" inverses, sub-metre accurate). Outside mainland China the
  obfuscation does not apply and points pass through unchanged.
* Distances are geodesics on the WGS-84 ellipsoid (pyproj's ``Geod.inv``: Karney's algorithm in
  C, from PROJ's geodesic library — the same algorithm geopy implements in Python, ~100× faster),
  reported in whole metres rounded half up (:func:`distance_m`).
* :func:`arc_m` is the cheap spherical distance; it stays within ``ARC_SLACK`` (+ ``ARC_MARGIN_M``)
  of the geodesic, which lets search scan candidates in arc order and stop early, exactly.
* :func:`bounding_box` gives a box that contains every point within a radius, with a margin,
  so a box prefilter never drops a true hit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

import prcoords
from pyproj import Geod

# Semi-axes of the WGS-84 ellipsoid (metres).
WGS84_A = 6378137.0
WGS84_B = 6356752.314245
# The smallest meridional radius of curvature, a(1 - e^2), reached at the equator.
WGS84_MIN_MERIDIONAL = 6335439.327
# Mean Earth radius (IUGG), the sphere of "arc" distances (Elasticsearch uses the same).
MEAN_RADIUS_M = 6371008.7714
# |geodesic - arc| <= ARC_SLACK * arc + ARC_MARGIN_M (the true bound is about 0.56 %).
ARC_SLACK = 0.01
ARC_MARGIN_M = 2.0
# Relative slack added to bounding boxes (covers the ellipsoid's varying curvature).
BOX_SLACK = 0.01
BOX_MARGIN_M = 10.0
# Karney's geodesic on the WGS-84 ellipsoid (PROJ's C implementation), one per process.
_GEOD = Geod(ellps="WGS84")


class CoordSystem(StrEnum):
    WGS84 = "wgs84"
    GCJ02 = "gcj02"
    BD09 = "bd09"


@dataclass(frozen=True, slots=True)
class Point:
    """A point as (lat, lng) in degrees."""

    lat: float
    lng: float


@dataclass(frozen=True, slots=True)
class Box:
    """A latitude/longitude box; when ``min_lng > max_lng`` it crosses the antimeridian."""

    min_lat: float
    max_lat: float
    min_lng: float
    max_lng: float

    @property
    def crosses_antimeridian(self) -> bool:
        return self.min_lng > self.max_lng

    def contains(self, point: Point) -> bool:
        if not self.min_lat <= point.lat <= self.max_lat:
            return False
        if self.crosses_antimeridian:
            return point.lng >= self.min_lng or point.lng <= self.max_lng
        return self.min_lng <= point.lng <= self.max_lng


def _in_china(lat: float, lng: float) -> bool:
    return bool(prcoords.sanity_in_china_p(prcoords.Coords(lat, lng)))


def to_wgs84(lat: float, lng: float, system: CoordSystem | str) -> Point:
    """The WGS-84 point of (lat, lng) given in ``system``."""
    system = CoordSystem(system)
    if system is CoordSystem.WGS84 or not _in_china(lat, lng):
        return Point(lat, lng)
    if system is CoordSystem.GCJ02:
        c = prcoords.gcj_wgs_bored((lat, lng), False)
    else:
        c = prcoords.bd_wgs_bored((lat, lng), False)
    return Point(float(c.lat), float(c.lon))


def from_wgs84(point: Point, system: CoordSystem | str) -> Point:
    """The WGS-84 ``point`` expressed in ``system``."""
    system = CoordSystem(system)
    if system is CoordSystem.WGS84 or not _in_china(point.lat, point.lng):
        return point
    if system is CoordSystem.GCJ02:
        c = prcoords.wgs_gcj((point.lat, point.lng), False)
    else:
        c = prcoords.wgs_bd((point.lat, point.lng), False)
    return Point(float(c.lat), float(c.lon))


def geodesic_m(a: Point, b: Point) -> float:
    """Geodesic distance in metres on the WGS-84 ellipsoid."""
    _az12, _az21, metres = _GEOD.inv(a.lng, a.lat, b.lng, b.lat)
    return float(metres)


def arc_m(a: Point, b: Point) -> float:
    """Great-circle (haversine) distance on the mean sphere: cheap, within ARC_SLACK of geodesic."""
    phi1, phi2 = math.radians(a.lat), math.radians(b.lat)
    dphi = phi2 - phi1
    dlam = math.radians(b.lng - a.lng)
    h = math.sin(dphi / 2) ** 2 + math.cos(phi1) * math.cos(phi2) * math.sin(dlam / 2) ** 2
    return 2 * MEAN_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


def arcs_m(centre: Point, coords: list[tuple[float, float]]) -> list[float]:
    """``arc_m(centre, Point(lat, lng))`` of each ``(lat, lng)``, bit for bit, without building
    points or recomputing the centre's terms: the database search computes hundreds a request."""
    phi1 = math.radians(centre.lat)
    cos1 = math.cos(phi1)
    lng0 = centre.lng
    diameter = 2 * MEAN_RADIUS_M
    radians, sin, cos, asin, sqrt = math.radians, math.sin, math.cos, math.asin, math.sqrt
    arcs = []
    for lat, lng in coords:
        phi2 = radians(lat)
        h = sin((phi2 - phi1) / 2) ** 2 + cos1 * cos(phi2) * sin(radians(lng - lng0) / 2) ** 2
        arcs.append(diameter * asin(min(1.0, sqrt(h))))
    return arcs


def geodesic_floor_m(arc: float) -> int:
    """A whole-metre lower bound of ``distance_m`` for a point ``arc`` metres away (arc)."""
    return max(0, math.floor((arc - ARC_MARGIN_M) / (1 + ARC_SLACK)))


def arc_floor_m(distance: float) -> float:
    """A lower bound of the arc distance of a point whose geodesic is at least ``distance``."""
    return max(0.0, distance * (1 - ARC_SLACK) - ARC_MARGIN_M)


def whole_metres(metres: float) -> int:
    """Round half up to whole metres (deterministic, unlike ``round``)."""
    return math.floor(metres + 0.5)


def distance_m(a: Point, b: Point) -> int:
    """Geodesic distance in whole metres: the distance every API answer reports."""
    return whole_metres(geodesic_m(a, b))


def bounding_box(centre: Point, radius_m: float) -> Box:
    """A box holding every point within ``radius_m`` of ``centre`` (conservatively larger)."""
    radius = radius_m * (1 + BOX_SLACK) + BOX_MARGIN_M
    # Use the smallest radii of curvature: the box can only grow.
    dlat = math.degrees(radius / WGS84_MIN_MERIDIONAL)
    min_lat = centre.lat - dlat
    max_lat = centre.lat + dlat
    if min_lat <= -90 or max_lat >= 90:
        return Box(max(-90.0, min_lat), min(90.0, max_lat), -180.0, 180.0)
    # Longitude span at the latitude (of the box) farthest from the equator.
    far_lat = math.radians(max(abs(min_lat), abs(max_lat)))
    parallel_radius = WGS84_B * math.cos(far_lat)
    if parallel_radius <= radius:
        return Box(min_lat, max_lat, -180.0, 180.0)
    dlng = math.degrees(math.asin(min(1.0, radius / parallel_radius)))
    min_lng = centre.lng - dlng
    max_lng = centre.lng + dlng
    if min_lng < -180:
        min_lng += 360
    if max_lng > 180:
        max_lng -= 360
    return Box(min_lat, max_lat, min_lng, max_lng)
