"""Resident imports for street workers: upload an XLSX or CSV sheet, watch the job's progress
(htmx polls it; the service runs it in the background), see the outcome and each bad row's
number, column and reason, and download the error sheet to fix and upload again.

The pages call ``residents.imports`` as the API does: the job belongs to the worker's street
(another street's job is "not found"), and the bad rows' values stay encrypted until the error
sheet is downloaded.
"""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from admin_console.pages import STREET, Page, page
from admin_console.views.common import xlsx_attachment
from backend.errors import ValidationFailed
from residents import imports
from residents.models import JobStatus
from residents.schemas import ImportOut

bp = Blueprint("console_resident_imports", url_prefix="/console/residents")

IMPORT_COLUMNS = ("社区", "地址", "与户主关系", "姓名", "身份证号", "电话", "标签", "备注")


def _sheet_url(job: ImportOut) -> str | None:
    return f"/console/residents/imports/{job.id}/errors.xlsx" if job.errors_sheet else None


def _job_shown(page: Page, job: ImportOut, *, status: int = 200) -> HTTPResponse:
    """The import's state: a fragment htmx polls while it runs, a whole page otherwise."""
    running = job.status in (JobStatus.QUEUED, JobStatus.RUNNING)
    template = "residents/_import.html" if page.htmx else "residents/import_job.html"
    return page.render(template, status=status, job=job, running=running, sheet_url=_sheet_url(job))


@bp.get("/import")
@page(read=STREET, write=STREET)
async def import_page(request: Request, page: Page) -> HTTPResponse:
    return page.render("residents/import.html", columns=IMPORT_COLUMNS, errors={})


@bp.post("/import")
@page(read=STREET, write=STREET)
async def start_import(request: Request, page: Page) -> HTTPResponse:
    """Store the upload as an import job (the service runs it in the background) and show it."""
    upload = request.files.get("file") if request.files else None
    data = upload.body if upload is not None else b""
    try:
        job = await imports.start_import(
            ctx=page.ctx, actor=page.user, data=data, filename=upload.name if upload else ""
        )
    except ValidationFailed as exc:
        if page.htmx:
            raise
        return page.render(
            "residents/import.html", status=400, columns=IMPORT_COLUMNS, errors=dict(exc.fields)
        )
    if not page.htmx:
        return await page.redirect(f"/console/residents/imports/{job.id}")
    return _job_shown(page, job)


@bp.get("/imports/<import_id:str>")
@page(read=STREET)
async def import_job(request: Request, page: Page, import_id: str) -> HTTPResponse:
    job = await imports.get_import(actor=page.user, public_id=import_id)
    return _job_shown(page, job)


@bp.get("/imports/<import_id:str>/errors.xlsx")
@page(read=STREET)
async def import_errors(request: Request, page: Page, import_id: str) -> HTTPResponse:
    """The bad rows as uploaded, with a column saying what to fix (decrypted by the service)."""
    body = await imports.error_sheet(ctx=page.ctx, actor=page.user, public_id=import_id)
    return xlsx_attachment(body, f"import-{import_id}-errors.xlsx")
