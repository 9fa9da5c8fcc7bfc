"""Helpers for the residents tests: ID numbers made with python-stdnum, workers of two streets."""

from __future__ import annotations

import itertools
from datetime import date

import httpx
from stdnum.cn import ric

from backend.models import Role
from tests.factories import make_user, sign_in

STREET = "340104011"  # 荷叶地街道, the demo street
OTHER_STREET = "340104001"  # 三里庵街道
_seq = itertools.count(1)


def id_number(born: date = date(1950, 3, 7), *, female: bool = False, area: str = "340104") -> str:
    """A real-format ID number: the check digit computed by python-stdnum."""
    n = next(_seq) % 500
    sequence = n * 2 + (0 if female else 1)
    body = f"{area}{born:%Y%m%d}{sequence:03d}"
    number = body + ric.calc_check_digit(body + "0")
    assert ric.calc_check_digit(number) == number[-1]
    return number


async def worker(client: httpx.AsyncClient, street: str = STREET) -> dict[str, str]:
    return await sign_in(client, await make_user(Role.STREET_WORKER, street=street))


async def create(
    client: httpx.AsyncClient, headers: dict[str, str], **fields: object
) -> dict[str, object]:
    body: dict[str, object] = {
        "community": "荷叶地社区",
        "name": "测试居民甲",
        "id_number": id_number(),
        "phone": "13812345678",
    }
    body.update(fields)
    response = await client.post("/api/v1/residents", json=body, headers=headers)
    assert response.status_code == 201, response.text
    return response.json()
