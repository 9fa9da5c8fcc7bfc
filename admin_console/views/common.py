"""Helpers the console's pages share: choosing a campaign."""

from __future__ import annotations

from admin_console.pages import Page
from crowdsource import campaigns
from crowdsource.schemas import CampaignOut


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
