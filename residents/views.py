"""Resident base data routes: street workers (their own street), the bureau (aggregates), and
residents (their own record and its access log)."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import HTTPResponse, raw

from backend.access import Call, endpoint
from backend.errors import ValidationFailed
from backend.models import Role
from residents import (
    binding,
    forms,
    households,
    imports,
    lists,
    merging,
    registry,
    rotation,
    tags,
)
from residents.schemas import (
    BindIn,
    BindingIn,
    CommunityIn,
    CommunityList,
    CommunityOut,
    FormIn,
    FormOut,
    HistoryOut,
    HouseholdIn,
    HouseholdList,
    HouseholdOut,
    HouseholdPatch,
    HouseholdQuery,
    ImportOut,
    ListOut,
    ListQuery,
    MyDataOut,
    ResidentIn,
    ResidentList,
    ResidentMergeIn,
    ResidentOut,
    ResidentPatch,
    ResidentQuery,
    RevealIn,
    RevealOut,
    RotationOut,
    SearchIn,
    StatsOut,
    TagIn,
    TagList,
    TemplateList,
    TemplateOut,
)
from residents.sheets import XLSX_TYPE

bp = Blueprint("residents", url_prefix="/api/v1")
me_bp = Blueprint("residents_me", url_prefix="/api/v1")
TAG = "residents"
WORKERS = (Role.STREET_WORKER,)
SCOPE = "街道工作人员只能访问本街道的居民；其他街道的编号一律 404。身份证号与电话一律掩码。"


def _xlsx(body: bytes, name: str) -> HTTPResponse:
    return raw(
        body,
        content_type=XLSX_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# -- communities and households --------------------------------------------------------
@bp.get("/residents/communities")
@endpoint(summary="本街道的社区", tag=TAG, roles=WORKERS, response=CommunityList)
async def list_communities(request: Request, call: Call[None, None]) -> CommunityList:
    return CommunityList(items=await households.list_communities(call.user))


@bp.post("/residents/communities")
@endpoint(
    summary="新建社区（本街道）",
    tag=TAG,
    roles=WORKERS,
    body=CommunityIn,
    response=CommunityOut,
    status=201,
    errors=(409,),
)
async def create_community(request: Request, call: Call[None, CommunityIn]) -> CommunityOut:
    return await households.create_community(call.user, call.body.name)


@bp.post("/households")
@endpoint(
    summary="新建户",
    tag=TAG,
    roles=WORKERS,
    body=HouseholdIn,
    response=HouseholdOut,
    status=201,
    errors=(409,),
)
async def create_household(request: Request, call: Call[None, HouseholdIn]) -> HouseholdOut:
    return await households.create_household(actor=call.user, data=call.body)


@bp.get("/households")
@endpoint(
    summary="本街道的户（含成员姓名）",
    tag=TAG,
    roles=WORKERS,
    query=HouseholdQuery,
    response=HouseholdList,
    errors=(404,),
    description="列出的成员每人记一条访问记录。",
)
async def list_households(request: Request, call: Call[HouseholdQuery, None]) -> HouseholdList:
    return await households.list_households(ctx=call.ctx, actor=call.user, query=call.query)


@bp.get("/households/<household_id:str>")
@endpoint(
    summary="户详情（成员与关系）",
    tag=TAG,
    roles=WORKERS,
    response=HouseholdOut,
    errors=(404,),
    description=SCOPE,
)
async def get_household(
    request: Request, call: Call[None, None], household_id: str
) -> HouseholdOut:
    return await households.get_household(ctx=call.ctx, actor=call.user, public_id=household_id)


@bp.patch("/households/<household_id:str>")
@endpoint(
    summary="修改户地址",
    tag=TAG,
    roles=WORKERS,
    body=HouseholdPatch,
    response=HouseholdOut,
    errors=(404, 409),
)
async def update_household(
    request: Request, call: Call[None, HouseholdPatch], household_id: str
) -> HouseholdOut:
    return await households.update_household(
        ctx=call.ctx, actor=call.user, public_id=household_id, data=call.body
    )


# -- tags, statistics, key rotation ----------------------------------------------------
@bp.get("/residents/tags")
@endpoint(
    summary="标签词表",
    tag=TAG,
    roles=(Role.STREET_WORKER, Role.BUREAU_ADMIN),
    response=TagList,
)
async def list_tags(request: Request, call: Call[None, None]) -> TagList:
    return TagList(items=await tags.list_tags())


@bp.post("/residents/tags")
@endpoint(
    summary="扩充标签词表（数据资源局）",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN,),
    body=TagIn,
    response=TagList,
    status=201,
    errors=(409,),
)
async def add_tag(request: Request, call: Call[None, TagIn]) -> TagList:
    await tags.add_tag(ctx=call.ctx, actor=call.user, data=call.body)
    return TagList(items=await tags.list_tags())


@bp.get("/residents/statistics")
@endpoint(
    summary="汇总统计：各街道人数、户数、标签、年龄段、表单复用率",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN, Role.STREET_WORKER),
    response=StatsOut,
    description=(
        "只有汇总数，没有任何个人。数据资源局看到所有街道，街道工作人员只看到本街道。"
        "复用率 = 表单中由基础库预填的字段数 / (预填 + 手填)。"
    ),
)
async def statistics(request: Request, call: Call[None, None]) -> StatsOut:
    return await forms.statistics(ctx=call.ctx, actor=call.user)


@bp.post("/residents/key-rotations")
@endpoint(
    summary="开始密钥轮换（后台分批重新加密）",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN,),
    response=RotationOut,
    status=202,
    description=(
        "把所有仍由旧密钥加密的值用当前密钥重新加密；接口照常服务。"
        "也可用 python -m residents rotate-keys。"
    ),
)
async def start_rotation(request: Request, call: Call[None, None]) -> RotationOut:
    job = await rotation.start_rotation(call.ctx)
    rotation.start_in_background(call.ctx, job)
    return rotation.rotation_out(job)


@bp.get("/residents/key-rotations/<rotation_id:str>")
@endpoint(
    summary="密钥轮换进度（编号或 latest）",
    tag=TAG,
    roles=(Role.BUREAU_ADMIN,),
    response=RotationOut,
    errors=(404,),
)
async def get_rotation(request: Request, call: Call[None, None], rotation_id: str) -> RotationOut:
    return rotation.rotation_out(await rotation.get_rotation(rotation_id))


# -- lists, imports, forms -------------------------------------------------------------
@bp.get("/residents/lists")
@endpoint(
    summary="由基础库生成的名单（60 岁以上独居、学龄儿童、残疾人、任意标签×社区×年龄段）",
    tag=TAG,
    roles=WORKERS,
    query=ListQuery,
    response=ListOut,
    errors=(404,),
    description="本页列出的每个人记一条访问记录。" + SCOPE,
)
async def build_list(request: Request, call: Call[ListQuery, None]) -> ListOut:
    return await lists.build_list(ctx=call.ctx, actor=call.user, query=call.query)


@bp.get("/residents/lists/export.xlsx")
@endpoint(
    summary="导出名单（XLSX）",
    tag=TAG,
    roles=WORKERS,
    query=ListQuery,
    errors=(404,),
    produces=XLSX_TYPE,
    description="导出的每个人记一条“导出”访问记录。身份证号与电话掩码。",
)
async def export_list(request: Request, call: Call[ListQuery, None]) -> HTTPResponse:
    body, name = await lists.export_list(ctx=call.ctx, actor=call.user, query=call.query)
    return _xlsx(body, name)


@bp.post("/residents/imports")
@endpoint(
    summary="导入户与居民（XLSX 或 CSV，后台处理）",
    tag=TAG,
    roles=WORKERS,
    response=ImportOut,
    status=202,
    description=(
        "multipart/form-data 的 file 字段，或请求体直接为文件（Content-Type 为 XLSX 或 text/csv）。"
        "列：社区、地址、与户主关系、姓名、身份证号、电话、标签、备注（中英文列名均可）。"
        "返回导入任务，轮询 GET /residents/imports/{id}。同一文件导入两次不会有任何变化。"
    ),
)
async def start_import(request: Request, call: Call[None, None]) -> ImportOut:
    upload = request.files.get("file") if request.files else None
    if upload is not None:
        data, name = upload.body, upload.name or "upload"
    elif request.content_type and request.content_type.startswith("multipart/"):
        raise ValidationFailed(fields={"file": "请上传 XLSX 或 CSV 文件"})
    else:
        data, name = request.body, request.args.get("filename", "upload")
    return await imports.start_import(ctx=call.ctx, actor=call.user, data=data, filename=name)


@bp.get("/residents/imports/<import_id:str>")
@endpoint(
    summary="导入进度（百分比与计数）及错误行",
    tag=TAG,
    roles=WORKERS,
    response=ImportOut,
    errors=(404,),
)
async def get_import(request: Request, call: Call[None, None], import_id: str) -> ImportOut:
    return await imports.get_import(actor=call.user, public_id=import_id)


@bp.get("/residents/imports/<import_id:str>/errors.xlsx")
@endpoint(
    summary="错误行表（XLSX）：原样的错误行加一列错误原因，改正后可直接重新上传",
    tag=TAG,
    roles=WORKERS,
    errors=(404,),
    produces=XLSX_TYPE,
)
async def import_errors(request: Request, call: Call[None, None], import_id: str) -> HTTPResponse:
    body = await imports.error_sheet(ctx=call.ctx, actor=call.user, public_id=import_id)
    return _xlsx(body, f"import-{import_id}-errors.xlsx")


@bp.get("/residents/forms/templates")
@endpoint(summary="表单模板", tag=TAG, roles=WORKERS, response=TemplateList)
async def list_templates(request: Request, call: Call[None, None]) -> TemplateList:
    return forms.list_templates()


@bp.get("/residents/forms/<form_id:str>")
@endpoint(summary="已提交的表单", tag=TAG, roles=WORKERS, response=FormOut, errors=(404,))
async def get_form(request: Request, call: Call[None, None], form_id: str) -> FormOut:
    return await forms.get_form(ctx=call.ctx, actor=call.user, public_id=form_id)


# -- residents -------------------------------------------------------------------------
@bp.post("/residents")
@endpoint(
    summary="登记居民",
    tag=TAG,
    roles=WORKERS,
    body=ResidentIn,
    response=ResidentOut,
    status=201,
    errors=(404, 409, 422),
    description=(
        "身份证号按 GB 11643 校验，出生日期与性别由身份证号推出。身份证号已登记则 409："
        "已有记录在本街道时 fields.existing_id 指向它，否则只说明冲突。"
    ),
)
async def create_resident(request: Request, call: Call[None, ResidentIn]) -> ResidentOut:
    return await registry.create_resident(ctx=call.ctx, actor=call.user, data=call.body)


@bp.get("/residents")
@endpoint(
    summary="本街道的居民",
    tag=TAG,
    roles=WORKERS,
    query=ResidentQuery,
    response=ResidentList,
    errors=(404,),
    description="本页列出的每个人记一条访问记录。",
)
async def list_residents(request: Request, call: Call[ResidentQuery, None]) -> ResidentList:
    return await registry.list_residents(ctx=call.ctx, actor=call.user, query=call.query)


@bp.post("/residents/search")
@endpoint(
    summary="按身份证号、电话或姓名精确查找（本街道）",
    tag=TAG,
    roles=WORKERS,
    body=SearchIn,
    response=ResidentList,
    description="条件放在请求体里，身份证号和电话不会出现在任何网址或日志中。",
)
async def search_residents(request: Request, call: Call[None, SearchIn]) -> ResidentList:
    return await registry.search_residents(ctx=call.ctx, actor=call.user, data=call.body)


@bp.get("/residents/<resident_id:str>")
@endpoint(
    summary="居民详情（掩码）",
    tag=TAG,
    roles=WORKERS,
    response=ResidentOut,
    errors=(404,),
    description="记一条访问记录。" + SCOPE,
)
async def get_resident(request: Request, call: Call[None, None], resident_id: str) -> ResidentOut:
    return await registry.get_resident(ctx=call.ctx, actor=call.user, public_id=resident_id)


@bp.patch("/residents/<resident_id:str>")
@endpoint(
    summary="修改居民信息（留存版本）",
    tag=TAG,
    roles=WORKERS,
    body=ResidentPatch,
    response=ResidentOut,
    errors=(404, 409, 422),
)
async def update_resident(
    request: Request, call: Call[None, ResidentPatch], resident_id: str
) -> ResidentOut:
    return await registry.update_resident(
        ctx=call.ctx, actor=call.user, public_id=resident_id, data=call.body
    )


@bp.get("/residents/<resident_id:str>/history")
@endpoint(
    summary="修改历史（谁、何时、改了什么；标识只以掩码出现）",
    tag=TAG,
    roles=WORKERS,
    response=HistoryOut,
    errors=(404,),
)
async def history(request: Request, call: Call[None, None], resident_id: str) -> HistoryOut:
    return await registry.history(ctx=call.ctx, actor=call.user, public_id=resident_id)


@bp.post("/residents/<resident_id:str>/reveal")
@endpoint(
    summary="查看身份证号或电话明文（须说明理由，记入访问记录）",
    tag=TAG,
    roles=WORKERS,
    body=RevealIn,
    response=RevealOut,
    errors=(404,),
)
async def reveal(request: Request, call: Call[None, RevealIn], resident_id: str) -> RevealOut:
    return await registry.reveal(
        ctx=call.ctx, actor=call.user, public_id=resident_id, data=call.body
    )


@bp.post("/residents/<resident_id:str>/merge")
@endpoint(
    summary="把另一条记录合并进本记录（同一人，保留历史）",
    tag=TAG,
    roles=WORKERS,
    body=ResidentMergeIn,
    response=ResidentOut,
    errors=(404, 409, 422),
)
async def merge(
    request: Request, call: Call[None, ResidentMergeIn], resident_id: str
) -> ResidentOut:
    return await merging.merge(ctx=call.ctx, actor=call.user, target_id=resident_id, data=call.body)


@bp.post("/residents/<resident_id:str>/binding")
@endpoint(
    summary="为居民绑定小程序账号（街道工作人员确认）",
    tag=TAG,
    roles=WORKERS,
    body=BindingIn,
    response=ResidentOut,
    errors=(404, 409, 422),
)
async def bind(request: Request, call: Call[None, BindingIn], resident_id: str) -> ResidentOut:
    return await binding.bind_by_worker(
        ctx=call.ctx, actor=call.user, public_id=resident_id, data=call.body
    )


@bp.delete("/residents/<resident_id:str>/binding")
@endpoint(summary="解除账号绑定", tag=TAG, roles=WORKERS, status=204, errors=(404,))
async def unbind(request: Request, call: Call[None, None], resident_id: str) -> None:
    await binding.unbind_by_worker(ctx=call.ctx, actor=call.user, public_id=resident_id)


@bp.get("/residents/<resident_id:str>/forms/<template:str>")
@endpoint(
    summary="开始填表：返回由基础库预填的表单",
    tag=TAG,
    roles=WORKERS,
    response=TemplateOut,
    errors=(404,),
)
async def prefill(
    request: Request, call: Call[None, None], resident_id: str, template: str
) -> TemplateOut:
    return await forms.prefill(
        ctx=call.ctx, actor=call.user, public_id=resident_id, template_code=template
    )


@bp.post("/residents/<resident_id:str>/forms")
@endpoint(
    summary="提交表单（基础库字段自动填入，只需填写其余字段）",
    tag=TAG,
    roles=WORKERS,
    body=FormIn,
    response=FormOut,
    status=201,
    errors=(404,),
)
async def submit_form(request: Request, call: Call[None, FormIn], resident_id: str) -> FormOut:
    return await forms.submit(ctx=call.ctx, actor=call.user, public_id=resident_id, data=call.body)


# -- the resident's own view -----------------------------------------------------------
@me_bp.get("/me/data")
@endpoint(
    summary="我的居民信息（掩码）及其访问记录",
    tag=TAG,
    roles=(Role.RESIDENT,),
    response=MyDataOut,
    description="访问记录：每次查看、导出、查看明文，谁（角色与所在单位）、何时、为何。",
)
async def my_data(request: Request, call: Call[None, None]) -> MyDataOut:
    return await binding.my_data(ctx=call.ctx, actor=call.user)


@me_bp.post("/me/data/bind")
@endpoint(
    summary="用身份证号和电话绑定我的居民记录",
    tag=TAG,
    roles=(Role.RESIDENT,),
    body=BindIn,
    response=MyDataOut,
    errors=(409, 422, 429),
)
async def bind_self(request: Request, call: Call[None, BindIn]) -> MyDataOut:
    return await binding.bind_self(ctx=call.ctx, actor=call.user, data=call.body)
