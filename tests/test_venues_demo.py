"""The demo venue generator's rows pass the venue rules and load idempotently."""

from __future__ import annotations

from fixtures.venues_demo import generate_venues
from fixtures.venues_load import checked_row, load_demo_venues
from venues.models import IndexOutbox, Venue


def test_every_generated_row_passes_the_venue_rules():
    rows = list(generate_venues(seed=7, count=3000))
    assert {r["kind"] for r in rows} >= {"public_toilet", "parking_lot", "reading_space"}
    for row in rows:
        checked_row(row)  # raises on a bad attribute or opening-hours expression


async def test_loading_is_idempotent_and_feeds_the_outbox(ctx):
    first = await load_demo_venues(now=ctx.clock.now(), seed=3, count=250)
    assert first == "demo venues: 250 created, 0 already there"
    again = await load_demo_venues(now=ctx.clock.now(), seed=3, count=250)
    assert again == "demo venues: 0 created, 250 already there"
    assert await Venue.all().count() == 250
    assert await IndexOutbox.all().count() == 250


async def test_demo_books_give_book_search_something_to_find(client, ctx):
    from fixtures.venues_load import load_demo_books
    from venues.models import Holding

    await load_demo_venues(now=ctx.clock.now(), seed=5, count=400)
    summary = await load_demo_books(now=ctx.clock.now(), count=200, per_venue=20)
    spaces = await Venue.filter(kind="reading_space").count()
    assert summary == f"demo books: 200 titles and {spaces * 20} holdings added"
    again = await load_demo_books(now=ctx.clock.now(), count=200, per_venue=20)
    assert again == "demo books: 0 titles and 0 holdings added"
    assert await Holding.all().count() == spaces * 20
    response = await client.get(
        "/api/v1/books/search",
        params={"q": "三体", "lat": 31.8206, "lng": 117.2272, "radius_m": 50_000},
    )
    assert response.status_code == 200
    hits = response.json()["items"]
    assert hits and all(h["books"][0]["title"] == "三体" for h in hits)
