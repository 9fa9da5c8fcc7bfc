"""Merging duplicates: voters carry over and count once, no cycles, both pages show it."""

from __future__ import annotations

import asyncio

from backend.models import AuditEntry, Role, User
from crowdsource import counters, scheduled
from crowdsource.models import Campaign, Merge, PainPoint, Participant, Vote
from tests.crowdsource_helpers import create_campaign, submit, token_headers, vendor_member
from tests.factories import make_user


async def _setup(client, ctx, items=3):
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    campaign = await create_campaign(client, curator, ctx, submission_cap=20)
    author = token_headers(ctx, await make_user(Role.RESIDENT))
    created = [await submit(client, author, campaign["id"]) for _ in range(items)]
    return curator, campaign, created


async def _vote(client, headers, item, expect=201):
    response = await client.post(f"/api/v1/pain-points/{item['id']}/vote", headers=headers)
    assert response.status_code == expect, response.text
    return response.json()


async def _merge(client, curator, target, source, expect=200, **extra):
    response = await client.post(
        f"/api/v1/pain-points/{target['id']}/merge",
        headers=curator,
        json={"source": source["id"]} | extra,
    )
    assert response.status_code == expect, response.text
    return response.json()


async def _db_total(item):
    return await Vote.filter(pain_point__public_id=item["id"]).count()


async def test_merge_carries_voters_over_once(client, ctx):
    curator, campaign, (a, b, _) = await _setup(client, ctx)
    users = [await make_user(Role.RESIDENT) for _ in range(4)]
    u1, u2, u3, u4 = (token_headers(ctx, u) for u in users)
    vendor, _ = await vendor_member(ctx)
    for headers in (u1, u2):
        await _vote(client, headers, a)
    for headers in (u2, u3, u4, vendor):
        await _vote(client, headers, b)
    merged = await _merge(client, curator, a, b, reason="同一个问题")
    assert merged["merged"] == [b["id"]] and merged["merged_into"] is None
    # u1, u2, u3, u4 and the vendor: u2 voted for both and counts once.
    assert merged["votes"] == 5 == await _db_total(a)
    assert merged["votes_by_audience"] == {"resident": 4, "enterprise": 1, "department": 0}
    assert await _db_total(b) == 0
    source = (await client.get(f"/api/v1/pain-points/{b['id']}")).json()
    assert source["status"] == "duplicate" and source["merged_into"] == a["id"]
    assert source["duplicate_of"] == a["id"] and source["votes"] == 0
    record = await Merge.get(source__public_id=b["id"])
    assert (record.votes_moved, record.votes_deduplicated) == (3, 1)
    entry = await AuditEntry.get(action="pain_point.merge")
    assert entry.reason == "同一个问题" and entry.detail["source"] == b["id"]
    # u2 used two votes before, one now (budgets stay honest).
    assert (await Participant.get(user_id=users[1].id)).votes == 1
    # The merged item takes no more votes and points at the survivor.
    refused = await client.post(
        f"/api/v1/pain-points/{b['id']}/vote",
        headers=token_headers(ctx, await make_user(Role.RESIDENT)),
    )
    assert refused.status_code == 422
    assert refused.json()["error"]["fields"]["duplicate_of"] == a["id"]
    # Its voters can withdraw from the survivor.
    withdrawn = await client.delete(f"/api/v1/pain-points/{a['id']}/vote", headers=u3)
    assert withdrawn.status_code == 200 and withdrawn.json()["votes"] == 4
    # Live counters agree with the database; reconciliation has nothing to fix.
    stored = await Campaign.get(public_id=campaign["id"])
    assert await counters.rebuild(ctx=ctx, campaign=stored) == 0
    ranking = await client.get(f"/api/v1/campaigns/{campaign['id']}/pain-points")
    assert [i["id"] for i in ranking.json()["items"]][0] == a["id"]
    assert b["id"] not in [i["id"] for i in ranking.json()["items"]]


async def test_merge_rules_and_no_cycles(client, ctx):
    curator, campaign, (a, b, c) = await _setup(client, ctx)
    resident = token_headers(ctx, await make_user(Role.RESIDENT))
    forbidden = await client.post(
        f"/api/v1/pain-points/{a['id']}/merge", headers=resident, json={"source": b["id"]}
    )
    assert forbidden.status_code == 403
    assert (await _merge(client, curator, a, a, expect=422))["error"]["code"] == "merge_into_self"
    missing = await _merge(client, curator, a, {"id": "nope"}, expect=400)
    assert "source" in missing["error"]["fields"]
    await _merge(client, curator, a, b)
    again = await _merge(client, curator, a, b, expect=409)
    assert again["error"]["code"] == "already_merged"
    cycle = await _merge(client, curator, b, a, expect=422)
    assert cycle["error"]["code"] == "merge_target_not_listed"
    # A chain is fine: a into c. Every page shows its part of the history.
    await _vote(client, resident, c)
    chained = await _merge(client, curator, c, a)
    assert chained["merged"] == [a["id"]]
    a_page = (await client.get(f"/api/v1/pain-points/{a['id']}")).json()
    assert a_page["merged_into"] == c["id"] and a_page["merged"] == [b["id"]]
    cycle = await _merge(client, curator, a, c, expect=422)
    assert cycle["error"]["code"] == "merge_target_not_listed"
    # A duplicate of another item cannot be merged elsewhere, an invalid item not at all.
    d, e, f = [await submit(client, resident, campaign["id"]) for _ in range(3)]
    await client.post(
        f"/api/v1/pain-points/{d['id']}/moderation",
        headers=curator,
        json={"decision": "duplicate", "duplicate_of": e["id"]},
    )
    other = await _merge(client, curator, f, d, expect=422)
    assert other["error"]["code"] == "duplicate_of_other"
    assert (await _merge(client, curator, e, d))["merged"] == [d["id"]]
    await client.post(
        f"/api/v1/pain-points/{f['id']}/moderation",
        headers=curator,
        json={"decision": "invalid", "reason": "无关内容"},
    )
    invalid = await _merge(client, curator, e, f, expect=422)
    assert invalid["error"]["code"] == "merge_source_invalid"


async def test_opposite_merges_at_once_leave_no_cycle(client, ctx):
    curator, campaign, (a, b, _) = await _setup(client, ctx)
    voters = [token_headers(ctx, await make_user(Role.RESIDENT)) for _ in range(3)]
    for headers in voters:
        await _vote(client, headers, a)
        await _vote(client, headers, b)
    responses = await asyncio.gather(
        client.post(
            f"/api/v1/pain-points/{a['id']}/merge", headers=curator, json={"source": b["id"]}
        ),
        client.post(
            f"/api/v1/pain-points/{b['id']}/merge", headers=curator, json={"source": a["id"]}
        ),
    )
    codes = sorted(r.status_code for r in responses)
    assert codes[0] == 200 and codes[1] in (409, 422), [r.text for r in responses]
    assert await Merge.all().count() == 1
    assert await Vote.all().count() == 3


async def test_late_votes_on_a_merged_item_are_folded_by_reconciliation(client, ctx):
    curator, campaign, (a, b, _) = await _setup(client, ctx)
    early = token_headers(ctx, await make_user(Role.RESIDENT))
    await _vote(client, early, a)
    await _merge(client, curator, a, b)
    # A vote that passed its checks just before the merge committed lands on the merged item.
    late_user = await make_user(Role.RESIDENT)
    stored_b = await PainPoint.get(public_id=b["id"]).select_related("campaign")
    await Vote.create(
        pain_point=stored_b,
        campaign=stored_b.campaign,
        user=late_user,
        audience="resident",
        created_at=ctx.clock.now(),
    )
    # So does a double: someone who also voted for the survivor.
    early_user = await User.get(
        public_id=(await client.get("/api/v1/me", headers=early)).json()["id"]
    )
    await Vote.create(
        pain_point=stored_b,
        campaign=stored_b.campaign,
        user=early_user,
        audience="resident",
        created_at=ctx.clock.now(),
    )
    await scheduled.reconcile_counters(ctx)
    assert await _db_total(b) == 0
    assert await _db_total(a) == 2
    page = (await client.get(f"/api/v1/pain-points/{a['id']}")).json()
    assert page["votes"] == 2
