"""Booking messages reach WeChat (the stub on 127.0.0.1) once each, with retries and backoff."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from tests.booking_helpers import NOW, at, book, make_site, resident
from venues.bookings.delivery import deliver_outbox
from venues.bookings.models import OutboxMessage


async def confirmed_message(client, ctx, wechat, **policy) -> tuple[object, OutboxMessage]:
    wechat.reset_subscribe()
    site = await make_site(client, ctx, **policy)
    user, headers = await resident(ctx)
    await book(client, headers, site.units[0]["id"], at(15))
    message = await OutboxMessage.get(user_id=user.id, kind="confirmed")
    return user, message


async def test_a_message_is_sent_once_with_a_cached_token(client, ctx, wechat):
    user, message = await confirmed_message(client, ctx, wechat)
    assert message.status == "pending"
    assert await deliver_outbox(ctx) == {"sent": 1, "retry": 0, "failed": 0}
    assert await deliver_outbox(ctx) == {"sent": 0, "retry": 0, "failed": 0}
    assert len(wechat.sent) == 1
    sent = wechat.sent[0]
    assert sent["touser"] == user.wechat_openid and sent["template_id"] == "tpl-confirmed"
    assert str(sent["page"]).startswith("pages/bookings/detail?id=")
    assert sent["data"]["time2"] == {"value": "2026-11-23 15:00"}
    stored = await OutboxMessage.get(id=message.id)
    assert stored.status == "sent" and stored.attempts == 1 and stored.sent_at is not None
    # A second message reuses the cached access token.
    _, headers = await resident(ctx)
    await book(client, headers, stored.data and (await _unit(message)), at(17))
    await deliver_outbox(ctx)
    assert len(wechat.sent) == 2 and len(wechat.tokens_issued) == 1


async def _unit(message: OutboxMessage) -> str:
    from venues.bookings.models import Booking

    booking = await Booking.filter(user_id=message.user_id).select_related("unit").first()
    assert booking is not None
    return booking.unit.public_id


async def test_busy_and_server_errors_are_retried_with_backoff(client, ctx, wechat):
    _, message = await confirmed_message(client, ctx, wechat)
    wechat.fail_next("busy", "http500", "token_expired")
    assert (await deliver_outbox(ctx))["retry"] == 1
    row = await OutboxMessage.get(id=message.id)
    assert row.status == "pending" and row.attempts == 1 and row.last_error == "errcode -1"
    first_wait = (row.next_attempt_at - ctx.clock.now()).total_seconds()
    assert 8 <= first_wait <= 10
    assert (await deliver_outbox(ctx))["retry"] == 0  # not due yet
    # The clock runs on from where a test set it, so each step moves relative to the row's due
    # time (a loaded machine may take seconds between two lines).
    ctx.clock.set(row.next_attempt_at + timedelta(seconds=1))
    assert (await deliver_outbox(ctx))["retry"] == 1
    row = await OutboxMessage.get(id=message.id)
    assert row.last_error == "http 500"
    second_wait = (row.next_attempt_at - ctx.clock.now()).total_seconds()
    assert 18 <= second_wait <= 20  # doubled
    ctx.clock.set(row.next_attempt_at + timedelta(seconds=1))
    assert (await deliver_outbox(ctx))["retry"] == 1  # the access token had expired
    row = await OutboxMessage.get(id=message.id)
    ctx.clock.set(row.next_attempt_at + timedelta(seconds=1))
    assert (await deliver_outbox(ctx))["sent"] == 1
    assert len(wechat.sent) == 1 and len(wechat.tokens_issued) == 2
    row = await OutboxMessage.get(id=message.id)
    assert row.status == "sent" and row.attempts == 4


async def test_refusals_are_final_and_attempts_are_bounded(client, ctx, wechat):
    _, message = await confirmed_message(client, ctx, wechat)
    wechat.fail_next("refused")
    assert await deliver_outbox(ctx) == {"sent": 0, "retry": 0, "failed": 1}
    row = await OutboxMessage.get(id=message.id)
    assert row.status == "failed" and row.last_error == "errcode 43101"
    ctx.clock.set(NOW + timedelta(hours=1))
    assert await deliver_outbox(ctx) == {"sent": 0, "retry": 0, "failed": 0}
    assert wechat.sent == []

    await OutboxMessage.filter(id=message.id).update(status="pending", attempts=0)
    wechat.fail_next(*["busy"] * 4)
    for step in range(4):
        ctx.clock.set(NOW + timedelta(hours=2 + step))
        await deliver_outbox(ctx)
    row = await OutboxMessage.get(id=message.id)
    assert row.status == "failed" and row.attempts == 4
    assert wechat.sent == []


async def test_competing_deliverers_send_each_message_once(client, ctx, wechat):
    wechat.reset_subscribe()
    site = await make_site(client, ctx, units=3)
    for unit in site.units:
        for hour in (15, 17):
            _, headers = await resident(ctx)
            await book(client, headers, unit["id"], at(hour))
    assert await OutboxMessage.filter(status="pending").count() == 6
    results = await asyncio.gather(*(deliver_outbox(ctx) for _ in range(5)))
    assert sum(r["sent"] for r in results) == 6
    assert len(wechat.sent) == 6
    assert len({(m["touser"], m["page"]) for m in wechat.sent}) == 6


async def test_no_openid_or_template_means_in_app_only(client, ctx, wechat):
    from venues.bookings.settings import BOOKING_SETTINGS, BookingSettings

    wechat.reset_subscribe()
    site = await make_site(client, ctx)
    ctx.provide(BOOKING_SETTINGS, BookingSettings())  # no templates configured
    user, headers = await resident(ctx)
    await book(client, headers, site.units[0]["id"], at(15))
    assert await OutboxMessage.filter(user_id=user.id).count() == 0
    notes = (await client.get("/api/v1/me/notifications", headers=headers)).json()["items"]
    assert [n["kind"] for n in notes] == ["booking_confirmed"]


async def test_a_send_that_may_have_arrived_is_never_repeated(client, ctx, wechat):
    _, message = await confirmed_message(client, ctx, wechat)
    wechat.fail_next("slow")
    assert await deliver_outbox(ctx) == {"sent": 0, "retry": 0, "failed": 1}
    row = await OutboxMessage.get(id=message.id)
    assert row.status == "failed" and row.last_error == "timeout_unknown"
    await asyncio.sleep(0.7)  # the stub finishes accepting it
    ctx.clock.set(NOW + timedelta(hours=1))
    await deliver_outbox(ctx)
    assert len(wechat.sent) == 1  # WeChat got it once, and we never sent it again

    # A row left in "sending" by a worker that died is given up, not re-sent.
    await OutboxMessage.filter(id=message.id).update(status="sending", claimed_at=ctx.clock.now())
    ctx.clock.set(NOW + timedelta(hours=2))
    await deliver_outbox(ctx)
    row = await OutboxMessage.get(id=message.id)
    assert row.status == "failed" and row.last_error == "interrupted"
    assert len(wechat.sent) == 1
