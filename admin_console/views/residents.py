"""Resident base data for street workers: the list (filters, exact search, paging), lists and
their XLSX export, the entry form with an inline ID-number check, households, pre-filled forms,
change history and clear values for a stated reason (imports: ``resident_imports.py``).

Every page calls the same ``residents`` service functions as the API, so the street scoping (a
resident of another street is "not found"), the GB 11643 check, duplicates, the access log of
every person shown and the masks are the service's. Identifiers travel only in form bodies
(searches, the ID-number check), never in a URL, and no value reaches a log or a message.
"""

from __future__ import annotations

from typing import Any, TypeVar
from urllib.parse import urlencode

from pydantic import BaseModel
from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from admin_console.forms import attempt, build, number, without_none
from admin_console.pages import STREET, Page, page
from admin_console.views.common import xlsx_attachment
from backend.errors import ValidationFailed
from residents import forms, households, lists, registry, tags
from residents.identity import age_on
from residents.models import Relation
from residents.schemas import (
    FormIn,
    HouseholdPatch,
    ListQuery,
    ResidentIn,
    ResidentOut,
    ResidentPatch,
    ResidentQuery,
    RevealIn,
    SearchIn,
)

bp = Blueprint("console_residents", url_prefix="/console")
M = TypeVar("M", bound=BaseModel)

PAGE_SIZE = 20
PRESETS = (("", "不限"), ("elderly_alone", "60 岁以上独居"), ("school_age", "学龄儿童（6–14 岁）"),
           ("disabled", "残疾人"))  # fmt: skip
FIELD_LABELS = {
    "name": "姓名",
    "id_number": "身份证号",
    "phone": "电话",
    "notes": "备注",
    "tags": "标签",
    "relation": "与户主关系",
    "community": "社区",
    "household_id": "户",
    "import": "导入任务",
    "row": "表格行号",
    "merged_into": "并入",
}
ACTIONS = {
    "create": "登记",
    "import": "导入",
    "update": "修改",
    "merge": "合并另一条记录",
    "merged_into": "并入另一条记录",
}


def _query(model: type[M], data: dict[str, Any]) -> M:
    """A query model from the URL's arguments; a bad one is the API's 400."""
    body, errors = build(model, without_none(data))
    if body is None:
        raise ValidationFailed("筛选条件有误", fields=errors)
    return body


async def _tag_choices() -> dict[str, Any]:
    """The tag vocabulary for the filters and the form, and each code's label."""
    vocabulary = await tags.list_tags()
    return {"tags": vocabulary, "tag_labels": {t.code: t.label for t in vocabulary}}


# -- the list, exact search, lists and export ------------------------------------------
async def _index(
    page: Page,
    *,
    items: list[ResidentOut],
    filters: dict[str, str],
    next_cursor: str | None = None,
    searched: bool = False,
    search: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTTPResponse:
    export = {"community": filters["community"], "tag": filters["tag"]}
    return page.render(
        "residents/index.html",
        status=status,
        items=items,
        filters=filters,
        next_cursor=next_cursor,
        searched=searched,
        search=search or {},
        errors=errors or {},
        communities=await households.list_communities(page.user),
        **await _tag_choices(),
        export_query=urlencode({k: v for k, v in export.items() if v}),
    )


@bp.get("/residents")
@page(read=STREET, write=STREET)
async def index(request: Request, page: Page) -> HTTPResponse:
    """The street's residents (each one listed is logged by the service), masked."""
    args = request.args
    filters = {k: args.get(k, "") for k in ("community", "tag", "cursor")}
    query = _query(
        ResidentQuery,
        {
            "community_id": filters["community"] or None,
            "tag": filters["tag"] or None,
            "cursor": filters["cursor"] or None,
            "limit": PAGE_SIZE,
        },
    )
    listing = await registry.list_residents(ctx=page.ctx, actor=page.user, query=query)
    return await _index(page, items=listing.items, filters=filters, next_cursor=listing.next_cursor)


@bp.post("/residents/search")
@page(read=STREET, write=STREET)
async def search(request: Request, page: Page) -> HTTPResponse:
    """Exact search by ID number, phone or name: posted, so no identifier is in a URL."""
    form = page.form
    typed = {k: form.get(k, "") for k in ("id_number", "phone", "name")}
    filters = {"community": "", "tag": "", "cursor": ""}
    kept = {"name": typed["name"]}  # what was typed stays, except the identifiers themselves
    found, errors = await attempt(
        SearchIn,
        {k: v or None for k, v in typed.items()},
        lambda body: registry.search_residents(ctx=page.ctx, actor=page.user, data=body),
        refusals=ValidationFailed,
    )
    if found is not None and not errors:
        return await _index(page, items=found.items, filters=filters, searched=True, search=kept)
    return await _index(
        page, items=[], filters=filters, searched=True, search=kept, errors=errors, status=400
    )


def _list_query(request: Request) -> tuple[ListQuery, dict[str, str]]:
    args = request.args
    filters = {
        k: args.get(k, "") for k in ("preset", "tag", "community", "age_min", "age_max", "cursor")
    }
    query = _query(
        ListQuery,
        {
            "preset": filters["preset"] or None,
            "tag": [filters["tag"]] if filters["tag"] else None,
            "community_id": filters["community"] or None,
            "age_min": number(filters["age_min"]),
            "age_max": number(filters["age_max"]),
            "cursor": filters["cursor"] or None,
        },
    )
    return query, filters


@bp.get("/residents/lists")
@page(read=STREET)
async def list_page(request: Request, page: Page) -> HTTPResponse:
    """Lists from the base data (presets × tag × community × age) with their XLSX export."""
    query, filters = _list_query(request)
    result = await lists.build_list(ctx=page.ctx, actor=page.user, query=query)
    shown = {k: v for k, v in filters.items() if v and k != "cursor"}
    return page.render(
        "residents/lists.html",
        result=result,
        filters=filters,
        presets=PRESETS,
        communities=await households.list_communities(page.user),
        **await _tag_choices(),
        export_query=urlencode(shown),
        next_query=urlencode({**shown, "cursor": result.next_cursor or ""}),
    )


@bp.get("/residents/lists/export.xlsx")
@page(read=STREET)
async def export(request: Request, page: Page) -> HTTPResponse:
    """The whole list as XLSX, masked; every person in it logged as exported (the service)."""
    query, _filters = _list_query(request)
    body, name = await lists.export_list(ctx=page.ctx, actor=page.user, query=query)
    return xlsx_attachment(body, name)


# -- entry form ------------------------------------------------------------------------
@bp.post("/residents/id-check")
@page(read=STREET, write=STREET)
async def id_check(request: Request, page: Page) -> HTTPResponse:
    """As the number is typed: the registry's own check, and the birth date and gender it gives."""
    value = page.form.get("id_number", "")
    result: dict[str, Any] = {"empty": not value}
    if value:
        today = page.ctx.clock.local_now().date()
        try:
            idn = registry.checked_id(value, today)
        except ValidationFailed as exc:
            result["error"] = exc.fields.get("id_number", exc.message)
        else:
            result.update(
                birth_date=idn.birth_date, gender=idn.gender, age=age_on(idn.birth_date, today)
            )
    return page.render("residents/_id_check.html", check=result)


async def _entry_page(
    page: Page,
    *,
    values: dict[str, Any],
    errors: dict[str, str] | None = None,
    resident: ResidentOut | None = None,
    household_id: str = "",
    status: int = 200,
) -> HTTPResponse:
    household = (
        await households.get_household(ctx=page.ctx, actor=page.user, public_id=household_id)
        if household_id
        else None
    )
    return page.render(
        "residents/form.html",
        status=status,
        values=values,
        errors=errors or {},
        resident=resident,
        household=household,
        relations=list(Relation),
        communities=await households.list_communities(page.user),
        **await _tag_choices(),
        templates=forms.list_templates().items if resident else [],
        check={"empty": True},
    )


def _typed(page: Page) -> dict[str, Any]:
    form = page.form
    values: dict[str, Any] = {
        k: form.get(k, "")
        for k in ("community", "name", "id_number", "phone", "address", "relation", "notes")
    }
    values["tags"] = page.form_list("tags")
    return values


@bp.get("/residents/new")
@page(read=STREET, write=STREET)
async def new(request: Request, page: Page) -> HTTPResponse:
    """A new resident; ``?household=`` adds a member to that household."""
    household_id = request.args.get("household", "")
    values: dict[str, Any] = {"relation": Relation.OTHER.value, "tags": []}
    return await _entry_page(page, values=values, household_id=household_id)


@bp.post("/residents/new")
@page(read=STREET, write=STREET)
async def create(request: Request, page: Page) -> HTTPResponse:
    values = _typed(page)
    household_id = page.form.get("household_id", "")
    data = {
        "community": values["community"],
        "name": values["name"],
        "id_number": values["id_number"],
        "phone": values["phone"] or None,
        "household_id": household_id or None,
        "address": values["address"] or None,
        "relation": values["relation"] or Relation.OTHER.value,
        "tags": values["tags"],
        "notes": values["notes"] or None,
    }
    created, errors = await attempt(
        ResidentIn,
        data,
        lambda body: registry.create_resident(ctx=page.ctx, actor=page.user, data=body),
    )
    if created is not None and not errors:
        return await page.redirect(f"/console/residents/{created.id}", flash="已登记")
    return await _entry_page(
        page, values=values, errors=errors, household_id=household_id, status=400
    )


@bp.get("/residents/<resident_id:str>")
@page(read=STREET, write=STREET)
async def show(request: Request, page: Page, resident_id: str) -> HTTPResponse:
    """A resident, masked (the read is logged by the service), with the edit form."""
    resident = await registry.get_resident(ctx=page.ctx, actor=page.user, public_id=resident_id)
    return await _entry_page(page, values=_values_of(resident), resident=resident)


def _values_of(resident: ResidentOut) -> dict[str, Any]:
    return {
        "community": resident.community,
        "name": resident.name,
        "id_number": "",
        "phone": "",
        "address": resident.address or "",
        "relation": resident.relation.value,
        "notes": resident.notes or "",
        "tags": resident.tags,
        "version": resident.version,
    }


@bp.post("/residents/<resident_id:str>")
@page(read=STREET, write=STREET)
async def update(request: Request, page: Page, resident_id: str) -> HTTPResponse:
    """Save changes; an empty ID-number or phone field leaves the stored value as it is."""
    values = _typed(page)
    form = page.form
    data: dict[str, Any] = {
        "community": values["community"],
        "name": values["name"],
        "relation": values["relation"] or None,
        "tags": values["tags"],
        "notes": values["notes"],
        "address": values["address"] or None,
        "expected_version": number(form.get("version", "")),
    }
    if values["id_number"]:
        data["id_number"] = values["id_number"]
    if values["phone"] or form.get("clear_phone"):
        data["phone"] = values["phone"]
    _, errors = await attempt(
        ResidentPatch,
        data,
        lambda body: registry.update_resident(
            ctx=page.ctx, actor=page.user, public_id=resident_id, data=body
        ),
    )
    if not errors:
        return await page.redirect(f"/console/residents/{resident_id}", flash="已保存")
    resident = await registry.get_resident(ctx=page.ctx, actor=page.user, public_id=resident_id)
    return await _entry_page(
        page,
        values={**values, "version": form.get("version", "")},
        errors=errors,
        resident=resident,
        status=400,
    )


@bp.post("/residents/<resident_id:str>/reveal")
@page(read=STREET, write=STREET)
async def reveal(request: Request, page: Page, resident_id: str) -> HTTPResponse:
    """A clear value for a stated reason: the registry's reveal, with its access log and audit."""
    wanted = {"field": page.form.get("field", ""), "reason": page.form.get("reason", "")}
    body, errors = build(RevealIn, wanted)
    if body is None:
        raise ValidationFailed("请说明查看明文的理由（至少 4 个字）", fields=errors)
    shown = await registry.reveal(ctx=page.ctx, actor=page.user, public_id=resident_id, data=body)
    template = "residents/_revealed.html" if page.htmx else "residents/revealed.html"
    return page.render(template, shown=shown, resident_id=resident_id)


@bp.get("/residents/<resident_id:str>/history")
@page(read=STREET)
async def history(request: Request, page: Page, resident_id: str) -> HTTPResponse:
    """Who changed what and when (identifiers only masked; the read is logged)."""
    versions = await registry.history(ctx=page.ctx, actor=page.user, public_id=resident_id)
    return page.render(
        "residents/history.html",
        resident_id=resident_id,
        versions=versions.items,
        labels=FIELD_LABELS,
        actions=ACTIONS,
    )


# -- households ------------------------------------------------------------------------
@bp.get("/households/<household_id:str>")
@page(read=STREET, write=STREET)
async def household(request: Request, page: Page, household_id: str) -> HTTPResponse:
    """A household's members and their relation to the head (each member logged as listed)."""
    found = await households.get_household(ctx=page.ctx, actor=page.user, public_id=household_id)
    return page.render("residents/household.html", household=found, values={}, errors={})


@bp.post("/households/<household_id:str>")
@page(read=STREET, write=STREET)
async def move_household(request: Request, page: Page, household_id: str) -> HTTPResponse:
    """Correct the household's address (the service refuses one another household has)."""
    address = page.form.get("address", "")
    _, errors = await attempt(
        HouseholdPatch,
        {"address": address},
        lambda body: households.update_household(
            ctx=page.ctx, actor=page.user, public_id=household_id, data=body
        ),
    )
    if not errors:
        return await page.redirect(f"/console/households/{household_id}", flash="已修改地址")
    found = await households.get_household(ctx=page.ctx, actor=page.user, public_id=household_id)
    return page.render(
        "residents/household.html",
        status=400,
        household=found,
        values={"address": address},
        errors=errors,
    )


# -- pre-filled forms ------------------------------------------------------------------
async def _form_page(
    page: Page,
    resident_id: str,
    template: str,
    *,
    typed: dict[str, str] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
) -> HTTPResponse:
    filled = await forms.prefill(
        ctx=page.ctx, actor=page.user, public_id=resident_id, template_code=template
    )
    return page.render(
        "residents/prefill.html",
        status=status,
        resident_id=resident_id,
        form=filled,
        typed=typed or {},
        errors=errors or {},
    )


@bp.get("/residents/<resident_id:str>/forms/<template:str>")
@page(read=STREET, write=STREET)
async def prefill(request: Request, page: Page, resident_id: str, template: str) -> HTTPResponse:
    """A form template filled from the base data (identifiers masked; logged as a form read)."""
    return await _form_page(page, resident_id, template)


@bp.post("/residents/<resident_id:str>/forms/<template:str>")
@page(read=STREET, write=STREET)
async def submit_form(
    request: Request, page: Page, resident_id: str, template: str
) -> HTTPResponse:
    typed = {
        k.removeprefix("typed."): v for k, v in page.form.items() if k.startswith("typed.") and v
    }
    done, errors = await attempt(
        FormIn,
        {"template": template, "typed": typed},
        lambda body: forms.submit(ctx=page.ctx, actor=page.user, public_id=resident_id, data=body),
        refusals=ValidationFailed,
    )
    if done is not None and not errors:
        return await page.redirect(
            f"/console/residents/{resident_id}",
            flash=f"表单已提交：基础库预填 {done.prefilled_count} 项，手填 {done.typed_count} 项",
        )
    return await _form_page(page, resident_id, template, typed=typed, errors=errors, status=400)
