"""The pieces of hand-written SQL the search queries share, for SQLite and PostgreSQL alike."""

from __future__ import annotations


def icontains(column: str) -> str:
    """Tortoise's ``icontains`` on ``column`` (a quoted, possibly qualified name), exactly:
    a substring, case-insensitive as each database folds case, ``%`` and ``_`` literal (the value
    is ``%`` + ``escape_like(text)`` + ``%``)."""
    return f"UPPER(CAST({column} AS VARCHAR)) LIKE UPPER(?) ESCAPE '\\'"


def for_dialect(sql: str, dialect: str) -> str:
    """``sql`` written with ``?`` placeholders, as the dialect takes it: PostgreSQL (asyncpg)
    numbers them ``$1, $2, …`` (no ``?`` may occur in the SQL otherwise)."""
    if dialect == "sqlite":
        return sql
    parts = sql.split("?")
    return parts[0] + "".join(f"${n}{part}" for n, part in enumerate(parts[1:], start=1))
