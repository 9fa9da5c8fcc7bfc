"""The ceilings each scenario is compared with, measured in the same run at the same concurrency.

* ``noop`` — a trivial route of the same app and workers (``GET /bench/noop``, ``bench/app.py``);
* ``elasticsearch`` — the venue query a developer would write by hand, sent straight to
  Elasticsearch by wrk: ``geo_distance`` filter + ``_geo_distance`` sort, size 42, for the very
  same points as the API's venue search (services profile only);
* ``postgres`` — a plain INSERT loop for votes: one row per vote, autocommit, into a scratch table
  of the bench database with the same one-vote UNIQUE pair (asyncpg; services profile only).

The embedded profile has neither Elasticsearch nor PostgreSQL: those two are skipped there.
"""

from __future__ import annotations

import json

import asyncpg

from bench.wrk import Request

CEILING_OF = {  # scenario -> the ceilings its figures are divided by
    "signed_in": ("noop",),
    "me": ("noop",),
    "venue_search": ("noop", "elasticsearch"),
    "book_search": ("noop",),
    "ranking": ("noop",),
    "votes": ("postgres",),
}
CEILING_SCENARIO = {"noop": "noop", "elasticsearch": "es_direct", "postgres": "pg_insert"}
SKIPPED_EMBEDDED = (
    "Elasticsearch and PostgreSQL ceilings: skipped — the embedded profile has neither "
    "(SQLite database search, in-process key-value store)."
)
PG_TABLE = "bench_vote_ceiling"
ES_SIZE = 42


def es_requests(index: str, points: list[tuple[float, float]], radius_m: int) -> list[Request]:
    requests = []
    for lat, lng in points:
        location = {"lat": lat, "lon": lng}
        body = {
            "size": ES_SIZE,
            "query": {
                "bool": {
                    "filter": [{"geo_distance": {"distance": f"{radius_m}m", "location": location}}]
                }
            },
            "sort": [{"_geo_distance": {"location": location, "order": "asc", "unit": "m"}}],
        }
        requests.append(Request("POST", f"/{index}/_search", body=json.dumps(body)))
    return requests


async def prepare_pg_table(dsn: str) -> None:
    """A fresh scratch table shaped like a vote: the pair is unique, as in ``crowdsource_vote``."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"DROP TABLE IF EXISTS {PG_TABLE}")
        await conn.execute(
            f"CREATE TABLE {PG_TABLE} (id bigserial PRIMARY KEY, pain_point int NOT NULL,"
            " person int NOT NULL, created_at timestamptz NOT NULL DEFAULT now(),"
            " UNIQUE (pain_point, person))"
        )
    finally:
        await conn.close()
