"""Concurrent calls share one round trip; answers, failures and contexts stay their own."""

from __future__ import annotations

import asyncio
import contextvars

import pytest

from backend.coalesce import Coalesced
from backend.security import TokenError, decode_access_token, encode_access_token

MARK: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="")


async def test_a_burst_shares_round_trips_and_each_caller_gets_its_own_answer() -> None:
    batches: list[list[int]] = []

    async def handle(requests: list[int]) -> list[int]:
        batches.append(list(requests))
        await asyncio.sleep(0.01)
        return [r * 10 for r in requests]

    double = Coalesced(handle)
    assert await double(1) == 10  # a lone call goes at once
    answers = await asyncio.gather(*(double(n) for n in range(2, 42)))
    assert answers == [n * 10 for n in range(2, 42)]
    assert batches[0] == [1]
    assert len(batches) <= 3  # the first of the burst alone, the rest gathered behind it
    assert sorted(n for batch in batches[1:] for n in batch) == list(range(2, 42))


async def test_a_failed_round_trip_fails_its_batch_only() -> None:
    async def handle(requests: list[int]) -> list[int]:
        await asyncio.sleep(0)
        if 13 in requests:
            raise ConnectionError("gone")
        return requests

    same = Coalesced(handle, max_batch=1)
    results = await asyncio.gather(same(12), same(13), same(14), return_exceptions=True)
    assert results[0] == 12 and results[2] == 14
    assert isinstance(results[1], ConnectionError)


async def test_the_round_trip_does_not_run_in_the_callers_context() -> None:
    seen: list[str] = []

    async def handle(requests: list[int]) -> list[int]:
        seen.append(MARK.get())
        return requests

    coalesced = Coalesced(handle)
    MARK.set("inside a caller's transaction")
    assert await coalesced(1) == 1
    assert seen == [""]


async def test_a_handler_that_answers_too_few_fails_loudly() -> None:
    async def handle(requests: list[int]) -> list[int]:
        return []

    with pytest.raises(RuntimeError, match="every request"):
        await Coalesced(handle)(1)


def test_a_verified_token_is_still_checked_for_expiry_and_tampering() -> None:
    secret = "s" * 40
    token, _ = encode_access_token(
        secret=secret, user_id="u1", role="resident", session="s1", street=None, ttl=60, now=1000
    )
    assert decode_access_token(token, secret=secret, now=1010).user_id == "u1"
    assert decode_access_token(token, secret=secret, now=1010).user_id == "u1"  # kept
    with pytest.raises(TokenError) as expired:
        decode_access_token(token, secret=secret, now=1060)
    assert expired.value.code == "token_expired"
    with pytest.raises(TokenError):  # another secret: not the kept answer
        decode_access_token(token, secret="t" * 40, now=1010)
    head, body, signature = token.split(".")
    tampered = f"{head}.{body}.{signature[:-2]}{'AA' if signature[-2:] != 'AA' else 'BB'}"
    with pytest.raises(TokenError):
        decode_access_token(tampered, secret=secret, now=1010)
