"""Residents: street scoping, the bureau's aggregates, masking, clear-value audit, no plaintext
anywhere (database, key-value store, logs), binding and the resident's own view."""

from __future__ import annotations

import logging

from tortoise import connections

from backend import db
from backend.kv_memory import MemoryKeyValue
from backend.kv_redis import RedisKeyValue
from backend.kv_resilience import ResilientKeyValue
from backend.models import Role
from tests.factories import headers_for, make_user, sign_in
from tests.residents_helpers import OTHER_STREET, create, id_number, worker


async def _resident_and_two_workers(client):
    mine = await worker(client)
    theirs = await worker(client, OTHER_STREET)
    resident = await create(client, mine, tags=["独居老人"], address="荷叶地路 1 号 1 栋 101")
    return mine, theirs, resident


async def test_another_streets_worker_gets_404_everywhere(client) -> None:
    mine, theirs, resident = await _resident_and_two_workers(client)
    rid = resident["id"]
    for method, path, body in (
        ("GET", f"/api/v1/residents/{rid}", None),
        ("PATCH", f"/api/v1/residents/{rid}", {"notes": "x"}),
        ("GET", f"/api/v1/residents/{rid}/history", None),
        ("POST", f"/api/v1/residents/{rid}/reveal", {"field": "phone", "reason": "核实身份"}),
        ("POST", f"/api/v1/residents/{rid}/merge", {"source_id": rid, "reason": "xx"}),
        ("GET", f"/api/v1/residents/{rid}/forms/home_visit", None),
        ("POST", f"/api/v1/residents/{rid}/forms", {"template": "home_visit"}),
        ("POST", f"/api/v1/residents/{rid}/binding", {"account_id": "x"}),
        ("GET", f"/api/v1/households/{resident['household_id']}", None),
    ):
        response = await client.request(method, path, json=body, headers=theirs)
        assert response.status_code == 404, (method, path, response.text)
    # Lists, exports and searches of the other street simply do not contain the person.
    listed = (await client.get("/api/v1/residents", headers=theirs)).json()
    assert listed["items"] == []
    lists = await client.get("/api/v1/residents/lists?preset=elderly_alone", headers=theirs)
    assert lists.json()["total"] == 0
    mine_list = await client.get("/api/v1/residents/lists?preset=elderly_alone", headers=mine)
    assert [i["id"] for i in mine_list.json()["items"]] == [rid]
    export = await client.get("/api/v1/residents/lists/export.xlsx", headers=theirs)
    assert export.status_code == 200
    assert "测试居民甲".encode() not in export.content
    found = await client.post(
        "/api/v1/residents/search", json={"name": "测试居民甲"}, headers=theirs
    )
    assert found.json()["items"] == []
    assert (
        await client.post("/api/v1/residents/search", json={"name": "测试居民甲"}, headers=mine)
    ).json()["items"][0]["id"] == rid


async def test_the_bureau_sees_aggregates_only(client) -> None:
    mine, theirs, _resident = await _resident_and_two_workers(client)
    await create(client, theirs, community="三里庵社区", id_number=id_number(), tags=["残疾"])
    bureau = await headers_for(client, Role.BUREAU_ADMIN)
    stats = await client.get("/api/v1/residents/statistics", headers=bureau)
    assert stats.status_code == 200
    by_street = {s["street_code"]: s for s in stats.json()["streets"]}
    assert by_street["340104011"]["residents"] == 1
    assert by_street["340104011"]["by_tag"] == {"elderly_alone": 1}
    assert by_street[OTHER_STREET]["by_tag"] == {"disabled": 1}
    assert "测试居民甲" not in stats.text
    for method, path in (
        ("GET", "/api/v1/residents"),
        ("GET", f"/api/v1/residents/{_resident['id']}"),
        ("GET", "/api/v1/residents/lists?preset=elderly_alone"),
        ("GET", "/api/v1/residents/lists/export.xlsx"),
        ("POST", "/api/v1/residents/search"),
        ("POST", f"/api/v1/residents/{_resident['id']}/reveal"),
    ):
        response = await client.request(
            method, path, headers=bureau, json={"name": "x"} if method == "POST" else None
        )
        assert response.status_code in (403, 404), (path, response.status_code)
    # A worker's statistics are their own street's only.
    own = (await client.get("/api/v1/residents/statistics", headers=mine)).json()
    assert [s["street_code"] for s in own["streets"]] == ["340104011"]


async def test_masking_and_the_reveal_audit(client) -> None:
    mine = await worker(client)
    number = id_number()
    resident = await create(client, mine, id_number=number, phone="13812345678")
    rid = resident["id"]
    assert resident["id_number"] == number[:4] + "*" * 10 + number[-4:]
    assert resident["phone"] == "138****5678"
    landline = await client.patch(
        f"/api/v1/residents/{rid}", json={"phone": "0551-65551234"}, headers=mine
    )
    assert landline.json()["phone"] == "0551-****1234"
    no_reason = await client.post(
        f"/api/v1/residents/{rid}/reveal", json={"field": "id_number"}, headers=mine
    )
    assert no_reason.status_code == 400
    assert "reason" in no_reason.json()["error"]["fields"]
    revealed = await client.post(
        f"/api/v1/residents/{rid}/reveal",
        json={"field": "id_number", "reason": "办理高龄津贴核对身份"},
        headers=mine,
    )
    assert revealed.status_code == 200
    assert revealed.json() == {"field": "id_number", "value": number}
    resident_user = await make_user(Role.RESIDENT)
    me = await sign_in(client, resident_user)
    bound = await client.post(
        f"/api/v1/residents/{rid}/binding",
        json={"account_id": resident_user.public_id},
        headers=mine,
    )
    assert bound.status_code == 200 and bound.json()["bound"] is True
    log = (await client.get("/api/v1/me/data", headers=me)).json()["access_log"]
    reveal = [e for e in log if e["kind"] == "reveal"]
    assert reveal and reveal[0]["reason"] == "办理高龄津贴核对身份"
    assert reveal[0]["field"] == "id_number"
    assert reveal[0]["role"] == "street_worker" and reveal[0]["office"] == "340104011"


async def test_binding_by_id_number_and_phone_rate_limited_and_me_data(client, ctx) -> None:
    mine = await worker(client)
    number = id_number()
    resident = await create(client, mine, id_number=number, phone="13812345678")
    me = await headers_for(client, Role.RESIDENT)
    before = (await client.get("/api/v1/me/data", headers=me)).json()
    assert before["bound"] is False and before["record"] is None
    wrong = await client.post(
        "/api/v1/me/data/bind", json={"id_number": number, "phone": "13812345679"}, headers=me
    )
    assert wrong.status_code == 422
    assert number not in wrong.text
    right = await client.post(
        "/api/v1/me/data/bind", json={"id_number": number, "phone": "138 1234 5678"}, headers=me
    )
    assert right.status_code == 200, right.text
    record = right.json()["record"]
    assert record["id"] == resident["id"]
    assert record["id_number"].count("*") == 10 and record["phone"] == "138****5678"
    # A worker reads the record: the resident sees it at once, with role and office, no name.
    await client.get(f"/api/v1/residents/{resident['id']}", headers=mine)
    log = (await client.get("/api/v1/me/data", headers=me)).json()["access_log"]
    assert log[0]["kind"] == "read"
    assert log[0]["role"] == "street_worker" and log[0]["office"] == "340104011"
    # Another resident guessing: refused, then rate limited with Retry-After.
    guesser = await headers_for(client, Role.RESIDENT)
    statuses = []
    for i in range(7):
        response = await client.post(
            "/api/v1/me/data/bind",
            json={"id_number": number, "phone": f"1390000000{i}"},
            headers=guesser,
        )
        statuses.append(response.status_code)
    assert statuses[:5] == [422] * 5 and statuses[5:] == [429, 429]
    assert response.headers["retry-after"]
    # Even the right values do not bind while limited, nor a record bound to someone else.
    limited = await client.post(
        "/api/v1/me/data/bind",
        json={"id_number": number, "phone": "13812345678"},
        headers=guesser,
    )
    assert limited.status_code == 429


async def _kv_dump(kv) -> str:
    if isinstance(kv, MemoryKeyValue):
        return repr({k: v for k, v in kv._store.data.items() if k.startswith(kv.prefix)})
    if isinstance(kv, ResilientKeyValue):
        kv = kv.primary
    assert isinstance(kv, RedisKeyValue)
    parts = []
    async for key in kv.client.scan_iter(match=kv.prefix + "*"):
        kind = await kv.client.type(key)
        value = (
            await kv.client.get(key)
            if kind == "string"
            else await kv.client.zrange(key, 0, -1, withscores=True)
            if kind == "zset"
            else ""
        )
        parts.append(f"{key}={value}")
    return "\n".join(parts)


async def _search_index_dump(ctx) -> str:
    """Every document of this run's Elasticsearch indexes (services profile; none embedded)."""
    if ctx.elastic is None:
        return ""
    pattern = f"{ctx.settings.es_index_prefix}*"
    await ctx.elastic.client.indices.refresh(index=pattern, allow_no_indices=True)
    found = await ctx.elastic.client.search(
        index=pattern, size=10000, query={"match_all": {}}, allow_no_indices=True
    )
    return repr(found.body)


async def test_no_plaintext_in_the_database_kv_store_or_logs(client, ctx, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    logging.getLogger("smartcircle").addHandler(caplog.handler)
    try:
        mine = await worker(client)
        name, number, phone = "测试保密人", id_number(), "13955556666"
        resident = await create(
            client,
            mine,
            name=name,
            id_number=number,
            phone=phone,
            notes="测试备注内容",
            address="保密路 9 号",
        )
        rid = resident["id"]
        await client.patch(f"/api/v1/residents/{rid}", json={"phone": "13955557777"}, headers=mine)
        await client.post(
            f"/api/v1/residents/{rid}/reveal",
            json={"field": "phone", "reason": "电话回访核对"},
            headers=mine,
        )
        await client.post("/api/v1/residents/search", json={"id_number": number}, headers=mine)
        await client.post(
            f"/api/v1/residents/{rid}/forms",
            json={
                "template": "home_visit",
                "typed": {"visit_date": "2026-01-01", "situation": "好"},
            },
            headers=mine,
        )
        me = await headers_for(client, Role.RESIDENT)
        for _ in range(2):
            await client.post(
                "/api/v1/me/data/bind",
                json={"id_number": number, "phone": "13900000000"},
                headers=me,
            )
        await client.post(
            "/api/v1/residents",
            json={"community": "c", "name": name, "id_number": number},
            headers=mine,
        )  # the duplicate's 409
        logging.getLogger("smartcircle.test").info("after the flows")
        conn = connections.get("default")
        dump = []
        for table in db.table_names():
            if table.startswith("residents_") or table == "core_audit_entry":
                rows = await conn.execute_query_dict(f'SELECT * FROM "{table}"')
                dump.append(f"{table}: {rows!r}")
        database = "\n".join(dump)
        assert "residents_resident" in database and rid in database
        kv = await _kv_dump(ctx.kv)
        assert "bind-attempts" in kv
        index = await _search_index_dump(ctx)
        logs = "\n".join(r.getMessage() + repr(r.__dict__) for r in caplog.records)
        for where, text in (
            ("database", database),
            ("kv", kv),
            ("logs", logs),
            ("search index", index),
        ):
            for secret in (name, number, phone, "13955557777", "测试备注内容"):
                assert secret not in text, (where, secret)
    finally:
        logging.getLogger("smartcircle").removeHandler(caplog.handler)
