"""Helpers the console's pages share: choosing a campaign, a spreadsheet download."""

from __future__ import annotations

from sanic.response import HTTPResponse, raw

from admin_console.pages import Page
from crowdsource import campaigns
from crowdsource.schemas import CampaignOut
from residents.sheets import XLSX_TYPE


async def campaign_choice(page: Page) -> tuple[list[CampaignOut], CampaignOut | None]:
    """Every campaign the user may manage, and the one asked for (?campaign=) or the newest."""
    listing = await campaigns.list_campaigns(
        ctx=page.ctx, principal=page.user, phase=None, limit=100, cursor=None
    )
    wanted = page.request.args.get("campaign") or ""
    chosen = next((c for c in listing.items if c.id == wanted), None)
    if chosen is None and listing.items:
        chosen = listing.items[0]
    return listing.items, chosen


def xlsx_attachment(body: bytes, name: str) -> HTTPResponse:
    """An XLSX file to download (never cached)."""
    return raw(
        body,
        content_type=XLSX_TYPE,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
