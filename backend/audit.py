"""The audit trail: who did what to which object, and why."""

from __future__ import annotations

from typing import Any

from backend.access import Principal
from backend.context import AppContext
from backend.logs import request_id_var
from backend.models import AuditEntry


async def record(
    *,
    ctx: AppContext,
    actor: Principal | None,
    action: str,
    obj: tuple[str, str],
    reason: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one audit entry (never personal data in clear)."""
    request_id = request_id_var.get()
    return await AuditEntry.create(
        at=ctx.clock.now(),
        actor=actor.user_id if actor else "system",
        actor_role=actor.role.value if actor else "system",
        action=action,
        object_type=obj[0],
        object_id=obj[1],
        reason=reason,
        detail=detail or {},
        request_id="" if request_id == "-" else request_id,
    )
