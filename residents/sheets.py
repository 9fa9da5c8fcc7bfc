"""Spreadsheets in and out: XLSX (openpyxl, read-only streaming / write-only) and CSV.

Reading yields each row as strings; writing escapes cells a spreadsheet would run as a formula.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any

from openpyxl import Workbook, load_workbook

XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


class UnreadableFile(ValueError):
    """Not a spreadsheet we can read (reason safe to show)."""


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value).strip()


def read_rows(data: bytes) -> Iterator[list[str]]:
    """Every row of the first sheet (XLSX) or of the file (CSV, UTF-8 or GB 18030)."""
    if data[:2] == b"PK":
        try:
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as exc:  # openpyxl raises many kinds for a damaged file
            raise UnreadableFile("无法读取 XLSX 文件") from exc
        try:
            sheet = book.worksheets[0]
            for row in sheet.iter_rows(values_only=True):
                yield [_cell(v) for v in row]
        finally:
            book.close()
        return
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            raise UnreadableFile("CSV 文件应为 UTF-8 或 GB18030 编码") from None
    for row in csv.reader(io.StringIO(text)):
        yield [c.strip() for c in row]


def _safe(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def write_xlsx(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> bytes:
    """A one-sheet workbook (write-only mode)."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(title)
    sheet.append(list(header))
    for row in rows:
        sheet.append([_safe(v) for v in row])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
