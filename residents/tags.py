"""The tag vocabulary: built-in tags in code, the bureau's additions in the database."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError

from backend.access import Principal
from backend.audit import record
from backend.context import AppContext
from backend.errors import Conflict, ValidationFailed
from residents.models import Tag
from residents.schemas import TagIn, TagOut

BUILTIN_TAGS: dict[str, str] = {
    "elderly_alone": "独居老人",
    "disabled": "残疾",
    "low_income": "低保",
    "school_age": "学龄儿童",
    "veteran": "退役军人",
}


async def vocabulary() -> dict[str, str]:
    """Every tag code with its label, built-in first."""
    tags = dict(BUILTIN_TAGS)
    for tag in await Tag.all().order_by("id"):
        tags.setdefault(tag.code, tag.label)
    return tags


def resolve_tags(raw: list[str], vocab: dict[str, str], path: str = "tags") -> list[str]:
    """Tag codes for codes or labels; an unknown one is a 400 naming its position."""
    by_label = {label: code for code, label in vocab.items()}
    codes: list[str] = []
    bad: dict[str, str] = {}
    for i, item in enumerate(raw):
        text = item.strip()
        code = text if text in vocab else by_label.get(text)
        if code is None:
            bad[f"{path}.{i}"] = "未知标签（可用的标签见 GET /api/v1/residents/tags）"
        elif code not in codes:
            codes.append(code)
    if bad:
        raise ValidationFailed(fields=bad)
    return codes


async def list_tags() -> list[TagOut]:
    vocab = await vocabulary()
    return [TagOut(code=c, label=lbl, builtin=c in BUILTIN_TAGS) for c, lbl in vocab.items()]


async def add_tag(*, ctx: AppContext, actor: Principal, data: TagIn) -> TagOut:
    vocab = await vocabulary()
    if data.code in vocab or data.label in vocab.values():
        raise Conflict("该标签已存在", code="tag_exists", fields={"code": "已存在"})
    try:
        await Tag.create(code=data.code, label=data.label)
    except IntegrityError:
        raise Conflict("该标签已存在", code="tag_exists", fields={"code": "已存在"}) from None
    await record(ctx=ctx, actor=actor, action="residents.tag_added", obj=("tag", data.code))
    return TagOut(code=data.code, label=data.label, builtin=False)
