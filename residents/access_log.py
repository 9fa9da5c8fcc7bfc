"""The access log a resident sees: every read, list, search, export, form and clear-value view.

Written in the request that accesses the data (so it is visible at once), one row per person,
in bulk for lists and exports. It names the caller's role and office, never a private name; the
caller's public id is kept for the bureau's own audit.
"""

from __future__ import annotations

from collections.abc import Iterable

from backend.access import Principal
from backend.context import AppContext
from backend.logs import request_id_var
from residents.models import AccessEvent
from residents.scope import office_of

KINDS = ("read", "list", "search", "export", "reveal", "form", "bind")


async def record_access(
    *,
    ctx: AppContext,
    actor: Principal,
    resident_ids: Iterable[int],
    kind: str,
    reason: str = "",
    field: str = "",
) -> int:
    """One access event per resident; returns how many were written."""
    if kind not in KINDS:  # pragma: no cover - programming error
        raise ValueError(kind)
    now = ctx.clock.now()
    request_id = request_id_var.get()
    office = office_of(actor)
    events = [
        AccessEvent(
            resident_id=rid,
            at=now,
            kind=kind,
            field=field,
            actor=actor.user_id,
            actor_role=actor.role.value,
            office=office,
            reason=reason[:200],
            request_id="" if request_id == "-" else request_id,
        )
        for rid in dict.fromkeys(resident_ids)
    ]
    if events:
        await AccessEvent.bulk_create(events, batch_size=1000)
    return len(events)


async def events_for(resident_ids: list[int], limit: int = 200) -> list[AccessEvent]:
    return (
        await AccessEvent.filter(resident_id__in=resident_ids).order_by("-at", "-id").limit(limit)
    )
