"""The booklet: a campaign's published challenges, numbered, grouped by category, with an index.

One data model renders to HTML (Jinja2 template ``templates/booklet.html``) and to PDF (reportlab).
The PDF uses reportlab's built-in Adobe-GB1 CID font ``STSong-Light`` so that it needs no font
file: Chinese text is stored as text (searchable, copyable) and viewers render it with their Song
typeface. Set ``SMARTCIRCLE_PDF_FONT`` to a TrueType font file to embed that font instead.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from jinja2 import Environment, FileSystemLoader, select_autoescape
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.cidfonts import UnicodeCIDFont
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import PageBreak, Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

from backend.clock import to_local
from crowdsource.challenges.schemas import ChallengeOut
from crowdsource.models import Campaign

TEMPLATES = Path(__file__).parent / "templates"
TIERS = {"public": "公开", "on_application": "依申请开放"}


@dataclass
class Group:
    code: str
    label: str
    challenges: list[dict[str, Any]]


@dataclass
class Booklet:
    campaign: Campaign
    groups: list[Group]
    total: int
    generated_at: str


def build(campaign: Campaign, challenges: list[ChallengeOut], generated_at: str) -> Booklet:
    """Group published challenges by category (in the campaign's order), numbered."""
    labels = campaign.category_labels()
    order = list(labels)
    groups: dict[str, Group] = {}
    for challenge in sorted(challenges, key=lambda c: c.number or 0):
        group = groups.setdefault(
            challenge.category,
            Group(challenge.category, labels.get(challenge.category, challenge.category), []),
        )
        entry = challenge.model_dump(mode="json")
        entry["deadline"] = local_stamp(challenge.submission_deadline) + "（北京时间）"
        group.challenges.append(entry)
    ranked = sorted(
        groups.values(),
        key=lambda g: (order.index(g.code) if g.code in order else len(order), g.code),
    )
    return Booklet(
        campaign=campaign, groups=ranked, total=len(challenges), generated_at=generated_at
    )


@cache
def _environment() -> Environment:
    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        enable_async=False,
    )


def render_html(booklet: Booklet) -> str:
    return (
        _environment()
        .get_template("booklet.html")
        .render(
            campaign=booklet.campaign,
            groups=booklet.groups,
            total=booklet.total,
            generated_at=booklet.generated_at,
        )
    )


@cache
def _font() -> str:
    path = os.environ.get("SMARTCIRCLE_PDF_FONT")
    if path:
        pdfmetrics.registerFont(TTFont("BookletFont", path))
        return "BookletFont"
    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    return "STSong-Light"


def render_pdf(booklet: Booklet) -> bytes:
    """A printable A4 PDF: cover, index, one section per category."""
    font = _font()
    title = ParagraphStyle("title", fontName=font, fontSize=22, leading=30, alignment=1)
    h2 = ParagraphStyle("h2", fontName=font, fontSize=16, leading=22, spaceBefore=6, spaceAfter=6)
    h3 = ParagraphStyle("h3", fontName=font, fontSize=13, leading=18, spaceBefore=10)
    body = ParagraphStyle("body", fontName=font, fontSize=10.5, leading=16, wordWrap="CJK")
    small = ParagraphStyle("small", parent=body, fontSize=9, textColor="#555555")

    def p(text: object, style: ParagraphStyle = body) -> Paragraph:
        return Paragraph(escape(str(text)).replace("\n", "<br/>"), style)

    story: list[object] = [
        Spacer(1, 60 * mm),
        p(booklet.campaign.title, title),
        Spacer(1, 8 * mm),
        p(f"城市痛难点解决方案征集 · 挑战手册（共 {booklet.total} 项）", title),
        Spacer(1, 8 * mm),
        p(f"生成时间 {booklet.generated_at}", small),
        PageBreak(),
        p("目录", h2),
    ]
    if not booklet.total:
        story.append(p("本次活动尚无已发布的挑战。"))
    for group in booklet.groups:
        story.append(p(group.label, h3))
        for c in group.challenges:
            story.append(p(f"挑战 {c['number']}　{c['title']}"))
    for group in booklet.groups:
        story += [PageBreak(), p(group.label, h2)]
        for c in group.challenges:
            story.append(p(f"挑战 {c['number']}　{c['title']}", h3))
            rows = [
                ("责任部门", c["owning_department"]),
                ("问题描述", c["problem_statement"]),
                ("背景", c["background"]),
                ("预期成效", c["expected_outcome"]),
                (
                    "来源痛难点",
                    "\n".join(f"{s['title']}（{s['votes']} 票）" for s in c["pain_points"]),
                ),
                (
                    "开放数据",
                    "\n".join(
                        f"{d['dataset']}（{TIERS[d['access_tier']]}）" for d in c["open_data"]
                    ),
                ),
                (
                    "评审细则",
                    "\n".join(f"{r['criterion']} {r['weight']}%" for r in c["rubric"]),
                ),
                ("奖励与支持", c["prize"]),
                ("截止时间", c["deadline"]),
            ]
            table = Table(
                [[p(k, small), p(v)] for k, v in rows if v],
                colWidths=[28 * mm, 140 * mm],
            )
            table.setStyle(TableStyle([("VALIGN", (0, 0), (-1, -1), "TOP")]))
            story.append(table)
    buffer = io.BytesIO()
    doc = SimpleDocTemplate(
        buffer,
        pagesize=A4,
        title=f"{booklet.campaign.title} 挑战手册",
        author="合肥市数据资源局",
        leftMargin=18 * mm,
        rightMargin=18 * mm,
        topMargin=18 * mm,
        bottomMargin=18 * mm,
    )
    doc.build(story)  # type: ignore[arg-type]
    return buffer.getvalue()


def local_stamp(moment: object) -> str:
    return to_local(moment).strftime("%Y-%m-%d %H:%M")  # type: ignore[arg-type]
