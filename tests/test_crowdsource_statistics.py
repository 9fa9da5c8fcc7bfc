"""Campaign statistics: per status, category, district and day, counted in the database."""

from __future__ import annotations

from datetime import UTC, datetime

from backend.models import Role
from crowdsource.models import PainPoint, Vote
from tests.crowdsource_helpers import create_campaign, submit, token_headers, vendor_member
from tests.factories import make_user


async def test_statistics_per_category_district_and_day(client, ctx):
    # 23:30 Beijing time on 1 July: an hour later is the next local day (but the same UTC day).
    ctx.clock.set(datetime(2026, 7, 1, 15, 30, tzinfo=UTC))
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    campaign = await create_campaign(client, curator, ctx, submission_cap=20)
    cid = campaign["id"]
    author = token_headers(ctx, await make_user(Role.RESIDENT))
    park1 = await submit(client, author, cid, category="parking", district="蜀山区")
    park2 = await submit(client, author, cid, category="parking", district="包河区")
    ctx.clock.advance(3600)
    toilet = await submit(client, author, cid, category="public_toilet", district="蜀山区")
    junk = await submit(client, author, cid, category="other")
    await client.post(
        f"/api/v1/pain-points/{junk['id']}/moderation",
        headers=curator,
        json={"decision": "invalid", "reason": "无关内容"},
    )
    voters = [token_headers(ctx, await make_user(Role.RESIDENT)) for _ in range(3)]
    vendor, _ = await vendor_member(ctx)
    for headers in voters:
        await client.post(f"/api/v1/pain-points/{park1['id']}/vote", headers=headers)
    await client.post(f"/api/v1/pain-points/{toilet['id']}/vote", headers=voters[0])
    await client.post(f"/api/v1/pain-points/{park2['id']}/vote", headers=vendor)

    response = await client.get(f"/api/v1/campaigns/{cid}/statistics")
    assert response.status_code == 200, response.text
    stats = response.json()
    assert stats["pain_points"] == {"submitted": 3, "valid": 0, "invalid": 1, "duplicate": 0}
    assert stats["votes"] == 5 and stats["voters"] == 4
    assert stats["votes_by_audience"] == {"resident": 4, "enterprise": 1, "department": 0}
    categories = {c["category"]: c for c in stats["by_category"]}
    assert categories["parking"] == {
        "category": "parking",
        "label": "停车",
        "pain_points": 2,
        "votes": 4,
    }
    assert categories["public_toilet"]["votes"] == 1
    assert categories["other"]["pain_points"] == 0  # the invalid item is not listed
    assert stats["by_category"][0]["category"] == "parking"
    districts = {d["district"]: (d["pain_points"], d["votes"]) for d in stats["by_district"]}
    assert districts == {"蜀山区": (2, 4), "包河区": (1, 1)}
    assert stats["by_day"] == [
        {"date": "2026-07-01", "pain_points": 2, "votes": 0},
        {"date": "2026-07-02", "pain_points": 2, "votes": 5},
    ]
    assert await Vote.all().count() == 5 and await PainPoint.all().count() == 4
    assert (await client.get("/api/v1/campaigns/nope/statistics")).status_code == 404
