"""Jinja2 (autoescaped) for the console's pages, and the security headers every page carries."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from sanic.response import HTTPResponse, html

from backend.clock import to_local
from residents.models import GENDER_LABELS, RELATION_LABELS

TEMPLATES = Path(__file__).parent / "templates"

# default-src 'self' and no inline script or style: every script is a static file.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

ROLE_LABELS = {
    "bureau_admin": "数据资源局管理员",
    "curator": "征集策展人",
    "judge": "评委",
    "vendor": "企业",
    "venue_operator": "场馆运营方",
    "street_worker": "街道工作人员",
    "resident": "居民",
}
STATUS_LABELS = {
    "submitted": "待审核",
    "valid": "有效",
    "invalid": "无效",
    "duplicate": "重复",
    "draft": "草稿",
    "in_review": "审核中",
    "published": "已发布",
    "withdrawn": "已撤回",
    "shortlisted": "入围",
    "awarded": "优秀解决方案",
    "declined": "未通过",
    "pending": "待审核",
    "verified": "已认证",
    "suspended": "已暂停",
    "open": "开放",
    "temporarily_closed": "临时关闭",
    "removed": "已移除",
    "collecting": "征集中",
    "voting": "投票中",
    "curating": "遴选中",
    "closed": "已结束",
    "held": "保留中",
    "pending_approval": "待审批",
    "confirmed": "已确认",
    "checked_in": "已签到",
    "completed": "已完成",
    "cancelled": "已取消",
    "cancelled_by_venue": "场馆取消",
    "expired": "已过期",
    "no_show": "未到场",
    "resident": "居民",
    "enterprise": "企业",
    "department": "政府部门",
    "queued": "排队中",
    "running": "处理中",
    "done": "已完成",
    "failed": "失败",
    "active": "在册",
    "merged": "已合并",
}
KIND_LABELS = {
    "reading_space": "阅读空间",
    "sports_venue": "体育场馆",
    "public_toilet": "公共厕所",
    "parking_lot": "停车场",
    "activity_room": "社区活动室",
    "elderly_care": "养老服务站",
    "service_centre": "社区服务中心",
}


def local_time(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A moment in Beijing time for people."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return to_local(value).strftime(fmt)


def input_time(value: Any) -> str:
    """A moment for an ``<input type="datetime-local">`` (Beijing time)."""
    return local_time(value, "%Y-%m-%dT%H:%M")


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(("html",), default=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["local"] = local_time
    env.filters["input_time"] = input_time
    env.filters["status"] = lambda v: STATUS_LABELS.get(str(v), str(v))
    env.filters["role"] = lambda v: ROLE_LABELS.get(str(v), str(v))
    env.filters["kind"] = lambda v: KIND_LABELS.get(str(v), str(v))
    env.filters["relation"] = lambda v: RELATION_LABELS.get(str(v), str(v))
    env.filters["gender"] = lambda v: GENDER_LABELS.get(str(v), str(v))
    env.globals["KIND_LABELS"] = KIND_LABELS
    env.globals["RELATION_LABELS"] = RELATION_LABELS
    env.globals["ROLE_LABELS"] = ROLE_LABELS
    return env


def render(
    template: str, *, status: int = 200, headers: dict[str, str] | None = None, **values: Any
) -> HTTPResponse:
    body = environment().get_template(template).render(**values)
    return html(body, status=status, headers={**HEADERS, **(headers or {})})
