"""Importing households and residents from XLSX or CSV, in the background, idempotently.

The request stores an :class:`ImportJob` and starts an asyncio task; the worker polls the job.
The task validates and encrypts every row in a worker thread (so the event loop keeps serving),
then writes batches of 1,000 rows: one bulk look-up of the batch's ID-number blind indexes, bulk
inserts of new households, residents and their first history rows, one progress update. A row
whose ID number is already registered in the caller's street is "unchanged" (importing a file
twice changes nothing); in another street, or twice in the file, it is a bad row. Every bad row
is reported by row number, column and reason (never its values); the rows themselves, values
included, are kept encrypted for the error sheet the worker downloads, fixes and uploads again
(the extra "错误" column is ignored on upload).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from tortoise.exceptions import IntegrityError

from backend.access import Principal
from backend.context import AppContext
from backend.errors import NotFound, ValidationFailed
from backend.models import new_public_id
from backend.uow import unit_of_work
from residents.bulk import bulk_insert
from residents.crypto import KeyRing
from residents.households import clean_address, community_named
from residents.identity import (
    InvalidIdentifier,
    normalise_name,
    normalise_phone,
    parse_id_number,
)
from residents.models import (
    RELATION_LABELS,
    Household,
    ImportJob,
    JobStatus,
    Relation,
    Resident,
    ResidentVersion,
)
from residents.presenters import Clear, history_value, tag_string
from residents.registry import sealed
from residents.schemas import ImportError_, ImportOut
from residents.scope import worker_street
from residents.settings import key_ring, resident_settings
from residents.sheets import UnreadableFile, read_rows, write_xlsx
from residents.tags import resolve_tags, vocabulary

log = logging.getLogger("smartcircle.residents.imports")
BATCH = 1000
SHOWN_ERRORS = 100
STORED_ERRORS = 1000
# Column key, header label (the template's), accepted header aliases, required.
COLUMNS = (
    ("community", "社区", ("community",), True),
    ("address", "地址", ("address", "住址", "户地址"), False),
    ("relation", "与户主关系", ("relation", "关系"), False),
    ("name", "姓名", ("name",), True),
    ("id_number", "身份证号", ("id_number", "公民身份号码", "身份证号码"), True),
    ("phone", "电话", ("phone", "手机", "联系电话", "手机号"), False),
    ("tags", "标签", ("tags",), False),
    ("notes", "备注", ("notes",), False),
)
LABELS = {key: label for key, label, _aliases, _req in COLUMNS}
RELATIONS = {label: Relation(relation) for relation, label in RELATION_LABELS.items()} | {
    "本人": Relation.HEAD,
    "子": Relation.CHILD,
    "女": Relation.CHILD,
    "父亲": Relation.PARENT,
    "母亲": Relation.PARENT,
}
_TASKS: set[asyncio.Task[None]] = set()


@dataclass
class Parsed:
    """The file, validated: good rows ready to store, bad rows with their reasons."""

    header: list[str]
    good: list[dict[str, Any]] = field(default_factory=list)
    bad: list[tuple[int, list[str], list[tuple[str, str]]]] = field(default_factory=list)


def _columns(header: list[str]) -> dict[str, int]:
    found: dict[str, int] = {}
    for index, title in enumerate(header):
        text = title.strip().lower()
        for key, label, aliases, _req in COLUMNS:
            if key not in found and (text == label or text in aliases):
                found[key] = index
    missing = [label for key, label, _a, req in COLUMNS if req and key not in found]
    if missing:
        raise UnreadableFile("缺少列：" + "、".join(missing))
    return found


def parse_file(
    data: bytes, *, ring: KeyRing, vocab: dict[str, str], today: date, max_rows: int
) -> Parsed:
    """Validate and encrypt every row (runs in a worker thread: CPU only, no database)."""
    rows = read_rows(data)
    header = next(rows, None)
    if header is None:
        raise UnreadableFile("文件是空的")
    columns = _columns(header)
    parsed = Parsed(header=header)
    first_row: dict[str, int] = {}
    for number, cells in enumerate(rows, start=2):
        if not any(cells):
            continue
        if len(parsed.good) + len(parsed.bad) >= max_rows:
            raise UnreadableFile(f"一次最多导入 {max_rows} 行")

        def get(key: str, cells: list[str] = cells) -> str:
            index = columns.get(key)
            return cells[index].strip() if index is not None and index < len(cells) else ""

        errors: list[tuple[str, str]] = []
        values: dict[str, Any] = {}
        try:
            values["name"] = normalise_name(get("name"))
        except InvalidIdentifier as exc:
            errors.append((LABELS["name"], str(exc)))
        try:
            values["id_number"] = parse_id_number(get("id_number"), today=today)
        except InvalidIdentifier as exc:
            errors.append((LABELS["id_number"], str(exc)))
        try:
            values["phone"] = normalise_phone(get("phone")) if get("phone") else None
        except InvalidIdentifier as exc:
            errors.append((LABELS["phone"], str(exc)))
        community = get("community")
        if not community:
            errors.append((LABELS["community"], "必填"))
        relation_text = get("relation")
        relation = RELATIONS.get(relation_text) if relation_text else Relation.OTHER
        if relation is None and relation_text in {r.value for r in Relation}:
            relation = Relation(relation_text)
        if relation is None:
            errors.append((LABELS["relation"], "应为 户主/配偶/子女/父母/孙子女/兄弟姐妹/其他"))
        raw_tags = [t for t in _split_tags(get("tags")) if t]
        try:
            tags = resolve_tags(raw_tags, vocab)
        except ValidationFailed:
            errors.append((LABELS["tags"], "含未知标签"))
            tags = []
        if "id_number" in values:
            id_index = ring.index("id", values["id_number"].value)
            if id_index in first_row:
                errors.append((LABELS["id_number"], f"与第 {first_row[id_index]} 行重复"))
        if errors:
            parsed.bad.append((number, cells, errors))
            continue
        first_row[id_index] = number
        idn = values["id_number"]
        public_id = new_public_id()
        clear = Clear(
            name=values["name"],
            id_number=idn.value,
            phone=values["phone"],
            notes=get("notes") or None,
        )
        parsed.good.append(
            {
                "row": number,
                "cells": cells,
                "public_id": public_id,
                "community": community,
                "address": clean_address(get("address")) or None,
                "relation": relation,
                "gender": idn.gender,
                "birth_date": idn.birth_date,
                "tags": tags,
                "history": {
                    "id_number": history_value("id_number", idn.value),
                    "phone": history_value("phone", clear.phone),
                },
                **sealed(ring, public_id, clear),
            }
        )
    return parsed


def _split_tags(text: str) -> list[str]:
    for sep in "，、;；/ ":
        text = text.replace(sep, ",")
    return [t.strip() for t in text.split(",")]


async def start_import(
    *, ctx: AppContext, actor: Principal, data: bytes, filename: str
) -> ImportOut:
    street = worker_street(actor)
    if not data:
        raise ValidationFailed(fields={"file": "请上传 XLSX 或 CSV 文件"})
    job = await ImportJob.create(
        street_code=street, actor=actor.user_id, filename=filename[:200], created_at=ctx.clock.now()
    )
    task = asyncio.create_task(run_import(ctx, job.id, data, actor))
    _TASKS.add(task)
    task.add_done_callback(_TASKS.discard)
    return import_out(job)


async def run_import(ctx: AppContext, job_id: int, data: bytes, actor: Principal) -> None:
    job = await ImportJob.get(id=job_id)
    ring = key_ring(ctx)
    try:
        await ImportJob.filter(id=job_id).update(status=JobStatus.RUNNING)
        started = time.monotonic()
        parsed = await asyncio.to_thread(
            parse_file,
            data,
            ring=ring,
            vocab=await vocabulary(),
            today=ctx.clock.local_now().date(),
            max_rows=resident_settings(ctx).import_max_rows,
        )
        parsed_at = time.monotonic()
        await _store_errors(job, parsed, ring)
        await ImportJob.filter(id=job_id).update(
            total=len(parsed.good) + len(parsed.bad),
            processed=len(parsed.bad),
            failed=len(parsed.bad),
        )
        job = await ImportJob.get(id=job_id)
        communities: dict[str, int] = {}
        for start in range(0, len(parsed.good), BATCH):
            await _store_batch(
                ctx, job, parsed, parsed.good[start : start + BATCH], actor, communities
            )
            await ImportJob.filter(id=job_id).update(
                processed=job.processed, created=job.created, unchanged=job.unchanged,
                failed=job.failed, errors=job.errors[:STORED_ERRORS],
            )  # fmt: skip
        await _store_errors(job, parsed, ring)
        log.info(
            "import done",
            extra={
                "import": job.public_id,
                "rows": job.total,
                "rows_created": job.created,
                "rows_failed": job.failed,
                "parse_seconds": round(parsed_at - started, 2),
                "store_seconds": round(time.monotonic() - parsed_at, 2),
            },
        )
        await ImportJob.filter(id=job_id).update(
            status=JobStatus.DONE, finished_at=ctx.clock.now(), processed=job.total
        )
    except UnreadableFile as exc:
        await _fail(ctx, job_id, str(exc))
    except Exception:
        log.exception("import failed", extra={"import": job.public_id})
        await _fail(ctx, job_id, "导入出错，已保存的行不受影响；请重新上传（不会重复导入）")


async def _fail(ctx: AppContext, job_id: int, message: str) -> None:
    await ImportJob.filter(id=job_id).update(
        status=JobStatus.FAILED, message=message[:200], finished_at=ctx.clock.now()
    )


async def _store_errors(job: ImportJob, parsed: Parsed, ring: KeyRing) -> None:
    """Bad rows: (row, column, reason) in clear, the rows themselves encrypted."""
    parsed.bad.sort(key=lambda item: item[0])
    job.errors = [
        {"row": number, "column": column, "reason": reason}
        for number, _cells, errors in parsed.bad
        for column, reason in errors
    ]
    sheet = {"header": parsed.header, "rows": [[n, c, e] for n, c, e in parsed.bad]}
    job.key_id = ring.current
    job.errors_cipher = ring.encrypt(
        json.dumps(sheet, ensure_ascii=False), f"import:{job.public_id}"
    )
    await ImportJob.filter(id=job.id).update(
        errors=job.errors[:STORED_ERRORS], key_id=job.key_id, errors_cipher=job.errors_cipher
    )


async def _store_batch(
    ctx: AppContext,
    job: ImportJob,
    parsed: Parsed,
    batch: list[dict[str, Any]],
    actor: Principal,
    communities: dict[str, int],
) -> None:
    """One transaction: bulk look-up of the batch's ID numbers, bulk inserts of what is new."""
    for attempt in range(3):
        try:
            async with unit_of_work():
                created, unchanged, bad = await _insert_new(ctx, job, batch, actor, communities)
            break
        except IntegrityError:  # the same person entered concurrently: look again
            if attempt == 2:
                raise
    job.processed += len(batch)
    job.created += created
    job.unchanged += unchanged
    job.failed += len(bad)
    for row, reason in bad:
        job.errors.append({"row": row["row"], "column": LABELS["id_number"], "reason": reason})
        parsed.bad.append((row["row"], row["cells"], [(LABELS["id_number"], reason)]))


async def _insert_new(
    ctx: AppContext,
    job: ImportJob,
    batch: list[dict[str, Any]],
    actor: Principal,
    communities: dict[str, int],
) -> tuple[int, int, list[tuple[dict[str, Any], str]]]:
    street = job.street_code
    indexes = [row["id_index"] for row in batch]
    existing = dict(
        await Resident.filter(id_index__in=indexes).values_list("id_index", "street_code")
    )
    new_rows: list[dict[str, Any]] = []
    bad: list[tuple[dict[str, Any], str]] = []
    unchanged = 0
    for row in batch:
        where = existing.get(row["id_index"])
        if where is None:
            new_rows.append(row)
        elif where == street:
            unchanged += 1
        else:
            bad.append((row, "该身份证号已在其他街道登记"))
    if not new_rows:
        return 0, unchanged, bad
    for name in {row["community"] for row in new_rows} - set(communities):
        communities[name] = (await community_named(street, name)).id
    households = await _households(street, new_rows, communities)
    now = ctx.clock.now()
    await bulk_insert(
        Resident,
        [
            {
                "public_id": row["public_id"],
                "street_code": street,
                "community_id": communities[row["community"]],
                "household_id": households.get((communities[row["community"]], row["address"])),
                "relation": row["relation"],
                "gender": row["gender"],
                "birth_date": row["birth_date"],
                "tags": tag_string(row["tags"]),
                "created_at": now,
                "updated_at": now,
                **{k: row[k] for k in _SEALED},
            }
            for row in new_rows
        ],
    )
    ids = dict(
        await Resident.filter(public_id__in=[r["public_id"] for r in new_rows]).values_list(
            "public_id", "id"
        )
    )
    await bulk_insert(
        ResidentVersion,
        [
            {
                "resident_id": ids[row["public_id"]],
                "version": 1,
                "action": "import",
                "actor": actor.user_id,
                "actor_role": actor.role.value,
                "at": now,
                "changes": {
                    "import": job.public_id,
                    "row": row["row"],
                    "id_number": {"before": None, "after": row["history"]["id_number"]},
                    "phone": {"before": None, "after": row["history"]["phone"]},
                    "tags": {"before": None, "after": row["tags"]},
                },
            }
            for row in new_rows
        ],
    )
    return len(new_rows), unchanged, bad


_SEALED = (
    "key_id",
    "name_cipher",
    "name_index",
    "id_cipher",
    "id_index",
    "phone_cipher",
    "phone_index",
    "notes_cipher",
)


async def _households(
    street: str, rows: list[dict[str, Any]], communities: dict[str, int]
) -> dict[tuple[int, str], int]:
    """(community id, address) → household id for the rows' addresses, creating what is new."""
    wanted = {(communities[r["community"]], r["address"]) for r in rows if r["address"]}
    if not wanted:
        return {}

    async def lookup() -> dict[tuple[int, str], int]:
        found = await Household.filter(
            community_id__in={c for c, _ in wanted}, address__in={a for _, a in wanted}
        ).values_list("community_id", "address", "id")
        return {(int(c), str(a)): int(i) for c, a, i in found if (c, a) in wanted}

    known = await lookup()
    missing = wanted - set(known)
    if missing:
        await Household.bulk_create(
            [Household(street_code=street, community_id=c, address=a) for c, a in missing],
            batch_size=BATCH,
        )
        known = await lookup()
    return known


def import_out(job: ImportJob) -> ImportOut:
    total = job.total
    done = job.status == JobStatus.DONE
    percent = 100 if done else (job.processed * 100 // total if total else 0)
    return ImportOut(
        id=job.public_id,
        status=job.status,
        filename=job.filename,
        total=total,
        processed=job.processed,
        percent=min(percent, 100 if done else 99),
        created=job.created,
        unchanged=job.unchanged,
        failed=job.failed,
        errors=[ImportError_(**e) for e in job.errors[:SHOWN_ERRORS]],
        errors_sheet=(
            f"/api/v1/residents/imports/{job.public_id}/errors.xlsx"
            if job.failed and job.errors_cipher
            else None
        ),
        message=job.message,
    )


async def get_import(*, actor: Principal, public_id: str) -> ImportOut:
    job = await ImportJob.filter(public_id=public_id, street_code=worker_street(actor)).first()
    if job is None:
        raise NotFound("未找到该导入任务", code="import_not_found")
    return import_out(job)


async def error_sheet(*, ctx: AppContext, actor: Principal, public_id: str) -> bytes:
    """The bad rows as they were uploaded, with a column saying what to fix."""
    job = await ImportJob.filter(public_id=public_id, street_code=worker_street(actor)).first()
    if job is None or not job.errors_cipher:
        raise NotFound("未找到该导入任务的错误表", code="import_not_found")
    sheet = json.loads(key_ring(ctx).decrypt(job.errors_cipher, f"import:{job.public_id}"))
    rows: list[list[Any]] = []
    for number, cells, errors in sheet["rows"]:
        reason = "；".join(f"{column}：{text}" for column, text in errors)
        cells = list(cells) + [""] * (len(sheet["header"]) - len(cells))
        rows.append([*cells[: len(sheet["header"])], f"第 {number} 行 {reason}"])
    return await asyncio.to_thread(write_xlsx, "错误行", [*sheet["header"], "错误"], rows)


async def cancel_running_imports() -> None:
    """Stop this process's import tasks (shutdown, tests); their jobs stay resumable by upload."""
    tasks = list(_TASKS)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def fail_interrupted_imports(ctx: AppContext) -> None:
    """At start-up: jobs still running after half an hour were cut off by a stopped process
    (an import takes about a minute); uploading the file again is safe."""
    stale = ctx.clock.now() - timedelta(minutes=30)
    await ImportJob.filter(
        status__in=(JobStatus.QUEUED, JobStatus.RUNNING), created_at__lt=stale
    ).update(status=JobStatus.FAILED, message="导入被中断，请重新上传（已保存的行不会重复导入）")
