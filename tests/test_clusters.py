"""``GET /api/v1/venues/clusters``: counts per grid cell of a map view."""

from __future__ import annotations

import pytest

from backend import geo
from tests.search_fixtures import (  # noqa: F401 - fixtures
    Spec,
    search_ctx_fixture,
    seed,
)
from venues.models import Venue, VenueKind, VenueStatus

URL = "/api/v1/venues/clusters"
VIEW = {"min_lat": 31.80, "min_lng": 117.20, "max_lat": 31.84, "max_lng": 117.24}


async def test_counts_per_cell(client, search_ctx):
    specs = [
        Spec(lat=31.801, lng=117.201, kind=VenueKind.PUBLIC_TOILET),  # south-west cell
        Spec(lat=31.803, lng=117.203),  # south-west cell
        Spec(lat=31.839, lng=117.239),  # north-east cell
        Spec(lat=31.821, lng=117.201, kind=VenueKind.PUBLIC_TOILET),  # row 1, col 0
        Spec(lat=31.85, lng=117.22),  # outside the view
        Spec(lat=31.802, lng=117.202, public_id="gone"),
    ]
    await seed(search_ctx, specs)
    await Venue.filter(public_id="gone").update(status=VenueStatus.REMOVED)
    response = await client.get(URL, params={**VIEW, "cells": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 4
    cells = {(c["row"], c["col"]): c for c in body["items"]}
    assert {k: c["count"] for k, c in cells.items()} == {(0, 0): 2, (1, 0): 1, (1, 1): 1}
    assert cells[(0, 0)]["centre"] == pytest.approx({"lat": 31.802, "lng": 117.202})
    toilets = await client.get(URL, params={**VIEW, "cells": 2, "kind": "public_toilet"})
    assert toilets.json()["total"] == 2


async def test_views_in_gcj02_bin_by_gcj02_positions(client, search_ctx):
    gcj = geo.Point(31.8203, 117.2203)
    wgs = geo.to_wgs84(gcj.lat, gcj.lng, "gcj02")
    await seed(search_ctx, [Spec(lat=wgs.lat, lng=wgs.lng)])
    view = {"min_lat": 31.82, "min_lng": 117.22, "max_lat": 31.83, "max_lng": 117.23}
    body = (await client.get(URL, params={**view, "coord": "gcj02", "cells": 10})).json()
    (cell,) = body["items"]
    assert (cell["row"], cell["col"]) == (0, 0)
    assert cell["centre"] == pytest.approx({"lat": gcj.lat, "lng": gcj.lng}, abs=1e-6)
    # The same point is elsewhere in a WGS-84 view of the same numbers.
    plain = (await client.get(URL, params={**view, "cells": 10})).json()
    assert plain["total"] == 0


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"max_lat": 31.79}, "max_lat"),
        ({"max_lng": 117.19}, "max_lng"),
        ({"max_lat": 34.0}, "max_lat"),
        ({"min_lat": -91}, "min_lat"),
        ({"cells": 33}, "cells"),
        ({"kind": "castle"}, "kind"),
    ],
)
async def test_bad_views_name_the_field(client, changes, field):
    response = await client.get(URL, params={**VIEW, **changes})
    assert response.status_code == 400, response.text
    fields = response.json()["error"]["fields"]
    assert any(k == field or k.startswith(field + ".") for k in fields), fields
