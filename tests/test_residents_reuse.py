"""Residents: lists built from the base data with their export, forms pre-filled from the
record, and the reuse rate the bureau sees per street."""

from __future__ import annotations

import io
from datetime import date

from openpyxl import load_workbook
from stdnum.cn import ric

from backend.models import Role
from residents.models import AccessEvent, Resident
from tests.factories import headers_for
from tests.residents_helpers import create, id_number, worker


def _years_ago(years: int, today: date | None = None) -> date:
    today = today or date.today()
    return (
        date(today.year - years, 1, 15) if today.month > 1 else date(today.year - years - 1, 1, 1)
    )


async def test_lists_and_the_export_logged_for_every_person(client) -> None:
    headers = await worker(client)
    alone = await create(client, headers, name="测试独居", id_number=id_number(_years_ago(75)),
                         address="甲路 1 号", community="甲社区")  # fmt: skip
    couple = [
        await create(
            client,
            headers,
            name=f"测试夫妻{i}",
            id_number=id_number(_years_ago(70)),
            address="甲路 2 号",
            community="甲社区",
        )  # fmt: skip
        for i in range(2)
    ]
    tagged = await create(client, headers, name="测试标签独居", id_number=id_number(_years_ago(65)),
                          tags=["独居老人", "残疾"], community="乙社区")  # fmt: skip
    child = await create(client, headers, name="测试学生", id_number=id_number(_years_ago(9)),
                         community="乙社区", address="乙路 1 号")  # fmt: skip
    young = await create(client, headers, name="测试青年", id_number=id_number(_years_ago(30)),
                         community="甲社区", tags=["残疾"])  # fmt: skip
    elderly = await client.get("/api/v1/residents/lists?preset=elderly_alone", headers=headers)
    assert {i["id"] for i in elderly.json()["items"]} == {alone["id"], tagged["id"]}
    school = (await client.get("/api/v1/residents/lists?preset=school_age", headers=headers)).json()
    assert [i["id"] for i in school["items"]] == [child["id"]]
    assert school["by_community"] == {"乙社区": 1}
    disabled = (await client.get("/api/v1/residents/lists?preset=disabled", headers=headers)).json()
    assert {i["id"] for i in disabled["items"]} == {tagged["id"], young["id"]}
    combo = await client.get(
        "/api/v1/residents/lists?tag=残疾&age_min=18&age_max=59", headers=headers
    )
    assert [i["id"] for i in combo.json()["items"]] == [young["id"]]
    communities = (await client.get("/api/v1/residents/communities", headers=headers)).json()
    first = next(c for c in communities["items"] if c["name"] == "甲社区")
    by_community = await client.get(
        f"/api/v1/residents/lists?age_min=60&community_id={first['id']}&limit=1", headers=headers
    )
    page = by_community.json()
    assert page["total"] == 3 and len(page["items"]) == 1 and page["next_cursor"]
    rest = await client.get(
        f"/api/v1/residents/lists?age_min=60&community_id={first['id']}&limit=5"
        f"&cursor={page['next_cursor']}",
        headers=headers,
    )
    assert len(rest.json()["items"]) == 2
    exported = await client.get("/api/v1/residents/lists/export.xlsx?age_min=60", headers=headers)
    assert exported.status_code == 200
    sheet = load_workbook(io.BytesIO(exported.content), read_only=True).worksheets[0]
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert len(rows) == 1 + 4
    assert all("*" in r[7] for r in rows[1:])  # ID numbers masked
    exported_ids = {alone["id"], tagged["id"], *(c["id"] for c in couple)}
    events = await AccessEvent.filter(kind="export").prefetch_related("resident")
    assert {e.resident.public_id for e in events} == exported_ids


async def test_forms_are_prefilled_and_the_reuse_rate_is_counted_per_street(client) -> None:
    headers = await worker(client)
    other = await worker(client, "340104001")
    resident = await create(client, headers, id_number=id_number(_years_ago(82)),
                            address="荷叶地路 8 号", phone="13811112222")  # fmt: skip
    templates = (await client.get("/api/v1/residents/forms/templates", headers=headers)).json()
    assert {"elderly_allowance", "home_visit"} <= {t["code"] for t in templates["items"]}
    prefill = await client.get(
        f"/api/v1/residents/{resident['id']}/forms/elderly_allowance", headers=headers
    )
    assert prefill.status_code == 200
    fields = {f["name"]: f for f in prefill.json()["fields"]}
    assert fields["name"]["value"] == "测试居民甲"
    assert fields["phone"]["value"] == "138****2222"
    assert fields["address"]["value"] == "荷叶地路 8 号"
    assert fields["bank_account"]["source"] == "typed" and fields["bank_account"]["value"] is None
    missing = await client.post(
        f"/api/v1/residents/{resident['id']}/forms",
        json={"template": "elderly_allowance", "typed": {"bank_name": "示例银行"}},
        headers=headers,
    )
    assert missing.status_code == 400
    assert set(missing.json()["error"]["fields"]) == {"typed.bank_account", "typed.applicant"}
    submitted = await client.post(
        f"/api/v1/residents/{resident['id']}/forms",
        json={
            "template": "elderly_allowance",
            "typed": {
                "bank_name": "示例银行",
                "bank_account": "6222000011112222",
                "applicant": "本人",
            },
        },
        headers=headers,
    )
    assert submitted.status_code == 201, submitted.text
    form = submitted.json()
    assert (form["prefilled_count"], form["typed_count"]) == (8, 3)
    again = await client.get(f"/api/v1/residents/forms/{form['id']}", headers=headers)
    assert again.json()["prefilled_count"] == 8
    assert (
        await client.get(f"/api/v1/residents/forms/{form['id']}", headers=other)
    ).status_code == 404
    visit = await client.post(
        f"/api/v1/residents/{resident['id']}/forms",
        json={
            "template": "home_visit",
            "typed": {"visit_date": "2026-03-01", "situation": "身体良好", "phone": "13800000000"},
        },
        headers=headers,
    )
    # household_size and address known, tags empty; the typed phone overrides and counts typed.
    assert (visit.json()["prefilled_count"], visit.json()["typed_count"]) == (6, 3)
    bureau = await headers_for(client, Role.BUREAU_ADMIN)
    stats = (await client.get("/api/v1/residents/statistics", headers=bureau)).json()
    street = next(s for s in stats["streets"] if s["street_code"] == "340104011")
    assert (street["forms"], street["prefilled_fields"], street["typed_fields"]) == (2, 14, 6)
    assert street["reuse_rate"] == round(14 / 20, 4)
    assert stats["reuse_rate"] == round(14 / 20, 4)
    assert "测试居民甲" not in str(stats)


async def test_the_demo_loads_residents_of_heyedi_with_valid_numbers(client, ctx, settings) -> None:
    from fixtures.residents_demo import load_residents_demo
    from residents.presenters import decrypt_resident
    from residents.settings import key_ring

    first = await load_residents_demo(settings)
    assert "荷叶地街道" in first[0]
    assert await load_residents_demo(settings) == ["residents: already there"]  # idempotent
    residents = await Resident.filter(street_code="340104011")
    assert 200 <= len(residents) <= 600
    ring = key_ring(ctx)
    for resident in residents:
        clear = decrypt_resident(ring, resident)
        number = clear.id_number
        assert ric.calc_check_digit(number) == number[-1] and number.startswith("340104")
        assert ric.get_birth_date(number) == resident.birth_date
        assert clear.name.startswith("示例居民")
    headers = await worker(client)
    alone = await client.get("/api/v1/residents/lists?preset=elderly_alone", headers=headers)
    assert alone.json()["total"] > 5
    bureau = await headers_for(client, Role.BUREAU_ADMIN)
    stats = (await client.get("/api/v1/residents/statistics", headers=bureau)).json()
    street = stats["streets"][0]
    assert street["residents"] == len(residents)
    assert street["forms"] > 0 and street["reuse_rate"] > 0.5
