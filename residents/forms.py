"""Forms pre-filled from the base data, and the reuse rate the bureau sees per street.

A template (defined here) lists its fields; a ``base`` field is filled from the resident's record,
a ``typed`` field is typed by the worker. Starting a form returns it pre-filled (identifiers
masked; starting is a ``form`` read in the resident's access log). Submitting stores every value
(encrypted as one document) and counts the fields that came from the base data and the typed
ones; a typed value for a base field overrides it and counts as typed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

from tortoise.functions import Count, Sum

from backend.access import Principal
from backend.context import AppContext
from backend.errors import NotFound, ValidationFailed
from backend.models import Role
from backend.uow import unit_of_work
from residents.access_log import record_access
from residents.identity import age_on, mask_id, mask_phone
from residents.lists import street_aggregates
from residents.models import (
    GENDER_LABELS,
    Community,
    FormSubmission,
    Household,
    Resident,
    ResidentStatus,
)
from residents.presenters import Clear, decrypt_resident, tag_list
from residents.schemas import (
    FormField,
    FormIn,
    FormOut,
    StatsOut,
    StreetStats,
    TemplateList,
    TemplateOut,
)
from residents.scope import resident_in_street, worker_street
from residents.settings import key_ring
from residents.tags import vocabulary


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    source: Literal["base", "typed"]
    required: bool = True


@dataclass(frozen=True)
class Template:
    code: str
    title: str
    fields: tuple[Field, ...]


def _base(name: str, label: str, required: bool = True) -> Field:
    return Field(name, label, "base", required)


def _typed(name: str, label: str, required: bool = True) -> Field:
    return Field(name, label, "typed", required)


TEMPLATES: dict[str, Template] = {
    t.code: t
    for t in (
        Template(
            "elderly_allowance",
            "高龄津贴申请",
            (
                _base("name", "姓名"),
                _base("id_number", "身份证号"),
                _base("gender", "性别"),
                _base("birth_date", "出生日期"),
                _base("age", "年龄"),
                _base("phone", "联系电话"),
                _base("community", "所在社区"),
                _base("address", "居住地址"),
                _typed("bank_name", "开户银行"),
                _typed("bank_account", "银行账号"),
                _typed("applicant", "申请人（本人或代办人）"),
            ),
        ),
        Template(
            "home_visit",
            "走访记录",
            (
                _base("name", "姓名"),
                _base("gender", "性别"),
                _base("age", "年龄"),
                _base("phone", "联系电话"),
                _base("community", "所在社区"),
                _base("address", "居住地址"),
                _base("household_size", "同住人数", required=False),
                _base("tags", "人员类别", required=False),
                _typed("visit_date", "走访日期"),
                _typed("situation", "走访情况"),
                _typed("needs", "需求与困难", required=False),
                _typed("follow_up", "后续跟进", required=False),
            ),
        ),
        Template(
            "disability_subsidy",
            "残疾人两项补贴申请",
            (
                _base("name", "姓名"),
                _base("id_number", "身份证号"),
                _base("gender", "性别"),
                _base("birth_date", "出生日期"),
                _base("phone", "联系电话"),
                _base("address", "居住地址"),
                _base("low_income", "是否低保"),
                _typed("disability_card", "残疾人证号"),
                _typed("disability_grade", "残疾等级"),
                _typed("bank_account", "银行账号"),
            ),
        ),
    )
}


def template_or_404(code: str) -> Template:
    template = TEMPLATES.get(code)
    if template is None:
        raise NotFound("未找到该表单模板", code="template_not_found")
    return template


async def _base_values(resident: Resident, clear: Clear, today: date) -> dict[str, str | None]:
    """Every value the base data knows, by field name (in clear: stored encrypted)."""
    community = await Community.get(id=resident.community_id)
    household = await Household.filter(id=resident.household_id or 0).first()
    size = (
        await Resident.filter(household_id=household.id, status=ResidentStatus.ACTIVE).count()
        if household
        else None
    )
    vocab = await vocabulary()
    tags = tag_list(resident.tags)
    return {
        "name": clear.name,
        "id_number": clear.id_number,
        "gender": GENDER_LABELS[resident.gender],
        "birth_date": resident.birth_date.isoformat(),
        "age": str(age_on(resident.birth_date, today)),
        "phone": clear.phone,
        "community": community.name,
        "address": household.address if household else None,
        "household_size": str(size) if size is not None else None,
        "tags": "、".join(vocab.get(t, t) for t in tags) or None,
        "low_income": "是" if "low_income" in tags else "否",
    }


_MASKS: dict[str, Callable[[str], str]] = {"id_number": mask_id, "phone": mask_phone}


def _shown(name: str, value: str | None) -> str | None:
    return _MASKS[name](value) if value and name in _MASKS else value


def list_templates() -> TemplateList:
    return TemplateList(
        items=[
            TemplateOut(
                code=t.code,
                title=t.title,
                fields=[
                    FormField(name=f.name, label=f.label, source=f.source, required=f.required)
                    for f in t.fields
                ],
            )
            for t in TEMPLATES.values()
        ]
    )


async def prefill(
    *, ctx: AppContext, actor: Principal, public_id: str, template_code: str
) -> TemplateOut:
    template = template_or_404(template_code)
    resident = await resident_in_street(public_id, worker_street(actor))
    clear = decrypt_resident(key_ring(ctx), resident)
    known = await _base_values(resident, clear, ctx.clock.local_now().date())
    await record_access(
        ctx=ctx, actor=actor, resident_ids=[resident.id], kind="form", reason=template.title
    )
    return TemplateOut(
        code=template.code,
        title=template.title,
        fields=[
            FormField(
                name=f.name,
                label=f.label,
                source=f.source,
                required=f.required,
                value=_shown(f.name, known.get(f.name)) if f.source == "base" else None,
            )
            for f in template.fields
        ],
    )


async def submit(*, ctx: AppContext, actor: Principal, public_id: str, data: FormIn) -> FormOut:
    template = TEMPLATES.get(data.template)
    if template is None:
        raise ValidationFailed(fields={"template": "未知的表单模板"})
    street = worker_street(actor)
    resident = await resident_in_street(public_id, street)
    ring = key_ring(ctx)
    known = await _base_values(
        resident, decrypt_resident(ring, resident), ctx.clock.local_now().date()
    )
    names = {f.name for f in template.fields}
    problems = {f"typed.{k}": "该表单没有此字段" for k in data.typed if k not in names}
    values: dict[str, str | None] = {}
    sources: dict[str, str] = {}
    for f in template.fields:
        typed = (data.typed.get(f.name) or "").strip()
        if typed:
            values[f.name], sources[f.name] = typed[:500], "typed"
        elif f.source == "base" and known.get(f.name):
            values[f.name], sources[f.name] = known[f.name], "base"
        elif f.required:
            problems[f"typed.{f.name}"] = "必填"
    if problems:
        raise ValidationFailed(fields=problems)
    prefilled = sum(1 for s in sources.values() if s == "base")
    typed_count = sum(1 for s in sources.values() if s == "typed")
    now = ctx.clock.now()
    async with unit_of_work():
        form = FormSubmission(
            template=template.code,
            resident_id=resident.id,
            street_code=street,
            key_id=ring.current,
            prefilled_count=prefilled,
            typed_count=typed_count,
            actor=actor.user_id,
            created_at=now,
            values_cipher="",
        )
        form.values_cipher = ring.encrypt(
            json.dumps({"values": values, "sources": sources}, ensure_ascii=False),
            f"form:{form.public_id}",
        )
        await form.save()
        await record_access(
            ctx=ctx, actor=actor, resident_ids=[resident.id], kind="form", reason=template.title
        )
    return _form_out(form, resident, template, values, sources)


def _form_out(
    form: FormSubmission,
    resident: Resident,
    template: Template,
    values: dict[str, Any],
    sources: dict[str, str],
) -> FormOut:
    return FormOut(
        id=form.public_id,
        template=template.code,
        resident_id=resident.public_id,
        fields=[
            FormField(
                name=f.name,
                label=f.label,
                source="base" if sources.get(f.name) == "base" else "typed",
                required=f.required,
                value=_shown(f.name, values.get(f.name)),
            )
            for f in template.fields
        ],
        prefilled_count=form.prefilled_count,
        typed_count=form.typed_count,
        created_at=form.created_at,
    )


async def get_form(*, ctx: AppContext, actor: Principal, public_id: str) -> FormOut:
    form = await FormSubmission.filter(
        public_id=public_id, street_code=worker_street(actor)
    ).first()
    if form is None:
        raise NotFound("未找到该表单", code="form_not_found")
    resident = await Resident.get(id=form.resident_id)
    doc = json.loads(key_ring(ctx).decrypt(form.values_cipher, f"form:{form.public_id}"))
    await record_access(
        ctx=ctx, actor=actor, resident_ids=[resident.id], kind="form", reason="查看已提交表单"
    )
    return _form_out(form, resident, template_or_404(form.template), doc["values"], doc["sources"])


async def statistics(*, ctx: AppContext, actor: Principal) -> StatsOut:
    """Aggregates only: per street, residents, households, tags, age bands, form reuse rate."""
    street = None if actor.role == Role.BUREAU_ADMIN else worker_street(actor)
    aggregates = await street_aggregates(street, ctx.clock.local_now().date())
    forms = FormSubmission.all() if street is None else FormSubmission.filter(street_code=street)
    reuse = {
        str(code): (int(n), int(p or 0), int(t or 0))
        for code, n, p, t in await forms.group_by("street_code")
        .annotate(n=Count("id"), p=Sum("prefilled_count"), t=Sum("typed_count"))
        .values_list("street_code", "n", "p", "t")
    }
    codes = sorted(set(aggregates) | set(reuse) | ({street} if street else set()))
    streets = []
    for code in codes:
        agg = aggregates.get(
            code, {"residents": 0, "households": 0, "by_tag": {}, "by_age_band": {}}
        )
        n, p, t = reuse.get(code, (0, 0, 0))
        streets.append(
            StreetStats(
                street_code=code,
                forms=n,
                prefilled_fields=p,
                typed_fields=t,
                reuse_rate=round(p / (p + t), 4) if p + t else None,
                **agg,
            )
        )
    p_all = sum(s.prefilled_fields for s in streets)
    t_all = sum(s.typed_fields for s in streets)
    return StatsOut(
        streets=streets,
        total_residents=sum(s.residents for s in streets),
        reuse_rate=round(p_all / (p_all + t_all), 4) if p_all + t_all else None,
    )
