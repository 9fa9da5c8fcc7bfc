"""Residents: spreadsheet imports — good rows saved, bad rows reported and downloadable, the
same file twice changes nothing, 50,000 rows in the background with progress."""

from __future__ import annotations

import asyncio
import csv
import io
import time
from datetime import date, timedelta

import pytest
from openpyxl import Workbook, load_workbook
from stdnum.cn import ric

from residents.imports import cancel_running_imports
from residents.models import Resident, ResidentVersion
from tests.residents_helpers import id_number, worker


@pytest.fixture(autouse=True)
async def _no_import_outlives_its_test():
    """A failed (timed-out) import test must not keep writing into the next test's tables."""
    yield
    await cancel_running_imports()


HEADER = ["社区", "地址", "与户主关系", "姓名", "身份证号", "电话", "标签", "备注"]


def _xlsx(rows: list[list[str]]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("居民")
    sheet.append(HEADER)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def _upload(client, headers, data: bytes, name: str) -> dict:
    response = await client.post(
        "/api/v1/residents/imports",
        files={"file": (name, data, "application/octet-stream")},
        headers=headers,
    )
    assert response.status_code == 202, response.text
    return response.json()


async def _finish(client, headers, job: dict, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    seen = []
    while True:
        state = (await client.get(f"/api/v1/residents/imports/{job['id']}", headers=headers)).json()
        seen.append(state["percent"])
        if state["status"] in ("done", "failed"):
            return {**state, "percents": seen}
        assert time.monotonic() < deadline, state
        await asyncio.sleep(0.2)


def _bad_check(number: str) -> str:
    return number[:-1] + ("1" if number[-1] != "1" else "2")


async def test_good_rows_saved_bad_rows_reported_and_a_second_import_changes_nothing(client):
    headers = await worker(client)
    good = [id_number(date(1940 + i, 1, 1)) for i in range(4)]
    rows = [
        ["荷叶地社区", "荷叶地路 1 号", "户主", "测试一", good[0], "13800000001", "独居老人", ""],
        ["荷叶地社区", "荷叶地路 1 号", "配偶", "测试二", good[1], "", "残疾、低保", "备注"],
        ["荷叶地社区", "荷叶地路 2 号", "户主", "测试三", _bad_check(good[2]), "", "", ""],
        ["荷叶地社区", "荷叶地路 3 号", "户主", "测试四", good[3], "12345", "", ""],
        ["", "荷叶地路 4 号", "户主", "", good[0], "", "不存在的标签", ""],
        ["新社区", "新路 1 号", "朋友", "测试六", id_number(), "0551-65551234", "veteran", ""],
    ]
    data = _xlsx(rows)
    job = await _finish(client, headers, await _upload(client, headers, data, "居民.xlsx"))
    assert job["status"] == "done", job
    assert (job["total"], job["created"], job["failed"], job["unchanged"]) == (6, 2, 4, 0)
    assert job["percent"] == 100
    errors = {(e["row"], e["column"]) for e in job["errors"]}
    assert (4, "身份证号") in errors  # bad checksum
    assert (5, "电话") in errors
    assert {(6, "社区"), (6, "姓名"), (6, "标签"), (6, "身份证号")} <= errors  # duplicate in file
    assert (7, "与户主关系") in errors
    assert all(good[2] not in e["reason"] for e in job["errors"])
    assert await Resident.all().count() == 2
    household = await Resident.filter(household_id__isnull=False).values_list(
        "household_id", flat=True
    )
    assert len(set(household)) == 1  # two members of one household
    # The error sheet: the bad rows as uploaded, plus why; fixed and uploaded again, they import.
    sheet = await client.get(job["errors_sheet"], headers=headers)
    assert sheet.status_code == 200
    book = load_workbook(io.BytesIO(sheet.content), read_only=True)
    table = [list(r) for r in book.worksheets[0].iter_rows(values_only=True)]
    assert table[0] == [*HEADER, "错误"]
    assert [r[4] for r in table[1:]] == [_bad_check(good[2]), good[3], good[0], table[4][4]]
    assert "校验位" in table[1][-1] and "第 4 行" in table[1][-1]
    fixed = [list(r[:8]) for r in table[1:3]]
    fixed[0][4] = good[2]
    fixed[1][5] = "13800000004"
    second = await _finish(
        client, headers, await _upload(client, headers, _xlsx(fixed), "fix.xlsx")
    )
    assert (second["created"], second["failed"]) == (2, 0)
    # The same first file again: nothing changes.
    versions = await ResidentVersion.all().count()
    again = await _finish(client, headers, await _upload(client, headers, data, "居民.xlsx"))
    assert (again["created"], again["unchanged"], again["failed"]) == (0, 2, 4)
    assert await Resident.all().count() == 4
    assert await ResidentVersion.all().count() == versions


async def test_csv_import_and_another_streets_person_is_a_bad_row(client):
    headers = await worker(client)
    other = await worker(client, "340104001")
    number = id_number()
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["community", "address", "name", "id_number", "phone"])
    writer.writerow(["三里庵社区", "路 1 号", "测试", number, "13800000000"])
    job = await _finish(
        client, other, await _upload(client, other, out.getvalue().encode("utf-8-sig"), "a.csv")
    )
    assert job["created"] == 1
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["社区", "姓名", "身份证号"])
    writer.writerow(["荷叶地社区", "测试", number])
    writer.writerow(["荷叶地社区", "测试二", id_number()])
    mine = await _finish(
        client, headers, await _upload(client, headers, out.getvalue().encode("gb18030"), "b.csv")
    )
    assert (mine["created"], mine["failed"]) == (1, 1)
    assert mine["errors"][0]["reason"] == "该身份证号已在其他街道登记"
    # Another street's worker cannot poll or download this job.
    assert (
        await client.get(f"/api/v1/residents/imports/{mine['id']}", headers=other)
    ).status_code == 404


async def test_a_file_without_the_required_columns_fails_with_a_reason(client):
    headers = await worker(client)
    job = await _finish(client, headers, await _upload(client, headers, b"a,b\n1,2\n", "x.csv"))
    assert job["status"] == "failed"
    assert "缺少列" in job["message"]


def _big_file(count: int) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("居民")
    sheet.append(HEADER)
    start = date(1930, 1, 1)
    for i in range(count):
        born = start + timedelta(days=i % 30000)  # unique (birth date, sequence) pairs
        body = f"340104{born:%Y%m%d}{i // 30000:03d}"
        number = body + ric.calc_check_digit(body + "0")
        community = f"社区{i % 12}"
        sheet.append(
            [community, f"测试路 {i // 3} 号", "户主" if i % 3 == 0 else "子女", f"测试{i}",
             number, f"138{i:08d}", "独居老人" if i % 17 == 0 else "", ""]
        )  # fmt: skip
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def test_fifty_thousand_rows_in_the_background_with_progress(client):
    headers = await worker(client)
    data = await asyncio.to_thread(_big_file, 50_000)
    job = await _upload(client, headers, data, "big.xlsx")
    # The API keeps serving while the import runs.
    assert (await client.get("/api/v1/residents/tags", headers=headers)).status_code == 200
    done = await _finish(client, headers, job, timeout=600)
    assert done["status"] == "done", done
    assert (done["total"], done["created"], done["failed"]) == (50_000, 50_000, 0)
    assert done["percent"] == 100 and done["processed"] == 50_000
    assert any(0 < p < 100 for p in done["percents"]), done["percents"][:20]
    assert await Resident.all().count() == 50_000


def test_the_lean_xlsx_reader_agrees_with_openpyxl() -> None:
    from residents.sheets import _lean_xlsx_rows, _openpyxl_rows, read_rows

    book = Workbook()  # the normal mode writes shared strings, as Excel does
    sheet = book.active
    sheet.append(HEADER)
    sheet.append(
        ["荷叶地社区", "路 1 号 & 2 号", "户主", "测试<甲>", id_number(), 13800000001, "", ""]
    )
    sheet.append([None, None, None, None, None, None, None, None])
    sheet["C4"] = "子女"
    sheet["H4"] = 12.5
    out = io.BytesIO()
    book.save(out)
    data = out.getvalue()

    def trimmed(rows):
        result = []
        for row in rows:
            while row and row[-1] == "":
                row = row[:-1]
            result.append(row)
        return result

    lean = trimmed(list(_lean_xlsx_rows(data)))
    reference = trimmed(list(_openpyxl_rows(data)))
    assert lean == reference
    assert lean[1][5] == "13800000001" and lean[3] == ["", "", "子女", "", "", "", "", "12.5"]
    assert trimmed(list(read_rows(data))) == reference
