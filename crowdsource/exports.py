"""Exports of a campaign's pain points with their vote counts: CSV (UTF-8 with BOM) and XLSX.

Every pain point of the campaign is exported, whatever its status and whether or not the public
can see it (the column 公开 says so, by the campaign's moderation policy), with the votes counted
in the database (the truth, not the live counters), per audience, and its submission time in
Asia/Shanghai. No personal data: no author, company or department contact, no photos. Rows are
read in batches and the file is built in a worker thread, so a large campaign does not block the
event loop. A cell that a spreadsheet would read as a formula (starting with ``=``, ``+``, ``-``,
``@``, tab or CR) is prefixed with ``'`` so user text is never executed (CSV injection).
"""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass
from datetime import datetime

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

from backend.access import Principal
from backend.clock import to_local
from backend.context import AppContext
from crowdsource import counters
from crowdsource.campaigns import get_campaign_or_raise
from crowdsource.models import Campaign, PainPoint, Status
from crowdsource.visibility import why_not_public_state

BATCH = 1000
HEADERS = (
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
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class Export:
    campaign: Campaign
    rows: list[tuple[object, ...]]  # one per pain point, in HEADERS order; the time is local


def _safe(value: str | None) -> str:
    # Control characters are refused at the border; rows stored before that rule lose them here,
    # since one such cell would make the whole workbook unwritable.
    text = ILLEGAL_CHARACTERS_RE.sub("", value or "")
    return "'" + text if text.startswith(_FORMULA_START) else text


async def export_rows(*, ctx: AppContext, principal: Principal, campaign_id: str) -> Export:
    """Every pain point of the campaign with its database vote counts, oldest first."""
    campaign = await get_campaign_or_raise(campaign_id, principal=principal, now=ctx.clock.now())
    counts = await counters.database_counts(campaign=campaign)
    labels = campaign.category_labels()
    rows: list[tuple[object, ...]] = []
    last_pk = 0
    while True:
        batch = (
            await PainPoint.filter(campaign_id=campaign.id, id__gt=last_pk)
            .order_by("id")
            .limit(BATCH)
            .values(
                "id",
                "public_id",
                "title",
                "category",
                "district",
                "audience",
                "status",
                "hidden",
                "created_at",
            )
        )
        for item in batch:
            c = counts.get(str(item["public_id"]), {})
            created: datetime = to_local(item["created_at"]).replace(tzinfo=None)
            rows.append(
                (
                    str(item["public_id"]),
                    _safe(str(item["title"])),
                    str(item["category"]),
                    _safe(labels.get(str(item["category"]), str(item["category"]))),
                    _safe(item["district"]),
                    str(item["audience"]),
                    str(item["status"]),
                    "是" if item["hidden"] else "否",
                    c.get("total", 0),
                    c.get("resident", 0),
                    c.get("enterprise", 0),
                    c.get("department", 0),
                    created,
                    "否"
                    if why_not_public_state(Status(item["status"]), bool(item["hidden"]), campaign)
                    else "是",
                )
            )
        if len(batch) < BATCH:
            break
        last_pk = int(batch[-1]["id"])
    return Export(campaign=campaign, rows=rows)


def _csv_bytes(rows: list[tuple[object, ...]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADERS)
    for row in rows:
        writer.writerow([v.strftime(TIME_FORMAT) if isinstance(v, datetime) else v for v in row])
    return out.getvalue().encode("utf-8-sig")


def _xlsx_bytes(rows: list[tuple[object, ...]], title: str) -> bytes:
    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title)
    sheet.append(list(HEADERS))
    for row in rows:
        cells = []
        for value in row:
            cell = WriteOnlyCell(sheet, value=value)
            if isinstance(value, str):
                cell.data_type = "s"  # never a formula, whatever the text starts with
            elif isinstance(value, datetime):
                cell.number_format = "yyyy-mm-dd hh:mm:ss"
            cells.append(cell)
        sheet.append(cells)
    out = io.BytesIO()
    workbook.save(out)
    return out.getvalue()


async def to_csv(export: Export) -> bytes:
    """The export as CSV, UTF-8 with a BOM (so Excel reads the Chinese text correctly)."""
    return await asyncio.to_thread(_csv_bytes, export.rows)


async def to_xlsx(export: Export) -> bytes:
    """The export as an XLSX workbook with one sheet."""
    return await asyncio.to_thread(_xlsx_bytes, export.rows, "痛难点")


def filename(export: Export, extension: str) -> str:
    return f"pain-points-{export.campaign.public_id}.{extension}"
