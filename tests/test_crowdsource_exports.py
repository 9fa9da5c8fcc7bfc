"""Exports of pain points with their counts: CSV (UTF-8 with BOM) and XLSX, parsed back."""

from __future__ import annotations

import csv
import io
from datetime import datetime

from openpyxl import load_workbook

from backend.clock import to_local
from backend.models import Role
from crowdsource.models import PainPoint
from tests.crowdsource_helpers import create_campaign, submit, token_headers, vendor_member
from tests.factories import make_user

HEADER = [
    "编号",
    "标题",
    "分类代码",
    "分类",
    "区县",
    "提交群体",
    "状态",
    "已隐藏",
    "总票数",
    "居民票数",
    "企业票数",
    "部门票数",
    "提交时间（北京时间）",
    "公开",
]


async def _campaign_with_votes(client, ctx):
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    campaign = await create_campaign(client, curator, ctx, submission_cap=20)
    author_user = await make_user(Role.RESIDENT)
    author = token_headers(ctx, author_user)
    a = await submit(client, author, campaign["id"], district="蜀山区")
    b = await submit(
        client, author, campaign["id"], title='=HYPERLINK("http://x")', category="public_toilet"
    )
    c = await submit(client, author, campaign["id"], category="transport")
    voters = [
        token_headers(ctx, await make_user(role))
        for role in (Role.RESIDENT, Role.RESIDENT, Role.STREET_WORKER)
    ]
    voters.insert(2, (await vendor_member(ctx))[0])
    for headers in voters:
        assert (
            await client.post(f"/api/v1/pain-points/{a['id']}/vote", headers=headers)
        ).status_code == 201
    assert (
        await client.post(f"/api/v1/pain-points/{b['id']}/vote", headers=voters[0])
    ).status_code == 201
    invalid = await client.post(
        f"/api/v1/pain-points/{c['id']}/moderation",
        headers=curator,
        json={"decision": "invalid", "reason": "重复提交"},
    )
    assert invalid.status_code == 200
    # The export counts in the database: losing the live counters changes nothing.
    await ctx.kv.clear_namespace()
    return curator, campaign, (a, b, c), author_user


def _expected(items, votes):
    return {item["id"]: v for item, v in zip(items, votes, strict=True)}


async def test_csv_export_parses_back_with_database_counts(client, ctx):
    curator, campaign, items, author = await _campaign_with_votes(client, ctx)
    response = await client.get(
        f"/api/v1/campaigns/{campaign['id']}/pain-points/export.csv", headers=curator
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/csv")
    assert f"pain-points-{campaign['id']}.csv" in response.headers["content-disposition"]
    assert response.content.startswith(b"\xef\xbb\xbf")  # the BOM Excel needs
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0] == HEADER
    by_id = {r[0]: r for r in rows[1:]}
    assert list(by_id) == [i["id"] for i in items]
    a, b, c = items
    assert by_id[a["id"]][1:12] == [
        a["title"],
        "parking",
        "停车",
        "蜀山区",
        "resident",
        "submitted",
        "否",
        "4",
        "2",
        "1",
        "1",
    ]
    assert by_id[b["id"]][1] == '\'=HYPERLINK("http://x")'  # never a formula
    assert by_id[b["id"]][8:12] == ["1", "1", "0", "0"]
    assert by_id[c["id"]][6] == "invalid" and by_id[c["id"]][8] == "0"
    stored = await PainPoint.get(public_id=a["id"])
    local = to_local(stored.created_at).strftime("%Y-%m-%d %H:%M:%S")
    assert by_id[a["id"]][12] == local
    text = response.content.decode("utf-8-sig")
    assert author.display_name not in text and author.public_id not in text


async def test_xlsx_export_parses_back(client, ctx):
    curator, campaign, items, author = await _campaign_with_votes(client, ctx)
    response = await client.get(
        f"/api/v1/campaigns/{campaign['id']}/pain-points/export.xlsx", headers=curator
    )
    assert response.status_code == 200, response.text
    assert "spreadsheetml" in response.headers["content-type"]
    sheet = load_workbook(io.BytesIO(response.content), read_only=True).active
    rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert rows[0] == HEADER
    by_id = {r[0]: r for r in rows[1:]}
    a, b, _ = items
    assert by_id[a["id"]][3:12] == ["停车", "蜀山区", "resident", "submitted", "否", 4, 2, 1, 1]
    assert by_id[b["id"]][1] == '\'=HYPERLINK("http://x")'
    stored = await PainPoint.get(public_id=a["id"])
    created = by_id[a["id"]][12]
    assert isinstance(created, datetime)
    local = to_local(stored.created_at).replace(tzinfo=None)
    assert abs((created - local).total_seconds()) < 1  # Excel keeps milliseconds at most
    flat = " ".join(str(v) for r in rows for v in r)
    assert author.display_name not in flat


async def test_exports_are_for_curators_and_the_bureau(client, ctx):
    curator, campaign, _, _ = await _campaign_with_votes(client, ctx)
    path = f"/api/v1/campaigns/{campaign['id']}/pain-points/export"
    admin = token_headers(ctx, await make_user(Role.BUREAU_ADMIN))
    assert (await client.get(path + ".xlsx", headers=admin)).status_code == 200
    resident = token_headers(ctx, await make_user(Role.RESIDENT))
    assert (await client.get(path + ".csv", headers=resident)).status_code == 403
    assert (await client.get(path + ".csv")).status_code == 401
    missing = await client.get("/api/v1/campaigns/nope/pain-points/export.csv", headers=curator)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "campaign_not_found"
