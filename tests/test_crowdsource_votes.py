"""Voting: one vote per person, audiences, budgets, phases, ranking, reconciliation, concurrency."""

from __future__ import annotations

import asyncio
import time

from backend.models import Role
from crowdsource import counters, scheduled, votes
from crowdsource.models import Campaign, PainPoint, Participant, Vote
from tests.crowdsource_helpers import (
    create_campaign,
    many_headers,
    submit,
    token_headers,
    vendor_member,
)
from tests.factories import headers_for, make_user


async def _setup(client, ctx, items=1, **fields):
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    campaign = await create_campaign(client, curator, ctx, **({"submission_cap": 20} | fields))
    author = token_headers(ctx, await make_user(Role.RESIDENT))
    created = [await submit(client, author, campaign["id"]) for _ in range(items)]
    return curator, campaign, created


def _vote_url(item):
    return f"/api/v1/pain-points/{item['id']}/vote"


async def _db_counts(item_id):
    item = await PainPoint.get(public_id=item_id)
    return await counters.database_one(pain_point_pk=item.id)


async def test_vote_withdraw_and_per_audience_counts(client, ctx):
    _, campaign, (item,) = await _setup(client, ctx)
    resident = await headers_for(client, Role.RESIDENT)
    vendor, _ = await vendor_member(ctx)
    worker = await headers_for(client, Role.STREET_WORKER)
    first = await client.post(_vote_url(item), headers=resident)
    assert first.status_code == 201, first.text
    assert first.json()["votes"] == 1 and first.json()["audience"] == "resident"
    again = await client.post(_vote_url(item), headers=resident)
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_voted"
    assert (await client.post(_vote_url(item), headers=vendor)).json()["audience"] == "enterprise"
    last = await client.post(_vote_url(item), headers=worker)
    assert last.json()["votes"] == 3
    assert last.json()["votes_by_audience"] == {"resident": 1, "enterprise": 1, "department": 1}
    page = await client.get(f"/api/v1/pain-points/{item['id']}")
    assert page.json()["votes"] == 3 and page.json()["votes_by_audience"]["enterprise"] == 1

    withdrawn = await client.delete(_vote_url(item), headers=vendor)
    assert withdrawn.status_code == 200 and withdrawn.json()["votes"] == 2
    assert withdrawn.json()["votes_by_audience"]["enterprise"] == 0
    twice = await client.delete(_vote_url(item), headers=vendor)
    assert twice.status_code == 404 and twice.json()["error"]["code"] == "vote_not_found"
    revote = await client.post(_vote_url(item), headers=vendor)
    assert revote.status_code == 201 and revote.json()["votes"] == 3
    assert await Vote.all().count() == 3
    assert await _db_counts(item["id"]) == {
        "total": 3,
        "resident": 1,
        "enterprise": 1,
        "department": 1,
    }
    assert (await client.post(_vote_url(item))).status_code == 401
    missing = await client.post("/api/v1/pain-points/nope/vote", headers=resident)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "pain_point_not_found"


async def test_votes_only_while_voting_is_open(client, ctx):
    hours = {
        "collecting_starts_at": -1,
        "collecting_ends_at": 2,
        "voting_starts_at": 1,
        "voting_ends_at": 3,
        "closes_at": 4,
    }
    _, campaign, (item,) = await _setup(client, ctx, hours=hours)
    voter = token_headers(ctx, await make_user(Role.RESIDENT))
    early = await client.post(_vote_url(item), headers=voter)
    assert early.status_code == 409 and early.json()["error"]["code"] == "phase_closed"
    ctx.clock.advance(1.5 * 3600)
    assert (await client.post(_vote_url(item), headers=voter)).status_code == 201
    ctx.clock.advance(2 * 3600)  # curating
    late = await client.post(
        _vote_url(item), headers=token_headers(ctx, await make_user(Role.RESIDENT))
    )
    assert late.status_code == 409 and late.json()["error"]["code"] == "phase_closed"
    withdraw = await client.delete(_vote_url(item), headers=voter)
    assert withdraw.status_code == 409 and withdraw.json()["error"]["code"] == "phase_closed"
    assert await Vote.all().count() == 1


async def test_no_votes_on_invalid_or_duplicate_items(client, ctx):
    curator, campaign, (a, b, c) = await _setup(client, ctx, items=3)
    await client.post(
        f"/api/v1/pain-points/{a['id']}/moderation",
        headers=curator,
        json={"decision": "invalid", "reason": "不属于城市问题"},
    )
    await client.post(
        f"/api/v1/pain-points/{b['id']}/moderation",
        headers=curator,
        json={"decision": "duplicate", "duplicate_of": c["id"]},
    )
    voter = await headers_for(client, Role.RESIDENT)
    invalid = await client.post(_vote_url(a), headers=voter)
    assert invalid.status_code == 422 and invalid.json()["error"]["code"] == "pain_point_invalid"
    dup = await client.post(_vote_url(b), headers=voter)
    assert dup.status_code == 422 and dup.json()["error"]["code"] == "pain_point_duplicate"
    assert (await client.post(_vote_url(c), headers=voter)).status_code == 201


async def test_audiences_not_invited_cannot_vote(client, ctx):
    _, campaign, (item,) = await _setup(client, ctx, audiences=["resident"])
    vendor, _ = await vendor_member(ctx)
    refused = await client.post(_vote_url(item), headers=vendor)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "audience_not_invited"


async def test_vote_budget_holds_under_concurrency(client, ctx):
    _, campaign, items = await _setup(client, ctx, items=6, vote_budget=2)
    voter_user = await make_user(Role.RESIDENT)
    voter = token_headers(ctx, voter_user)
    responses = await asyncio.gather(*(client.post(_vote_url(i), headers=voter) for i in items))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201, 201, 422, 422, 422, 422], codes
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 422} == {
        "vote_budget_exhausted"
    }
    assert await Vote.filter(user_id=voter_user.id).count() == 2
    tally = await Participant.get(user_id=voter_user.id)
    assert tally.votes == 2
    # Withdrawing one gives the vote back.
    voted = [i for i, r in zip(items, responses, strict=True) if r.status_code == 201]
    assert (await client.delete(_vote_url(voted[0]), headers=voter)).status_code == 200
    unvoted = [i for i in items if i not in voted]
    assert (await client.post(_vote_url(unvoted[0]), headers=voter)).status_code == 201
    assert (await client.post(_vote_url(unvoted[1]), headers=voter)).status_code == 422


async def test_ranking_lists_with_cursor_paging(client, ctx):
    _, campaign, items = await _setup(client, ctx, items=7)
    voters = await many_headers(ctx, 6)
    # Item k gets k votes (item 0 none): a strict ranking 6, 5, ..., 0.
    await asyncio.gather(
        *(
            client.post(_vote_url(item), headers=voters[v])
            for k, item in enumerate(items)
            for v in range(k)
        )
    )
    url = f"/api/v1/campaigns/{campaign['id']}/pain-points"
    seen: list[dict] = []
    cursor = None
    while True:
        params = {"sort": "votes", "limit": 3} | ({"cursor": cursor} if cursor else {})
        response = await client.get(url, params=params)
        assert response.status_code == 200, response.text
        seen += response.json()["items"]
        cursor = response.json()["next_cursor"]
        if not cursor:
            break
    assert [i["votes"] for i in seen] == [6, 5, 4, 3, 2, 1, 0]
    assert [i["id"] for i in seen] == [i["id"] for i in reversed(items)]
    assert seen[0]["votes_by_audience"] == {"resident": 6, "enterprise": 0, "department": 0}

    newest = await client.get(url, params={"sort": "new", "limit": 4})
    body = newest.json()
    assert [i["id"] for i in body["items"]] == [i["id"] for i in reversed(items)][:4]
    rest = await client.get(url, params={"sort": "new", "limit": 4, "cursor": body["next_cursor"]})
    assert [i["id"] for i in rest.json()["items"]] == [i["id"] for i in reversed(items)][4:]
    assert rest.json()["next_cursor"] is None

    # Tampered, foreign and malformed cursors are a 400 naming the cursor.
    token = body["next_cursor"]
    tampered = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for bad, params in (
        (tampered, {"sort": "new"}),
        ("garbage", {"sort": "new"}),
        (token, {"sort": "votes"}),
        (token, {"sort": "new", "category": "medical"}),
    ):
        response = await client.get(url, params=params | {"cursor": bad})
        assert response.status_code == 400, (bad, params)
        assert "cursor" in response.json()["error"]["fields"]
    for params, field in (
        ({"limit": 101}, "limit"),
        ({"limit": 0}, "limit"),
        ({"sort": "x"}, "sort"),
    ):
        response = await client.get(url, params=params)
        assert response.status_code == 400 and field in response.json()["error"]["fields"]
    only = await client.get(url, params={"category": "medical"})
    assert only.json()["items"] == []


async def test_reconciliation_restores_database_counts(client, ctx):
    _, campaign, (a, b) = await _setup(client, ctx, items=2)
    voters = await many_headers(ctx, 5)
    for headers in voters:
        assert (await client.post(_vote_url(a), headers=headers)).status_code == 201
    assert (await client.post(_vote_url(b), headers=voters[0])).status_code == 201
    stored = await Campaign.get(public_id=campaign["id"])
    # Corrupt the live counters: wrong scores, a phantom member, a lost member.
    await ctx.kv.zadd(counters.total_key(stored), {a["id"]: 42, "phantom": 7})
    await ctx.kv.zrem(counters.total_key(stored), b["id"])
    await ctx.kv.zadd(counters.audience_key(stored, "resident"), {a["id"]: 1})
    await ctx.kv.zadd(counters.audience_key(stored, "department"), {a["id"]: 3})
    wrong = await client.get(f"/api/v1/pain-points/{a['id']}")
    assert wrong.json()["votes"] == 42
    await scheduled.reconcile_counters(ctx)
    for item, total in ((a, 5), (b, 1)):
        page = (await client.get(f"/api/v1/pain-points/{item['id']}")).json()
        assert page["votes"] == total == (await _db_counts(item["id"]))["total"]
        assert page["votes_by_audience"] == {"resident": total, "enterprise": 0, "department": 0}
    assert await ctx.kv.zscore(counters.total_key(stored), "phantom") is None
    # A second run finds nothing to correct.
    assert await counters.rebuild(ctx=ctx, campaign=stored) == 0
    # An emptied store (Redis restarted) is rebuilt on first use.
    await ctx.kv.clear_namespace()
    listed = await client.get(f"/api/v1/campaigns/{campaign['id']}/pain-points")
    assert [(i["id"], i["votes"]) for i in listed.json()["items"]] == [(a["id"], 5), (b["id"], 1)]
    # Votes after a rebuild keep counting from the right base.
    await ctx.kv.clear_namespace()
    late = await client.post(_vote_url(b), headers=voters[1])
    assert late.status_code == 201 and late.json()["votes"] == 2


async def test_rate_limits_per_person_and_per_ip(client, ctx):
    _, campaign, items = await _setup(
        client, ctx, items=4, votes_per_minute_person=2, votes_per_minute_ip=5
    )
    voter = token_headers(ctx, await make_user(Role.RESIDENT))
    assert (await client.post(_vote_url(items[0]), headers=voter)).status_code == 201
    assert (await client.post(_vote_url(items[1]), headers=voter)).status_code == 201
    limited = await client.post(_vote_url(items[2]), headers=voter)
    assert limited.status_code == 429 and limited.json()["error"]["code"] == "vote_rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    # The same address, other people: the per-IP limit (5 a minute, 2 used) refuses the 6th.
    others = await many_headers(ctx, 4)
    codes = [(await client.post(_vote_url(items[3]), headers=h)).status_code for h in others]
    assert codes == [201, 201, 201, 429]
    assert await Vote.all().count() == 5


async def test_a_thousand_people_vote_at_once(client, ctx):
    _, campaign, (item,) = await _setup(
        client, ctx, votes_per_minute_ip=100_000, votes_per_minute_person=100
    )
    voters = await many_headers(ctx, 1000)
    started = time.perf_counter()
    responses = await asyncio.gather(*(client.post(_vote_url(item), headers=h) for h in voters))
    elapsed = time.perf_counter() - started
    codes = [r.status_code for r in responses]
    assert codes.count(201) == 1000, {c: codes.count(c) for c in set(codes)}
    assert await Vote.filter(pain_point__public_id=item["id"]).count() == 1000
    page = (await client.get(f"/api/v1/pain-points/{item['id']}")).json()
    assert page["votes"] == 1000 and page["votes_by_audience"]["resident"] == 1000
    await scheduled.reconcile_counters(ctx)
    listed = await client.get(f"/api/v1/campaigns/{campaign['id']}/pain-points")
    assert listed.json()["items"][0]["votes"] == 1000
    assert elapsed < 40, elapsed


async def test_one_person_fifty_times_at_once_counts_once(client, ctx):
    _, campaign, (item,) = await _setup(client, ctx, votes_per_minute_person=100)
    voter_user = await make_user(Role.RESIDENT)
    voter = token_headers(ctx, voter_user)
    responses = await asyncio.gather(
        *(client.post(_vote_url(item), headers=voter) for _ in range(50))
    )
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] + [409] * 49, {c: codes.count(c) for c in set(codes)}
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 409} == {
        "already_voted"
    }
    assert await Vote.all().count() == 1
    assert (await Participant.get(user_id=voter_user.id)).votes == 1
    page = (await client.get(f"/api/v1/pain-points/{item['id']}")).json()
    assert page["votes"] == 1


async def test_end_to_end_campaign_flow(client, ctx):
    """Create, collect, suggest, moderate, vote, rank, move on to curating."""
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    hours = {
        "collecting_starts_at": -1,
        "collecting_ends_at": 2,
        "voting_starts_at": 1,
        "voting_ends_at": 3,
        "closes_at": 4,
    }
    campaign = await create_campaign(client, curator, ctx, hours=hours)
    cid = campaign["id"]
    assert campaign["phases_open"] == ["collecting"]
    residents = [token_headers(ctx, await make_user(Role.RESIDENT)) for _ in range(4)]
    toilet = await submit(
        client,
        residents[0],
        cid,
        title="公共厕所难找",
        description="逛街时找不到公共厕所，地图上也没有标注",
        category="public_toilet",
    )
    similar = await client.get(
        f"/api/v1/campaigns/{cid}/pain-points/similar", params={"text": "找不到公共厕所"}
    )
    assert similar.json()["items"][0]["id"] == toilet["id"]
    logistics, _ = await vendor_member(ctx, name="合肥某物流公司")
    parking = await submit(
        client,
        logistics,
        cid,
        title="医院停车难",
        description="医院附近停车位太少，排队进停车场要一个小时",
    )
    assert parking["audience"] == "enterprise" and parking["company_name"] == "合肥某物流公司"
    dup = await submit(
        client,
        residents[2],
        cid,
        title="厕所太难找了",
        description="公共厕所太少也难找，急死人",
        category="public_toilet",
    )
    for item, decision in ((toilet, {"decision": "valid"}), (parking, {"decision": "valid"})):
        r = await client.post(
            f"/api/v1/pain-points/{item['id']}/moderation", headers=curator, json=decision
        )
        assert r.status_code == 200
    r = await client.post(
        f"/api/v1/pain-points/{dup['id']}/moderation",
        headers=curator,
        json={"decision": "duplicate", "duplicate_of": toilet["id"], "reason": "同一问题"},
    )
    assert r.status_code == 200
    ctx.clock.advance(1.5 * 3600)
    await scheduled.advance_phases(ctx)
    assert (await Campaign.get(public_id=cid)).phase_state == "collecting+voting"
    for headers in residents:
        assert (await client.post(_vote_url(toilet), headers=headers)).status_code == 201
    assert (await client.post(_vote_url(parking), headers=residents[3])).status_code == 201
    ranking = await client.get(f"/api/v1/campaigns/{cid}/pain-points", params={"sort": "votes"})
    assert [(i["id"], i["votes"]) for i in ranking.json()["items"]] == [
        (toilet["id"], 4),
        (parking["id"], 1),
    ]
    ctx.clock.advance(2 * 3600)
    await scheduled.advance_phases(ctx)
    assert (await Campaign.get(public_id=cid)).phase == "curating"
    refused = await client.post(
        _vote_url(parking), headers=token_headers(ctx, await make_user(Role.RESIDENT))
    )
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "phase_closed"


async def test_recount_participants_after_a_bulk_import(client, ctx):
    _, campaign, (a, b) = await _setup(client, ctx, items=2, vote_budget=2)
    stored = await Campaign.get(public_id=campaign["id"])
    importer_user = await make_user(Role.RESIDENT)
    # Rows written straight to the database (as demo data or an import would) skip the tallies.
    for item in (a, b):
        await Vote.create(
            pain_point=await PainPoint.get(public_id=item["id"]),
            campaign=stored,
            user=importer_user,
            audience="resident",
            created_at=ctx.clock.now(),
        )
    assert await votes.recount_participants(campaign=stored) == 2  # the author and the voter
    assert (await Participant.get(user_id=importer_user.id)).votes == 2
    author = await Participant.get(campaign=stored, submissions__gt=0)
    assert author.submissions == 2
    third = await submit(client, token_headers(ctx, await make_user(Role.RESIDENT)), campaign["id"])
    refused = await client.post(_vote_url(third), headers=token_headers(ctx, importer_user))
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "vote_budget_exhausted"
