"""In-app notifications: features call :func:`notify`; residents list them at /me/notifications.

Each notification has a dedupe key, so a retried job or request never notifies anyone twice.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

from pydantic import BaseModel
from sanic import Blueprint, Request

from backend.access import Call, endpoint
from backend.context import AppContext
from backend.errors import NotFound
from backend.models import Notification, User


async def notify(
    *,
    ctx: AppContext,
    user_ids: Iterable[int],
    kind: str,
    title: str,
    body: str = "",
    link: str = "",
    dedupe: str,
) -> int:
    """Create one notification per user unless already sent under this dedupe key."""
    wanted = {uid: f"{dedupe}:{uid}" for uid in set(user_ids)}
    if not wanted:
        return 0
    found = await Notification.filter(dedupe_key__in=list(wanted.values())).values_list(
        "dedupe_key", flat=True
    )
    # flat=True answers the values themselves; tortoise types every row as a tuple.
    existing = set(cast("list[str]", found))
    now = ctx.clock.now()
    rows = [
        Notification(
            user_id=uid,
            kind=kind,
            title=title,
            body=body,
            link=link,
            dedupe_key=key,
            created_at=now,
        )
        for uid, key in wanted.items()
        if key not in existing
    ]
    if rows:
        await Notification.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


class NotificationOut(BaseModel):
    id: str
    kind: str
    title: str
    body: str
    link: str
    created_at: str
    read: bool


class NotificationList(BaseModel):
    items: list[NotificationOut]
    unread: int


bp = Blueprint("notifications", url_prefix="/api/v1")


@bp.get("/me/notifications")
@endpoint(summary="我的消息", tag="notifications", signed_in=True, response=NotificationList)
async def my_notifications(request: Request, call: Call[None, None]) -> NotificationList:
    user = await User.get(public_id=call.user.user_id)
    rows = await Notification.filter(user=user).order_by("-created_at", "-id").limit(100)
    unread = await Notification.filter(user=user, read_at__isnull=True).count()
    return NotificationList(
        items=[
            NotificationOut(
                id=n.public_id,
                kind=n.kind,
                title=n.title,
                body=n.body,
                link=n.link,
                created_at=n.created_at.isoformat(),
                read=n.read_at is not None,
            )
            for n in rows
        ],
        unread=unread,
    )


@bp.post("/me/notifications/<notification_id:str>/read")
@endpoint(summary="标记消息已读", tag="notifications", signed_in=True, status=204, errors=(404,))
async def mark_read(request: Request, call: Call[None, None], notification_id: str) -> None:
    user = await User.get(public_id=call.user.user_id)
    updated = await Notification.filter(
        public_id=notification_id, user=user, read_at__isnull=True
    ).update(read_at=call.clock.now())
    if not updated and await Notification.filter(public_id=notification_id, user=user).exists():
        return
    if not updated:
        raise NotFound("消息不存在", code="notification_not_found")
