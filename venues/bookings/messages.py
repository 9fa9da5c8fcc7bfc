"""Booking messages: one in-app notification plus one WeChat outbox row, both deduplicated."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from backend.clock import to_local
from backend.context import AppContext
from backend.models import User
from backend.notifications import notify
from venues.bookings.models import Booking, OutboxMessage
from venues.bookings.settings import booking_settings

TITLES = {
    "confirmed": "预约成功",
    "pending_approval": "预约待审核",
    "cancelled": "预约已被场馆取消",
    "rejected": "预约未通过审核",
    "reminder": "预约即将开始",
    "waitlist_offer": "候补到位，请尽快确认",
}
# Which WeChat template carries each message kind.
TEMPLATE_OF = {
    "confirmed": "confirmed",
    "pending_approval": "confirmed",
    "cancelled": "cancelled",
    "rejected": "cancelled",
    "reminder": "reminder",
    "waitlist_offer": "waitlist_offer",
}


def _when(moment: datetime) -> str:
    return to_local(moment).strftime("%Y-%m-%d %H:%M")


async def booking_message(*, ctx: AppContext, booking: Booking, kind: str, note: str = "") -> None:
    """Tell the booking's resident about it in the app and through WeChat (once per key)."""
    await booking.fetch_related("unit", "venue", "user")
    user: User = booking.user
    title = TITLES[kind]
    where = f"{booking.venue.name} {booking.unit.name}"
    body = f"{where}，{_when(booking.start)} 开始"
    if note:
        body += f"。{note}"
    dedupe = f"booking:{booking.public_id}:{kind}"
    link = f"/bookings/{booking.public_id}"
    await notify(
        ctx=ctx,
        user_ids=[user.id],
        kind=f"booking_{kind}",
        title=title,
        body=body,
        link=link,
        dedupe=dedupe,
    )
    settings = booking_settings(ctx)
    template = settings.templates.get(TEMPLATE_OF[kind], "")
    if not user.wechat_openid or not template:
        return
    data: dict[str, Any] = {
        "thing1": {"value": where[:20]},
        "time2": {"value": _when(booking.start)},
        "phrase3": {"value": title[:5]},
        "thing4": {"value": (note or title)[:20]},
    }
    now = ctx.clock.now()
    await OutboxMessage.bulk_create(
        [
            OutboxMessage(
                user_id=user.id,
                kind=kind,
                openid=user.wechat_openid,
                template_id=template,
                page=f"{settings.page}?id={booking.public_id}",
                data=data,
                dedupe_key=f"{dedupe}:wechat",
                next_attempt_at=now,
                created_at=now,
            )
        ],
        ignore_conflicts=True,
    )
