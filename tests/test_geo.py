"""backend/geo.py: coordinate systems, distances, bounding boxes, validation."""

from __future__ import annotations

import random

import pytest
from geopy.distance import geodesic

from backend import geo
from tests.search_fixtures import vincenty_m

HEFEI = geo.Point(31.8206, 117.2272)


@pytest.mark.parametrize("system", ["gcj02", "bd09"])
def test_round_trips_are_sub_metre(system):
    rng = random.Random(7)
    for _ in range(200):
        p = geo.Point(rng.uniform(18.5, 53.0), rng.uniform(74.0, 134.0))
        if not geo._in_china(p.lat, p.lng):
            continue
        there = geo.from_wgs84(p, system)
        back = geo.to_wgs84(there.lat, there.lng, system)
        assert geo.geodesic_m(p, back) < 0.05
        # The obfuscation really moves the point (by tens to hundreds of metres).
        assert geo.geodesic_m(p, there) > 1


def test_known_offsets_in_hefei():
    gcj = geo.from_wgs84(HEFEI, "gcj02")
    bd = geo.from_wgs84(HEFEI, "bd09")
    assert 100 < geo.geodesic_m(HEFEI, gcj) < 1000
    assert 500 < geo.geodesic_m(HEFEI, bd) < 2000
    assert geo.to_wgs84(HEFEI.lat, HEFEI.lng, "wgs84") == HEFEI


def test_outside_china_nothing_moves():
    paris = geo.Point(48.8566, 2.3522)
    assert geo.from_wgs84(paris, "gcj02") == paris
    assert geo.to_wgs84(paris.lat, paris.lng, "bd09") == paris


def test_distance_agrees_with_vincenty_and_rounds_half_up():
    rng = random.Random(11)
    for _ in range(300):
        a = geo.Point(rng.uniform(-70, 70), rng.uniform(-180, 180))
        b = geo.Point(a.lat + rng.uniform(-0.5, 0.5), a.lng + rng.uniform(-0.5, 0.5))
        b = geo.Point(max(-89.0, min(89.0, b.lat)), ((b.lng + 180) % 360) - 180)
        assert abs(geo.geodesic_m(a, b) - vincenty_m(a.lat, a.lng, b.lat, b.lng)) < 0.001
    assert geo.whole_metres(2.5) == 3
    assert geo.whole_metres(3.5) == 4
    assert geo.whole_metres(2.4999) == 2
    assert geo.distance_m(HEFEI, HEFEI) == 0


@pytest.mark.parametrize(
    "centre",
    [
        HEFEI,
        geo.Point(0.0, 0.0),
        geo.Point(70.0, 20.0),
        geo.Point(-45.0, 179.99),
        geo.Point(89.9, 0),
    ],
    ids=["hefei", "equator", "north", "antimeridian", "pole"],
)
@pytest.mark.parametrize("radius", [1, 500, 50_000])
def test_bounding_box_never_drops_a_point_within_the_radius(centre, radius):
    box = geo.bounding_box(centre, radius)
    for bearing in range(0, 360, 5):
        edge = geodesic(meters=radius).destination((centre.lat, centre.lng), bearing)
        assert box.contains(geo.Point(edge.latitude, edge.longitude)), bearing
    # ... and stays reasonably tight (no more than a few percent larger than needed).
    if abs(centre.lat) < 80:
        far = geodesic(meters=radius * 1.2 + 50).destination((centre.lat, centre.lng), 0)
        assert not box.contains(geo.Point(far.latitude, far.longitude))


def test_pyproj_distance_equals_geopy_in_whole_metres():
    """The C geodesic (pyproj) reports the same whole metres as geopy's Python Karney did."""
    rng = random.Random(20261130)
    for i in range(20000):
        a = geo.Point(rng.uniform(18.0, 53.5), rng.uniform(73.5, 135.0))
        if i % 4 == 0:
            b = geo.Point(rng.uniform(18.0, 53.5), rng.uniform(73.5, 135.0))
        else:
            spread = (0.001, 0.03, 0.5)[i % 3]
            b = geo.Point(
                a.lat + rng.uniform(-spread, spread), a.lng + rng.uniform(-spread, spread)
            )
        metres = geodesic((a.lat, a.lng), (b.lat, b.lng), ellipsoid="WGS-84").meters
        assert abs(geo.geodesic_m(a, b) - metres) < 1e-6
        assert geo.distance_m(a, b) == geo.whole_metres(metres)
    assert geo.distance_m(HEFEI, HEFEI) == 0


def test_arcs_in_bulk_equal_arc_m_bit_for_bit():
    rng = random.Random(11)
    for _ in range(20):
        centre = geo.Point(rng.uniform(-89, 89), rng.uniform(-180, 180))
        coords = [(rng.uniform(-90, 90), rng.uniform(-180, 180)) for _ in range(200)]
        coords += [(centre.lat + rng.uniform(-0.05, 0.05), centre.lng) for _ in range(50)]
        coords.append((centre.lat, centre.lng))
        assert geo.arcs_m(centre, coords) == [geo.arc_m(centre, geo.Point(*c)) for c in coords]
