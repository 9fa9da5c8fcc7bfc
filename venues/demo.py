"""Loading the demo venues and books (``fixtures/venues_demo.py``, ``fixtures/books_demo.py``).

Every generated row is validated like an API write (kind attributes, opening hours) and gets an
index outbox row, so the Elasticsearch index catches up by itself in the services profile.
Idempotent: rows whose public id already exists are skipped.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backend import hours
from backend.uow import unit_of_work
from fixtures.books_demo import generate_books, generate_holdings
from fixtures.venues_demo import generate_venues
from search.models import IndexOutbox
from venues.models import Book, Holding, Venue, VenueKind
from venues.schemas import KIND_ATTRIBUTES

BATCH = 1000


def checked_row(row: dict[str, Any]) -> dict[str, Any]:
    """The row with attributes and hours validated (raises ValueError on a bad one)."""
    kind = VenueKind(row["kind"])
    attributes = KIND_ATTRIBUTES[kind].model_validate(row["attributes"])
    checked = dict(row)
    checked["kind"] = kind
    checked["attributes"] = attributes.model_dump(mode="json")
    checked["accessible"] = attributes.is_accessible()
    if row.get("opening_hours") is not None:
        checked["opening_hours"] = hours.validate(row["opening_hours"])
    if isinstance(row.get("verified_at"), str):
        checked["verified_at"] = datetime.fromisoformat(row["verified_at"])
    return checked


async def load_demo_venues(*, now: datetime, seed: int = 20180701, count: int = 3000) -> str:
    """Insert the generated demo venues that are not there yet; returns a summary line."""
    created = 0
    batch: list[dict[str, Any]] = []

    async def flush() -> int:
        ids = [r["public_id"] for r in batch]
        existing = set(await Venue.filter(public_id__in=ids).values_list("public_id", flat=True))
        fresh = [Venue(**checked_row(r)) for r in batch if r["public_id"] not in existing]
        async with unit_of_work():
            await Venue.bulk_create(fresh, batch_size=BATCH)
            await IndexOutbox.bulk_create(
                [IndexOutbox(venue_public_id=v.public_id, created_at=now) for v in fresh],
                batch_size=BATCH,
            )
        batch.clear()
        return len(fresh)

    for row in generate_venues(seed=seed, count=count):
        batch.append(row)
        if len(batch) >= BATCH:
            created += await flush()
    if batch:
        created += await flush()
    return f"demo venues: {created} created, {count - created} already there"


async def load_demo_books(
    *, now: datetime, seed: int = 20180701, count: int = 3000, per_venue: int = 300
) -> str:
    """Insert the demo catalogue and holdings for reading spaces that have none yet."""
    books = list(generate_books(seed=seed, count=count))
    known = set(await Book.all().values_list("isbn13", flat=True))
    fresh = [Book(**b) for b in books if b["isbn13"] not in known]
    await Book.bulk_create(fresh, batch_size=BATCH)
    book_ids = dict(await Book.all().values_list("isbn13", "id"))
    spaces = dict(
        await Venue.filter(kind=VenueKind.READING_SPACE, holdings__id__isnull=True)
        .distinct()
        .values_list("public_id", "id")
    )
    pending: list[Holding] = []
    added = 0
    for row in generate_holdings(
        sorted(spaces), [b["isbn13"] for b in books], seed=seed, per_venue=per_venue
    ):
        pending.append(
            Holding(
                venue_id=spaces[row["venue_id"]],
                book_id=book_ids[row["isbn13"]],
                copies=row["copies"],
                copies_available=row["copies_available"],
                updated_at=now,
            )
        )
        if len(pending) >= BATCH:
            await Holding.bulk_create(pending, batch_size=BATCH)
            added += len(pending)
            pending.clear()
    await Holding.bulk_create(pending, batch_size=BATCH)
    added += len(pending)
    return f"demo books: {len(fresh)} titles and {added} holdings added"
