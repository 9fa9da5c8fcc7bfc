"""Spreadsheets in and out: XLSX and CSV.

Reading yields each row as strings. XLSX is streamed: first by a lean reader of the sheet's XML
(``zipfile`` + ``ElementTree.iterparse``, shared and inline strings, one row in memory at a
time), which reads 50,000 rows several times faster than openpyxl's read-only mode — whose
cell objects, and whose full scan for the sheet's size when a file has no ``<dimension>``,
dominated a 50k-row import on this machine; anything that reader does not understand falls back
to openpyxl's read-only streaming. Writing (openpyxl write-only) escapes cells a spreadsheet
would run as a formula.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
import zipfile
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from typing import Any
from xml.etree.ElementTree import iterparse

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


# Untrusted XML: the stdlib parser (expat >= 2.4, here 2.5) refuses entity expansion attacks
# and never fetches external entities; a zip bomb is refused by its declared unpacked size.
MAX_UNPACKED = 300 * 1024 * 1024
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_COLUMN = re.compile(r"^([A-Z]+)")


class _NotPlain(Exception):
    """The lean reader does not handle this workbook; openpyxl will."""


def _column_index(ref: str) -> int:
    match = _COLUMN.match(ref)
    if not match:
        raise _NotPlain(ref)
    index = 0
    for ch in match.group(1):
        index = index * 26 + ord(ch) - 64
    return index - 1


def _first_sheet_path(book: zipfile.ZipFile) -> str:
    workbook = book.read("xl/workbook.xml")
    rels = book.read("xl/_rels/workbook.xml.rels")
    sheet_rid = None
    for _event, elem in iterparse(io.BytesIO(workbook)):  # noqa: S314
        if elem.tag == f"{_MAIN}sheet":
            sheet_rid = elem.get(f"{_REL}id")
            break
    for _event, elem in iterparse(io.BytesIO(rels)):  # noqa: S314
        if elem.tag == f"{_PKG_REL}Relationship" and elem.get("Id") == sheet_rid:
            target = elem.get("Target", "")
            return target.lstrip("/") if target.startswith("/") else posixpath.join("xl", target)
    raise _NotPlain("no first sheet")


def _shared_strings(book: zipfile.ZipFile) -> list[str]:
    if "xl/sharedStrings.xml" not in book.namelist():
        return []
    strings: list[str] = []
    with book.open("xl/sharedStrings.xml") as source:
        for _event, elem in iterparse(source):  # noqa: S314
            if elem.tag == f"{_MAIN}si":
                strings.append("".join(t.text or "" for t in elem.iter(f"{_MAIN}t")))
                elem.clear()
    return strings


def _lean_xlsx_rows(data: bytes) -> Iterator[list[str]]:
    book = zipfile.ZipFile(io.BytesIO(data))
    if sum(info.file_size for info in book.infolist()) > MAX_UNPACKED:
        raise UnreadableFile("XLSX 文件解压后过大")
    shared = _shared_strings(book)
    with book.open(_first_sheet_path(book)) as source:
        row: list[str] = []
        for _event, elem in iterparse(source):  # noqa: S314
            tag = elem.tag
            if tag == f"{_MAIN}c":
                kind = elem.get("t")
                if kind == "inlineStr":
                    value = "".join(t.text or "" for t in elem.iter(f"{_MAIN}t"))
                else:
                    v = elem.find(f"{_MAIN}v")
                    text = v.text if v is not None and v.text is not None else ""
                    if kind == "s":
                        value = shared[int(text)] if text else ""
                    elif kind in (None, "n") and text:
                        number = float(text)
                        value = str(int(number)) if number.is_integer() else text
                    else:
                        value = text
                index = _column_index(elem.get("r", "")) if elem.get("r") else len(row)
                if index >= len(row):
                    row.extend([""] * (index - len(row) + 1))
                row[index] = value.strip()
            elif tag == f"{_MAIN}row":
                yield row
                row = []
                elem.clear()


def _openpyxl_rows(data: bytes) -> Iterator[list[str]]:
    try:
        book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many kinds for a damaged file
        raise UnreadableFile("无法读取 XLSX 文件") from exc
    try:
        for row in book.worksheets[0].iter_rows(values_only=True):
            yield [_cell(v) for v in row]
    finally:
        book.close()


def _xlsx_rows(data: bytes) -> Iterator[list[str]]:
    try:
        rows = list(_lean_xlsx_rows(data))  # a failure half-way must not yield half a file
    except UnreadableFile:
        raise
    except (_NotPlain, KeyError, ValueError, IndexError, zipfile.BadZipFile, SyntaxError):
        yield from _openpyxl_rows(data)
        return
    yield from rows


def read_rows(data: bytes) -> Iterator[list[str]]:
    """Every row of the first sheet (XLSX) or of the file (CSV, UTF-8 or GB 18030)."""
    if data[:2] == b"PK":
        yield from _xlsx_rows(data)
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
