"""Deliver the booking outbox as WeChat subscription messages, each at most once.

A worker claims a row with one conditional update (pending → sending) before calling WeChat, so
two workers never send the same row. The outcome decides the next state: sent; back to pending
with exponential backoff when WeChat definitively did not take it (errcode -1 busy, an expired
access token, HTTP 5xx, no connection); failed for good for refusals (43101 the user refused,
40003 invalid openid, 47003 bad template data) and after the last attempt. A timeout or a broken
connection after the request went out is not retried (WeChat may have delivered it): the row
becomes failed with ``timeout_unknown`` / ``unknown_<error>``. Rows stuck in ``sending`` past a
timeout (a worker died mid-send) are marked failed, never re-sent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx

from backend.context import AppContext
from venues.bookings.models import MessageStatus, OutboxMessage
from venues.bookings.settings import booking_settings

log = logging.getLogger("smartcircle.bookings.delivery")
TOKEN_KEY = "wechat:access_token"  # noqa: S105 - a cache key name
# Codes after which sending the same message again cannot succeed.
FINAL_ERRORS = {43101, 40003, 47003, 40037, 41030, 43116}
# Codes that mean our cached access token is no longer valid.
TOKEN_ERRORS = {40001, 40014, 42001}
BATCH = 50


class Transient(Exception):
    """WeChat did not take the message, try again later."""


class Final(Exception):
    """WeChat refused the message for good."""


@dataclass
class SubscribeClient:
    """The subscription-message half of WeChat's server API (access token cached in the KV)."""

    ctx: AppContext

    @property
    def http(self) -> httpx.AsyncClient:
        return self.ctx.http

    @property
    def base(self) -> str:
        return self.ctx.settings.wechat_base_url.rstrip("/")

    async def access_token(self) -> str:
        cached = await self.ctx.kv.get(TOKEN_KEY)
        if cached:
            return cached
        settings = self.ctx.settings
        try:
            response = await self.http.get(
                f"{self.base}/cgi-bin/token",
                params={
                    "grant_type": "client_credential",
                    "appid": settings.wechat_appid,
                    "secret": settings.wechat_secret,
                },
            )
        except httpx.HTTPError as exc:
            raise Transient(f"token: {type(exc).__name__}") from None
        body = _json(response)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise Transient(f"token: errcode {body.get('errcode')}")
        expires = int(body.get("expires_in") or 7200)
        await self.ctx.kv.set(TOKEN_KEY, token, ttl=max(60, expires - 300))
        return token

    async def send(self, message: OutboxMessage) -> None:
        token = await self.access_token()
        payload = {
            "touser": message.openid,
            "template_id": message.template_id,
            "page": message.page,
            "data": message.data,
        }
        try:
            response = await self.http.post(
                f"{self.base}/cgi-bin/message/subscribe/send",
                params={"access_token": token},
                json=payload,
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise Transient(type(exc).__name__) from None  # nothing reached WeChat
        except httpx.TimeoutException:
            raise Final("timeout_unknown") from None  # may have been delivered
        except httpx.HTTPError as exc:
            raise Final(f"unknown_{type(exc).__name__}") from None  # may have been delivered
        body = _json(response)
        code = body.get("errcode", 0)
        if code == 0:
            return
        if code in TOKEN_ERRORS:
            await self.ctx.kv.delete(TOKEN_KEY)
            raise Transient(f"errcode {code}")
        if code in FINAL_ERRORS:
            raise Final(f"errcode {code}")
        raise Transient(f"errcode {code}")


def _json(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 500:
        raise Transient(f"http {response.status_code}")
    try:
        body = response.json()
    except ValueError:
        raise Transient("not json") from None
    if not isinstance(body, dict):
        raise Transient("not an object")
    return body


async def deliver_outbox(ctx: AppContext) -> dict[str, int]:
    """Send due messages once each; returns how many were sent, retried and failed."""
    settings = booking_settings(ctx)
    now = ctx.clock.now()
    stuck = now - timedelta(seconds=settings.sending_timeout_seconds)
    stuck_rows = OutboxMessage.filter(status=MessageStatus.SENDING, claimed_at__lt=stuck)
    if await stuck_rows.exists():  # read first: an idle run writes nothing
        await stuck_rows.update(status=MessageStatus.FAILED, last_error="interrupted")
    due = (
        await OutboxMessage.filter(status=MessageStatus.PENDING, next_attempt_at__lte=now)
        .order_by("next_attempt_at", "id")
        .limit(BATCH)
    )
    client = SubscribeClient(ctx)
    counts = {"sent": 0, "retry": 0, "failed": 0}
    for message in due:
        claimed = await OutboxMessage.filter(id=message.id, status=MessageStatus.PENDING).update(
            status=MessageStatus.SENDING, claimed_at=now, attempts=message.attempts + 1
        )
        if not claimed:
            continue  # another worker has it
        attempts = message.attempts + 1
        try:
            await client.send(message)
        except Transient as exc:
            if attempts >= settings.max_attempts:
                await _finish(message, MessageStatus.FAILED, str(exc))
                counts["failed"] += 1
            else:
                delay = min(
                    settings.retry_max_seconds, settings.retry_base_seconds * 2 ** (attempts - 1)
                )
                await OutboxMessage.filter(id=message.id).update(
                    status=MessageStatus.PENDING,
                    next_attempt_at=ctx.clock.now() + timedelta(seconds=delay),
                    last_error=str(exc)[:200],
                )
                counts["retry"] += 1
        except Final as exc:
            await _finish(message, MessageStatus.FAILED, str(exc))
            counts["failed"] += 1
        except Exception as exc:  # unknown outcome: never risk a second send
            log.exception("outbox send failed unexpectedly")
            await _finish(message, MessageStatus.FAILED, type(exc).__name__)
            counts["failed"] += 1
        else:
            await OutboxMessage.filter(id=message.id).update(
                status=MessageStatus.SENT, sent_at=ctx.clock.now(), last_error=""
            )
            counts["sent"] += 1
    if any(counts.values()):
        log.info("booking outbox delivered", extra=counts)
    return counts


async def _finish(message: OutboxMessage, status: MessageStatus, error: str) -> None:
    await OutboxMessage.filter(id=message.id).update(status=status, last_error=error[:200])
