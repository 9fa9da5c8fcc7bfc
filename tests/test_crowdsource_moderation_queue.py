"""The moderation queue: submitted and hidden items, oldest first, cursor-paged, for curators."""

from __future__ import annotations

from backend.models import Role
from tests.crowdsource_helpers import create_campaign, submit, token_headers
from tests.factories import make_user


async def _queue(client, headers, campaign_id, expect=200, **params):
    response = await client.get(
        f"/api/v1/campaigns/{campaign_id}/moderation", headers=headers, params=params
    )
    assert response.status_code == expect, response.text
    return response.json()


async def test_queue_lists_items_awaiting_review_oldest_first(client, ctx):
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    campaign = await create_campaign(client, curator, ctx, submission_cap=20, report_threshold=1)
    author = token_headers(ctx, await make_user(Role.RESIDENT))
    items = []
    for _ in range(6):
        items.append(await submit(client, author, campaign["id"]))
        ctx.clock.advance(60)
    first, second, third, fourth, fifth, sixth = items

    async def moderate(item, decision, **extra):
        response = await client.post(
            f"/api/v1/pain-points/{item['id']}/moderation",
            headers=curator,
            json={"decision": decision} | extra,
        )
        assert response.status_code == 200, response.text

    await moderate(second, "valid")
    await moderate(third, "invalid", reason="广告")
    await moderate(fifth, "valid")
    reporter = token_headers(ctx, await make_user(Role.RESIDENT))
    for item in (fourth, fifth):  # one report hides an item in this campaign
        reported = await client.post(
            f"/api/v1/pain-points/{item['id']}/report", headers=reporter, json={"reason": "不实"}
        )
        assert reported.status_code == 201 and reported.json()["hidden"] is True

    both = await _queue(client, curator, campaign["id"])
    assert [i["id"] for i in both["items"]] == [first["id"], fourth["id"], fifth["id"], sixth["id"]]
    assert both["next_cursor"] is None
    hidden = await _queue(client, curator, campaign["id"], status="hidden")
    assert [(i["id"], i["hidden"]) for i in hidden["items"]] == [
        (fourth["id"], True),
        (fifth["id"], True),
    ]
    submitted = await _queue(client, curator, campaign["id"], status="submitted")
    assert [i["id"] for i in submitted["items"]] == [first["id"], sixth["id"]]

    # Paging: two at a time, in order, nothing lost or repeated.
    seen, cursor = [], None
    while True:
        page = await _queue(
            client, curator, campaign["id"], limit=2, **({"cursor": cursor} if cursor else {})
        )
        seen += [i["id"] for i in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert seen == [i["id"] for i in both["items"]]
    page = await _queue(client, curator, campaign["id"], limit=2)
    wrong = await _queue(
        client, curator, campaign["id"], expect=400, status="hidden", cursor=page["next_cursor"]
    )
    assert "cursor" in wrong["error"]["fields"]
    bad = await _queue(client, curator, campaign["id"], expect=400, status="valid")
    assert "status" in bad["error"]["fields"]
    resident = token_headers(ctx, await make_user(Role.RESIDENT))
    await _queue(client, resident, campaign["id"], expect=403)
    await _queue(client, curator, "nope", expect=404)
