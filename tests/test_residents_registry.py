"""Residents: ID number and phone validation, derived fields, duplicates, merge, history."""

from __future__ import annotations

import json
from datetime import date

from stdnum.cn import ric

from residents.identity import normalise_phone, parse_id_number
from tests.residents_helpers import create, id_number, worker


def test_valid_numbers_made_by_the_library_are_accepted_with_birth_date_and_gender() -> None:
    male = id_number(date(1948, 2, 29), female=False)
    female = id_number(date(2016, 9, 1), female=True)
    assert ric.is_valid(female)
    parsed = parse_id_number(male)
    assert parsed.birth_date == date(1948, 2, 29)
    assert parsed.gender == "M"
    assert parse_id_number(female).gender == "F"
    # A lower-case x check digit is normalised.
    body = "34010419900101002"
    number = body + ric.calc_check_digit(body + "0")
    assert parse_id_number(number.lower()).value == number


async def test_bad_checksum_and_bad_date_are_refused_naming_the_field(client) -> None:
    headers = await worker(client)
    good = id_number()
    bad_check = good[:-1] + ("0" if good[-1] != "0" else "1")
    body = "34010419501332001"  # month 13
    bad_date = body + ric.calc_check_digit(body + "0")
    for number, reason in ((bad_check, "校验位"), (bad_date, "出生日期"), ("1234", "18 位")):
        response = await client.post(
            "/api/v1/residents",
            json={"community": "荷叶地社区", "name": "测试", "id_number": number},
            headers=headers,
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "validation_error"
        assert reason in error["fields"]["id_number"]
        assert number not in response.text


async def test_gender_and_birth_date_cannot_be_typed(client) -> None:
    headers = await worker(client)
    response = await client.post(
        "/api/v1/residents",
        json={
            "community": "荷叶地社区",
            "name": "测试",
            "id_number": id_number(),
            "gender": "F",
        },
        headers=headers,
    )
    assert response.status_code == 400
    assert "gender" in response.json()["error"]["fields"]
    created = await create(client, headers, id_number=id_number(date(1960, 5, 4), female=True))
    assert created["gender"] == "F"
    assert created["birth_date"] == "1960-05-04"


def test_phone_formats() -> None:
    assert normalise_phone("138 1234 5678") == "13812345678"
    assert normalise_phone("+86 13812345678") == "13812345678"
    assert normalise_phone("0551-65551234") == "0551-65551234"
    assert normalise_phone("055165551234") == "0551-65551234"
    assert normalise_phone("010-8888888-123") == "010-8888888-123"


async def test_bad_phones_are_refused_naming_the_field(client) -> None:
    headers = await worker(client)
    for phone in ("12812345678", "1381234567", "0551-1234", "abc", "138123456789"):
        response = await client.post(
            "/api/v1/residents",
            json={"community": "c", "name": "测试", "id_number": id_number(), "phone": phone},
            headers=headers,
        )
        assert response.status_code == 400, phone
        assert "phone" in response.json()["error"]["fields"]


async def test_duplicate_id_number_is_409_with_a_pointer_only_for_the_same_street(client) -> None:
    headers = await worker(client)
    number = id_number()
    first = await create(client, headers, id_number=number)
    again = await client.post(
        "/api/v1/residents",
        json={"community": "荷叶地社区", "name": "测试", "id_number": number},
        headers=headers,
    )
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "duplicate_id_number"
    assert error["fields"]["existing_id"] == first["id"]
    assert first["id"] in again.headers["link"]
    other = await worker(client, "340104001")
    elsewhere = await client.post(
        "/api/v1/residents",
        json={"community": "三里庵社区", "name": "测试", "id_number": number},
        headers=other,
    )
    assert elsewhere.status_code == 409
    assert "existing_id" not in elsewhere.json()["error"].get("fields", {})
    assert first["id"] not in elsewhere.text
    assert number not in elsewhere.text


async def test_update_is_versioned_without_plaintext_in_the_history(client) -> None:
    headers = await worker(client)
    number = id_number()
    created = await create(client, headers, name="测试张三", id_number=number, phone="13900001111")
    rid = created["id"]
    response = await client.patch(
        f"/api/v1/residents/{rid}",
        json={"name": "测试李四", "phone": "13900002222", "tags": ["独居老人", "veteran"]},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    assert response.json()["version"] == 2
    assert response.json()["tags"] == ["elderly_alone", "veteran"]
    stale = await client.patch(
        f"/api/v1/residents/{rid}", json={"notes": "x", "expected_version": 1}, headers=headers
    )
    assert stale.status_code == 409
    history = (await client.get(f"/api/v1/residents/{rid}/history", headers=headers)).json()
    assert [v["version"] for v in history["items"]] == [1, 2]
    change = history["items"][1]["changes"]
    assert change["phone"] == {"before": "139****1111", "after": "139****2222"}
    assert set(change) >= {"name", "phone", "tags"}
    text = json.dumps(history, ensure_ascii=False)
    for secret in ("测试张三", "测试李四", "13900001111", "13900002222", number):
        assert secret not in text


async def test_merge_two_records_keeps_history(client) -> None:
    headers = await worker(client)
    a = await create(client, headers, phone=None, tags=["低保"])
    b_number = id_number()
    b = await create(
        client, headers, name="测试居民乙", id_number=b_number, phone="13700001234", tags=["残疾"]
    )
    response = await client.post(
        f"/api/v1/residents/{a['id']}/merge",
        json={"source_id": b["id"], "reason": "同一人重复登记"},
        headers=headers,
    )
    assert response.status_code == 200, response.text
    merged = response.json()
    assert merged["phone"] == "137****1234"
    assert merged["tags"] == ["disabled", "low_income"]
    source = (await client.get(f"/api/v1/residents/{b['id']}", headers=headers)).json()
    assert source["status"] == "merged" and source["merged_into"] == a["id"]
    assert [
        v["action"]
        for v in (await client.get(f"/api/v1/residents/{b['id']}/history", headers=headers)).json()[
            "items"
        ]
    ] == ["create", "merged_into"]
    # The merged record's ID number now points at the survivor.
    again = await client.post(
        "/api/v1/residents",
        json={"community": "c", "name": "测试", "id_number": b_number},
        headers=headers,
    )
    assert again.status_code == 409
    assert again.json()["error"]["fields"]["existing_id"] == a["id"]
    # Merging again is refused; another street's worker cannot merge at all.
    assert (
        await client.post(
            f"/api/v1/residents/{a['id']}/merge",
            json={"source_id": b["id"], "reason": "again"},
            headers=headers,
        )
    ).status_code == 422
