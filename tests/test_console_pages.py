"""Console pages beyond access: the opening-hours preview (holidays and 调休), inline field errors
with the API's messages, long operations started without JavaScript, and the street workers'
resident pages (the inline ID-number check, field errors on save, an import with bad rows, the
clear value that is logged)."""

from __future__ import annotations

import asyncio
import io
import re
from datetime import date, datetime

import pytest
from openpyxl import Workbook, load_workbook

from admin_console import tasks
from admin_console.views.venues import preview
from backend.clock import SHANGHAI
from crowdsource.models import Campaign, ModerationPolicy
from residents.identity import id_for, mask_id
from residents.imports import cancel_running_imports
from residents.models import AccessEvent, Resident
from residents.settings import key_ring
from search import index
from tests.conftest import PROFILE
from tests.console_helpers import console_login, csrf_of
from tests.console_world import seed
from venues.models import Venue

WEEKDAYS = "Mo-Fr 08:00-18:00; PH off"


def _day(result: dict, iso: str) -> dict:
    return next(d for d in result["days"] if d["date"].isoformat() == iso)


def test_hours_preview_follows_the_official_calendar() -> None:
    # Sunday 2026-09-20 is a make-up workday (调休) before National Day.
    saturday = preview(WEEKDAYS, datetime(2026, 9, 19, 10, 0, tzinfo=SHANGHAI))
    assert saturday["open_now"] is False
    sunday = _day(saturday, "2026-09-20")
    assert sunday["label"].startswith("调休上班") and sunday["periods"] == ["08:00–18:00"]
    assert _day(saturday, "2026-09-21")["periods"] == ["08:00–18:00"]
    # National Day: a holiday on a weekday, closed by "PH off".
    holiday = preview(WEEKDAYS, datetime(2026, 9, 30, 9, 0, tzinfo=SHANGHAI))
    assert holiday["open_now"] is True
    assert holiday["next_change"] == datetime(2026, 9, 30, 18, 0, tzinfo=SHANGHAI)
    first = _day(holiday, "2026-10-01")
    assert "国庆节" in first["label"] and first["periods"] == []


def test_hours_preview_names_a_bad_expression() -> None:
    assert "error" in preview("Mo-Su 25:00", datetime(2026, 9, 30, 9, 0, tzinfo=SHANGHAI))
    assert preview("  ", datetime(2026, 9, 30, 9, 0, tzinfo=SHANGHAI)) == {"empty": True}


async def test_campaign_form_shows_the_apis_errors_next_to_the_fields(client, app) -> None:
    await seed()
    await console_login(client, "c_curator")
    token = await csrf_of(client)
    response = await client.post(
        "/console/campaigns/",
        data={
            "csrf_token": token,
            "title": "x",
            "collecting_starts_at": "2026-12-10T09:00",
            "collecting_ends_at": "2026-12-01T09:00",
            "voting_starts_at": "2026-12-10T09:00",
            "voting_ends_at": "2026-12-20T09:00",
            "closes_at": "2026-12-30T09:00",
            "audiences": "resident",
        },
    )
    assert response.status_code == 400
    assert 'id="e-title"' in response.text and 'aria-invalid="true"' in response.text
    assert 'value="x"' in response.text  # what was typed stays


async def test_the_campaign_form_sets_moderation_and_categories(client, app) -> None:
    await seed()
    await console_login(client, "c_curator")
    token = await csrf_of(client)
    form = {
        "csrf_token": token,
        "title": "先发后审的活动",
        "collecting_starts_at": "2026-12-01T09:00",
        "collecting_ends_at": "2026-12-10T09:00",
        "voting_starts_at": "2026-12-10T09:00",
        "voting_ends_at": "2026-12-20T09:00",
        "closes_at": "2026-12-30T09:00",
        "audiences": "resident",
    }
    new = await client.get("/console/campaigns/new")
    assert 'name="moderation" value="pre" checked' in new.text  # the product's default
    assert "transport 交通出行\nparking 停车\n" in new.text  # the default categories, editable
    refused = await client.post(
        "/console/campaigns/", data=form | {"categories": "parking 停车\n加装电梯"}
    )
    assert refused.status_code == 400
    assert 'id="e-categories">第 2 行：' in refused.text  # the API's message, under the field
    created = await client.post(
        "/console/campaigns/",
        data=form | {"moderation": "post", "categories": "parking 停车\nlift\u3000加装电梯"},
    )
    assert created.status_code == 303, created.text[-800:]
    campaign = await Campaign.get(title="先发后审的活动")
    assert campaign.moderation == ModerationPolicy.POST
    assert campaign.categories == [
        {"code": "parking", "label": "停车"},
        {"code": "lift", "label": "加装电梯"},
    ]
    shown = await client.get(created.headers["location"])
    assert 'name="moderation" value="post" checked' in shown.text
    assert "parking 停车\nlift 加装电梯</textarea>" in shown.text
    back = await client.post(created.headers["location"], data=form | {"moderation": "pre"})
    assert back.status_code == 303, back.text[-800:]
    await campaign.refresh_from_db()
    assert campaign.moderation == ModerationPolicy.PRE


async def test_an_export_runs_in_the_background_without_javascript(client, app) -> None:
    world = await seed()
    await console_login(client, "c_curator")
    token = await csrf_of(client)
    started = await client.post(
        f"/console/campaigns/{world.campaign}/exports", data={"csrf_token": token, "format": "xlsx"}
    )
    assert started.status_code == 200 and "<html" in started.text  # a whole page
    task = re.search(r"/console/tasks/([\w-]+)", started.text)
    assert task
    for _ in range(50):
        status = await client.get(f"/console/tasks/{task.group(1)}")
        if "下载" in status.text:
            break
        await asyncio.sleep(0.1)
    assert "<html" in status.text and ".xlsx" in status.text
    download = await client.get(f"/console/tasks/{task.group(1)}/download")
    assert download.status_code == 200 and download.content[:2] == b"PK"
    # Someone else's task is not theirs to see.
    other = client.__class__(transport=client._transport, base_url="http://testserver")
    async with other:
        await console_login(other, "c_admin")
        assert (await other.get(f"/console/tasks/{task.group(1)}/download")).status_code == 404


# -- the street workers' resident pages ------------------------------------------------
IMPORT_HEADER = ["社区", "地址", "与户主关系", "姓名", "身份证号", "电话", "标签", "备注"]


@pytest.fixture
async def _no_import_outlives_its_test():
    yield
    await cancel_running_imports()


def _bad_check(number: str) -> str:
    return number[:-1] + ("1" if number[-1] != "1" else "2")


def _sheet(rows: list[list[str]]) -> bytes:
    book = Workbook(write_only=True)
    sheet = book.create_sheet("居民")
    sheet.append(IMPORT_HEADER)
    for row in rows:
        sheet.append(row)
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


async def _street_worker(client, ctx) -> tuple:
    world = await seed(ring=key_ring(ctx))
    await console_login(client, "c_street")
    return world, await csrf_of(client)


async def test_the_id_number_check_names_the_field_or_shows_what_it_tells(client, ctx) -> None:
    _world, token = await _street_worker(client, ctx)
    good = id_for("340104", date(1962, 5, 17), 21)  # odd sequence: male
    headers = {"X-CSRF-Token": token, "HX-Request": "true"}
    bad = await client.post(
        "/console/residents/id-check", data={"id_number": _bad_check(good)}, headers=headers
    )
    assert bad.status_code == 200 and "<html" not in bad.text  # a fragment for htmx
    assert "身份证号：身份证号校验位不正确" in bad.text and 'class="field-error"' in bad.text
    assert _bad_check(good) not in bad.text  # the refused value is never repeated
    short = await client.post(
        "/console/residents/id-check", data={"id_number": "3401"}, headers=headers
    )
    assert "应为 18 位" in short.text
    ok = await client.post("/console/residents/id-check", data={"id_number": good}, headers=headers)
    assert (
        "校验通过" in ok.text and "1962-05-17" in ok.text and "性别 <strong>男</strong>" in ok.text
    )
    assert "field-error" not in ok.text
    female = id_for("340104", date(2015, 9, 1), 22)
    shown = await client.post(
        "/console/residents/id-check", data={"id_number": female}, headers=headers
    )
    assert "2015-09-01" in shown.text and "<strong>女</strong>" in shown.text


async def test_saving_shows_the_registrys_errors_next_to_the_fields(client, ctx) -> None:
    world, token = await _street_worker(client, ctx)
    number = id_for("340104", date(1970, 2, 3), 41)
    form = {
        "csrf_token": token,
        "community": "荷叶地社区",
        "name": "赵新登",
        "id_number": _bad_check(number),
        "phone": "12345",
        "relation": "head",
        "address": "荷叶地路 9 号",
    }
    refused = await client.post("/console/residents/new", data=form)
    assert refused.status_code == 400
    for name in ("id_number", "phone"):
        assert f'id="e-{name}"' in refused.text
    assert "校验位不正确" in refused.text and 'aria-invalid="true"' in refused.text
    assert 'value="赵新登"' in refused.text  # what was typed stays
    assert await Resident.filter(street_code="340104011").count() == 2  # nothing saved

    saved = await client.post(
        "/console/residents/new", data={**form, "id_number": number, "phone": "13800001111"}
    )
    assert saved.status_code == 303
    page = await client.get(saved.headers["location"])
    assert page.status_code == 200 and "已登记" in page.text
    assert mask_id(number) in page.text and number not in page.text  # masked
    assert "1970-02-03" in page.text and "138****1111" in page.text

    # The same number again: the registry's duplicate answer, pointing at the record.
    again = await client.post(
        "/console/residents/new", data={**form, "id_number": number, "phone": ""}
    )
    assert again.status_code == 400 and "已登记" in again.text
    resident_id = saved.headers["location"].rsplit("/", 1)[1]
    assert f'href="/console/residents/{resident_id}"' in again.text
    # Added to an existing household from the household page.
    member = await client.get(f"/console/residents/new?household={world.household}")
    assert 'name="household_id"' in member.text and "张建国" in member.text


async def test_revealing_a_number_goes_through_the_registry_and_is_logged(client, ctx) -> None:
    world, token = await _street_worker(client, ctx)
    headers = {"X-CSRF-Token": token, "HX-Request": "true"}
    url = f"/console/residents/{world.resident}/reveal"
    short = await client.post(url, data={"field": "id_number", "reason": "查"}, headers=headers)
    assert short.status_code == 400 and "reason" in short.text
    shown = await client.post(
        url, data={"field": "id_number", "reason": "办理高龄津贴核对"}, headers=headers
    )
    assert shown.status_code == 200 and "340104195003070138" in shown.text
    resident = await Resident.get(public_id=world.resident)
    events = await AccessEvent.filter(resident_id=resident.id, kind="reveal")
    assert [(e.field, e.reason) for e in events] == [("id_number", "办理高龄津贴核对")]


async def test_an_import_reports_its_bad_rows_and_offers_the_error_sheet(
    client, ctx, caplog, _no_import_outlives_its_test
) -> None:
    _world, token = await _street_worker(client, ctx)
    good = [id_for("340104", date(1945 + n, 1, 2), 51 + n) for n in range(3)]
    bad = _bad_check(id_for("340104", date(1990, 6, 6), 61))
    rows = [
        ["荷叶地社区", "荷叶地路 20 号", "户主", "钱一", good[0], "13800000020", "独居老人", ""],
        ["荷叶地社区", "荷叶地路 20 号", "配偶", "钱二", good[1], "", "", ""],
        ["西园新村社区", "西园路 3 号", "户主", "钱三", bad, "", "", ""],
        ["西园新村社区", "西园路 4 号", "户主", "钱四", good[2], "123", "", ""],
    ]
    started = await client.post(
        "/console/residents/import",
        data={"csrf_token": token},
        files={"file": ("居民.xlsx", _sheet(rows), "application/octet-stream")},
        headers={"HX-Request": "true"},
    )
    assert started.status_code == 200 and "<html" not in started.text
    found = re.search(r'hx-get="/console/residents/imports/([\w-]+)"', started.text)
    assert found, started.text  # the fragment polls the job
    job = found.group(1)
    for _ in range(100):
        state = await client.get(
            f"/console/residents/imports/{job}", headers={"HX-Request": "true"}
        )
        if "hx-get" not in state.text:
            break
        await asyncio.sleep(0.1)
    assert "新增 <strong>2</strong> 人" in state.text and "失败 <strong>2</strong> 行" in state.text
    assert "校验位不正确" in state.text and "电话" in state.text
    # Row numbers as in the sheet (the header is row 1).
    assert re.search(r">4</td><td>身份证号</td><td>身份证号校验位不正确<", state.text)
    assert re.search(r">5</td><td>电话</td>", state.text)
    assert bad not in state.text and "钱三" not in state.text  # reasons only, never values
    sheet_url = f"/console/residents/imports/{job}/errors.xlsx"
    assert sheet_url in state.text
    download = await client.get(sheet_url)
    assert download.status_code == 200 and download.content[:2] == b"PK"
    book = load_workbook(io.BytesIO(download.content))
    values = [[c for c in row] for row in book.active.iter_rows(values_only=True)]
    assert values[0][-1] == "错误" and [r[3] for r in values[1:]] == ["钱三", "钱四"]
    assert "第 4 行" in values[1][-1] and "校验位" in values[1][-1]
    # The whole page (no JavaScript) says the same; the list shows the new residents.
    whole = await client.get(f"/console/residents/imports/{job}")
    assert "<html" in whole.text and "失败 <strong>2</strong> 行" in whole.text
    listing = await client.get("/console/residents")
    assert "钱一" in listing.text and "钱二" in listing.text and "钱四" not in listing.text
    assert all(n not in caplog.text for n in (*good, bad))


async def test_an_upload_without_a_file_is_a_field_error(client, ctx) -> None:
    _world, token = await _street_worker(client, ctx)
    response = await client.post("/console/residents/import", data={"csrf_token": token})
    assert response.status_code == 400 and 'id="e-file"' in response.text


async def test_an_edit_keeps_what_is_left_empty_and_its_history_is_masked(client, ctx) -> None:
    world, token = await _street_worker(client, ctx)
    url = f"/console/residents/{world.resident}"
    before = await Resident.get(public_id=world.resident)
    edit = {
        "csrf_token": token,
        "community": "荷叶地社区",
        "name": "张建国",
        "id_number": "",  # empty: unchanged
        "phone": "13900002222",
        "address": "荷叶地路 8 号 2 栋 301",
        "relation": "head",
        "tags": "elderly_alone",
        "notes": "",
        "version": str(before.version),
    }
    saved = await client.post(url, data=edit)
    assert saved.status_code == 303
    after = await Resident.get(public_id=world.resident)
    assert after.id_index == before.id_index and after.version == before.version + 1
    assert after.household_id == before.household_id
    # A stale version: the registry's conflict, shown on the form.
    stale = await client.post(url, data={**edit, "phone": "13900003333"})
    assert stale.status_code == 400 and "记录已被他人修改" in stale.text
    history = await client.get(f"{url}/history")
    assert history.status_code == 200
    assert "电话：（空） → 139****2222" in history.text and "13900002222" not in history.text
    # The household's address: another household's address is the service's conflict.
    other = await client.post(
        "/console/residents/new",
        data={**edit, "name": "邻居", "id_number": id_for("340104", date(1988, 1, 1), 81),
              "phone": "", "address": "荷叶地路 9 号", "relation": "head", "version": ""},
    )  # fmt: skip
    assert other.status_code == 303
    moved = await client.post(
        f"/console/households/{world.household}",
        data={"csrf_token": token, "address": "荷叶地路 9 号"},
    )
    assert moved.status_code == 400 and 'id="e-address"' in moved.text and "已存在" in moved.text


async def test_a_list_and_its_export_come_from_the_lists_service(client, ctx) -> None:
    world, _token = await _street_worker(client, ctx)
    # 张建国 (76, tagged 独居老人) is on the list; his wife (74, same household, untagged) is not.
    page = await client.get("/console/residents/lists?preset=elderly_alone")
    assert page.status_code == 200 and "共 <strong>1</strong> 人" in page.text
    assert "张建国" in page.text and "李秀英" not in page.text
    assert 'href="/console/residents/lists/export.xlsx?preset=elderly_alone"' in page.text
    export = await client.get("/console/residents/lists/export.xlsx?preset=elderly_alone")
    assert export.status_code == 200 and export.content[:2] == b"PK"
    assert "attachment" in export.headers["content-disposition"]
    rows = list(load_workbook(io.BytesIO(export.content)).active.iter_rows(values_only=True))
    assert [r[3] for r in rows[1:]] == ["张建国"]
    assert rows[1][2] == "户主" and rows[1][4] == "男"  # as people write them, not codes
    assert rows[1][7] == mask_id("340104195003070138")  # masked in the file too
    resident = await Resident.get(public_id=world.resident)
    assert await AccessEvent.filter(resident_id=resident.id, kind="export").count() == 1
    bad = await client.get("/console/residents/lists?age_min=abc")
    assert bad.status_code == 400 and "age_min" in bad.text


async def test_the_bureau_creates_a_venue_with_the_apis_rules(client, app) -> None:
    await seed()
    await console_login(client, "c_admin")
    form = await client.get("/console/venues/new")
    assert form.status_code == 200 and 'name="opening_hours"' in form.text
    operator = re.search(r'<option value="([A-Za-z0-9_-]+)">[^<]*（c_operator）', form.text)
    assert operator, "the venue operators are offered"
    token = await csrf_of(client)
    typed = {
        "csrf_token": token,
        "kind": "sports_venue",
        "name": "南七里站球馆",
        "lat": "31.8206",
        "lng": "117.2272",
        "coord": "gcj02",
        "opening_hours": "Mo-Fr 25:00-26:00",
        "operator_id": operator.group(1),
    }
    refused = await client.post("/console/venues/new", data=typed)
    assert refused.status_code == 400 and 'id="e-opening_hours"' in refused.text
    assert 'value="南七里站球馆"' in refused.text  # what was typed stays
    assert await Venue.filter(name="南七里站球馆").count() == 0
    created = await client.post(
        "/console/venues/new", data=typed | {"opening_hours": "Mo-Su 08:00-21:00"}
    )
    assert created.status_code == 303, created.text
    venue = await Venue.get(name="南七里站球馆").select_related("operator")
    assert created.headers["location"] == f"/console/venues/{venue.public_id}"
    assert venue.operator is not None and venue.operator.username == "c_operator"
    # The GCJ-02 point from a Chinese map is stored in WGS-84, as through the API.
    assert abs(venue.lat - 31.8206) > 1e-4 and abs(venue.lat - 31.8206) < 0.01
    client.cookies.clear()
    await console_login(client, "c_operator")
    assert (await client.get("/console/venues/new")).status_code == 403


async def test_the_admin_rebuilds_the_search_index_as_a_long_operation(client, ctx) -> None:
    await seed()
    await console_login(client, "c_admin")
    page = await client.get("/console/admin/search-index")
    assert page.status_code == 200
    token = await csrf_of(client)
    started = await client.post(
        "/console/admin/search-index/rebuild",
        data={"csrf_token": token},
        headers={"HX-Request": "true"},
    )
    if PROFILE != "services":
        assert "无需重建索引" in page.text and "重建索引</button>" not in page.text
        assert started.status_code == 409 and "没有 Elasticsearch" in started.text
        return
    assert started.status_code == 200, started.text
    task_id = re.search(r'id="task-([A-Za-z0-9_-]+)"', started.text).group(1)
    await asyncio.gather(*list(tasks._RUNNING))
    done = await client.get(f"/console/tasks/{task_id}", headers={"HX-Request": "true"})
    assert "已切换到新索引" in done.text and "下载" not in done.text, done.text
    alias = index.alias_name(ctx.settings)
    behind = await ctx.elastic.client.indices.get_alias(name=alias)
    name = done.text.split("已切换到新索引 ")[1].split("<")[0].strip()
    assert list(behind.body) == [name]
    await ctx.elastic.client.indices.refresh(index=name)
    counted = await ctx.elastic.client.count(index=alias)
    assert counted.body["count"] == await Venue.exclude(status="removed").count() > 0
