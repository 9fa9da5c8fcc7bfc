"""Progress and download of long operations, and the ones the console starts (exports, PDF,
rebuilding the venue search index)."""

from __future__ import annotations

import asyncio
from urllib.parse import quote

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from admin_console import tasks
from admin_console.pages import ADMIN, CONSOLE_ROLES, CURATORS, Page, page
from backend.errors import Conflict, NotFound
from crowdsource import exports
from crowdsource.challenges import booklet, curation
from search import index

bp = Blueprint("console_tasks", url_prefix="/console")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _shown(page: Page, state: tasks.TaskState) -> HTTPResponse:
    """The progress as a fragment for htmx, as a whole page without JavaScript."""
    return page.render("_task.html" if page.htmx else "task_page.html", task=state)


@bp.get("/tasks/<task_id:str>")
@page(read=CONSOLE_ROLES)
async def status(request: Request, page: Page, task_id: str) -> HTTPResponse:
    """The task's progress (htmx polls this fragment until it is done)."""
    state = await tasks.get(page.ctx, task_id, page.user.user_id)
    if state is None:
        raise NotFound("任务不存在或已过期", code="task_not_found")
    return _shown(page, state)


@bp.get("/tasks/<task_id:str>/download")
@page(read=CONSOLE_ROLES)
async def download(request: Request, page: Page, task_id: str) -> HTTPResponse:
    state = await tasks.get(page.ctx, task_id, page.user.user_id)
    body = await tasks.result(page.ctx, task_id) if state and state.state == "done" else None
    if state is None or body is None:
        raise NotFound("文件不存在或已过期", code="task_not_found")
    return raw(
        body,
        content_type=state.content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(state.filename)}",
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )


@bp.get("/campaigns/<campaign_id:str>/exports")
@page(read=CURATORS, write=CURATORS)
async def exports_page(request: Request, page: Page, campaign_id: str) -> HTTPResponse:
    campaign = await curation.get_campaign(campaign_id)
    return page.render("exports.html", campaign=campaign)


@bp.post("/campaigns/<campaign_id:str>/exports")
@page(read=CURATORS, write=CURATORS)
async def start_export(request: Request, page: Page, campaign_id: str) -> HTTPResponse:
    """Start a CSV or XLSX export of the campaign's pain points (the API's exporter)."""
    fmt = "xlsx" if page.form.get("format") == "xlsx" else "csv"
    ctx, actor = page.ctx, page.user
    await curation.get_campaign(campaign_id)

    async def work(report: tasks.Report) -> tuple[bytes, str, str]:
        await report(10, "读取痛点与票数")
        export = await exports.export_rows(ctx=ctx, principal=actor, campaign_id=campaign_id)
        await report(60, f"生成 {fmt.upper()} 文件（{len(export.rows)} 行）")
        if fmt == "xlsx":
            return await exports.to_xlsx(export), exports.filename(export, "xlsx"), XLSX
        body = await exports.to_csv(export)
        return body, exports.filename(export, "csv"), "text/csv; charset=utf-8"

    state = await tasks.start(ctx, owner=actor.user_id, label=f"导出 {fmt.upper()}", work=work)
    return _shown(page, state)


@bp.post("/campaigns/<campaign_id:str>/booklet.pdf")
@page(read=CURATORS, write=CURATORS)
async def start_booklet(request: Request, page: Page, campaign_id: str) -> HTTPResponse:
    """Build the booklet PDF in the background."""
    ctx = page.ctx
    campaign = await curation.get_campaign(campaign_id)

    async def work(report: tasks.Report) -> tuple[bytes, str, str]:
        await report(10, "读取已发布的挑战")
        now = ctx.clock.now()
        published = await curation.published_for_booklet(campaign=campaign, now=now)
        data = booklet.build(campaign, published, booklet.local_stamp(now))
        await report(40, f"排版 PDF（{data.total} 项挑战）")
        pdf = await asyncio.to_thread(booklet.render_pdf, data)
        return pdf, f"booklet-{campaign_id}.pdf", "application/pdf"

    state = await tasks.start(ctx, owner=page.user.user_id, label="挑战手册 PDF", work=work)
    return _shown(page, state)


@bp.get("/campaigns/<campaign_id:str>/booklet")
@page(read=CURATORS)
async def booklet_preview(request: Request, page: Page, campaign_id: str) -> HTTPResponse:
    """The booklet as it will be published (HTML, no script; its own inline styles)."""
    campaign = await curation.get_campaign(campaign_id)
    now = page.ctx.clock.now()
    published = await curation.published_for_booklet(campaign=campaign, now=now)
    body = booklet.render_html(booklet.build(campaign, published, booklet.local_stamp(now)))
    return HTTPResponse(
        body,
        content_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@bp.get("/admin/search-index")
@page(read=ADMIN, write=ADMIN)
async def search_index_page(request: Request, page: Page) -> HTTPResponse:
    """The venue search index: rebuild it from the database (services profile only)."""
    return page.render(
        "admin/search_index.html",
        available=page.ctx.elastic is not None,
        alias=index.alias_name(page.ctx.settings),
    )


@bp.post("/admin/search-index/rebuild")
@page(read=ADMIN, write=ADMIN)
async def rebuild_search_index(request: Request, page: Page) -> HTTPResponse:
    """Rebuild the venue index in the background (``search.index.reindex``, as the CLI does)."""
    ctx = page.ctx
    if ctx.elastic is None:
        raise Conflict(
            "当前配置没有 Elasticsearch：场所搜索直接查询数据库，无需重建索引",
            code="search_index_unavailable",
        )

    async def work(report: tasks.Report) -> None:
        await report(2, "新建索引")

        async def progress(done: int, total: int) -> None:
            await report(2 + 95 * done // max(total, 1), f"已写入 {done} / {total} 个场所")

        name = await index.reindex(ctx, progress=progress)
        await report(100, f"已切换到新索引 {name}")

    state = await tasks.start(ctx, owner=page.user.user_id, label="重建场所搜索索引", work=work)
    return _shown(page, state)
