"""Presenters: a reading space's holdings as the API shows them (pure functions, no queries)."""

from __future__ import annotations

from venues.models import Book, Holding
from venues.schemas import CatalogueBook


def catalogue_book_out(holding: Holding, book: Book) -> CatalogueBook:
    return CatalogueBook(
        isbn=book.isbn13,
        title=book.title,
        author=book.author,
        publisher=book.publisher,
        copies=holding.copies,
        copies_available=holding.copies_available,
    )
