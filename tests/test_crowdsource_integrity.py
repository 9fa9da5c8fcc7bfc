"""Voting integrity: salted hashes, each burst heuristic on deterministic data, review, refusals."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from backend.models import AuditEntry, Role, User
from crowdsource import integrity, votes
from crowdsource.integrity import WINDOW
from crowdsource.models import Campaign, PainPoint, Participant, RefusalTally, Vote, VoteFlag
from tests.crowdsource_helpers import create_campaign, many_users, submit, token_headers
from tests.factories import make_user


async def _setup(client, ctx, items=3, **fields):
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    campaign = await create_campaign(client, curator, ctx, submission_cap=50, **fields)
    author = token_headers(ctx, await make_user(Role.RESIDENT))
    created = [await submit(client, author, campaign["id"]) for _ in range(items)]
    row = await Campaign.get(public_id=campaign["id"])
    return curator, campaign, created, row


def _window(ctx):
    """The last complete detection window."""
    return integrity.window_start(ctx.clock.now()) - WINDOW


async def _votes(ctx, campaign, item, users, *, at, ip=None, device=None, spread=None):
    """Votes written straight into the database, inside one window (deterministic data)."""
    pp = await PainPoint.get(public_id=item["id"])
    secret = ctx.settings.origin_key
    rows = []
    for i, user in enumerate(users):
        address = spread(i) if spread else ip
        ip_h, net_h, dev_h = (
            integrity.origin_hashes(secret, address, device) if address else (None, None, None)
        )
        rows.append(
            Vote(
                pain_point_id=pp.id,
                campaign_id=campaign.id,
                user_id=user.id,
                audience="resident",
                created_at=at + timedelta(seconds=i % 500),
                ip_hash=ip_h,
                net_hash=net_h,
                device_hash=dev_h,
            )
        )
    await Vote.bulk_create(rows, batch_size=500)


async def _age(users, days=30):
    await User.filter(id__in=[u.id for u in users]).update(
        created_at=users[0].created_at - timedelta(days=days)
    )


async def _flags():
    return {(f.heuristic, f.subject): f for f in await VoteFlag.all()}


async def test_a_vote_keeps_only_salted_hashes_of_its_origin(client, ctx):
    _, _, (item, *_), _ = await _setup(client, ctx, items=1)
    voter = token_headers(ctx, await make_user(Role.RESIDENT))
    response = await client.post(
        f"/api/v1/pain-points/{item['id']}/vote",
        headers=voter | {"X-Device-Id": "wx-device-42"},
    )
    assert response.status_code == 201, response.text
    vote = await Vote.get(pain_point__public_id=item["id"])
    secret = ctx.settings.origin_key
    assert (vote.ip_hash, vote.net_hash, vote.device_hash) == integrity.origin_hashes(
        secret, "127.0.0.1", "wx-device-42"
    )
    assert len(vote.ip_hash or "") == 16
    # Not a plain hash anyone could recompute from a guessed address, and no clear value.
    assert vote.ip_hash not in hashlib.sha256(b"127.0.0.1").hexdigest()
    row = str(await Vote.filter(id=vote.id).values())
    assert "127.0.0" not in row and "wx-device-42" not in row
    # The /24 groups neighbours; a different network does not.
    same_net = integrity.origin_hashes(secret, "10.1.2.3", None)[1]
    assert same_net == integrity.origin_hashes(secret, "10.1.2.200", None)[1]
    assert same_net != integrity.origin_hashes(secret, "10.1.3.3", None)[1]


async def test_many_votes_from_one_address_are_flagged(client, ctx):
    _, _, (a, b, _), campaign = await _setup(client, ctx)
    start = _window(ctx)
    users = await many_users(ctx, integrity.IP_VOTES)
    await _age(users)
    await _votes(ctx, campaign, a, users, at=start, ip="203.0.113.7")
    await _votes(ctx, campaign, b, users[:-1], at=start, ip="198.51.100.9")  # one short
    assert await integrity.detect(ctx=ctx, campaign=campaign, start=start, end=start + WINDOW)
    flags = await _flags()
    subject = integrity.ip_hash(ctx.settings.origin_key, "203.0.113.7")
    assert list(flags) == [("ip_burst", subject)]
    flag = flags[("ip_burst", subject)]
    assert flag.votes == integrity.IP_VOTES == flag.accounts
    assert await Vote.filter(flag_id=flag.id).count() == integrity.IP_VOTES
    # Judging the same window again changes nothing.
    await integrity.detect(ctx=ctx, campaign=campaign, start=start, end=start + WINDOW)
    assert await VoteFlag.all().count() == 1


async def test_many_votes_from_one_network_are_flagged(client, ctx):
    _, _, items, campaign = await _setup(client, ctx, items=6)
    start = _window(ctx)
    per_item = integrity.NET_VOTES // 5  # 30 per item: below the spike threshold
    users = await many_users(ctx, per_item)
    await _age(users)
    for n, item in enumerate(items[:5]):
        # 15 addresses in 192.0.2.0/24, each below the per-address threshold.
        await _votes(
            ctx, campaign, item, users, at=start, spread=lambda i, n=n: f"192.0.2.{i % 15}"
        )
    # One vote short in another network.
    await _votes(
        ctx, campaign, items[5], users[:29], at=start, spread=lambda i: f"198.18.0.{i % 15}"
    )
    await integrity.detect(ctx=ctx, campaign=campaign, start=start, end=start + WINDOW)
    flags = await _flags()
    assert [h for h, _ in flags] == ["net_burst"]
    assert next(iter(flags.values())).votes == integrity.NET_VOTES


async def test_many_accounts_on_one_device_are_flagged(client, ctx):
    _, _, (a, b, _), campaign = await _setup(client, ctx)
    start = _window(ctx)
    users = await many_users(ctx, 5)
    await _age(users)
    await _votes(ctx, campaign, a, users[:3], at=start, ip="203.0.113.1", device="dev-A")
    await _votes(ctx, campaign, b, users[3:], at=start, ip="203.0.113.2", device="dev-B")
    await integrity.detect(ctx=ctx, campaign=campaign, start=start, end=start + WINDOW)
    flags = await _flags()
    assert [h for h, _ in flags] == ["device_accounts"]
    assert next(iter(flags.values())).accounts == integrity.DEVICE_ACCOUNTS


async def test_a_swarm_of_new_accounts_on_one_item_is_flagged(client, ctx):
    _, _, (a, b, _), campaign = await _setup(client, ctx)
    start = _window(ctx)
    fresh = await many_users(ctx, integrity.SWARM_VOTES)
    old = await many_users(ctx, integrity.SWARM_VOTES)
    await _age(old)
    await _votes(ctx, campaign, a, fresh, at=start)
    await _votes(ctx, campaign, b, old, at=start)
    await integrity.detect(ctx=ctx, campaign=campaign, start=start, end=start + WINDOW)
    flags = await _flags()
    assert list(flags) == [("new_account_swarm", a["id"])]
    assert flags[("new_account_swarm", a["id"])].pain_point_id is not None  # type: ignore[attr-defined]


async def test_an_item_far_above_its_baseline_is_flagged(client, ctx):
    _, _, (quiet, busy, _), campaign = await _setup(client, ctx)
    start = _window(ctx)
    users = await many_users(ctx, 800)
    await _age(users)
    burst = users[: integrity.SPIKE_MIN]
    # quiet: 100 votes over the previous day, then 50 in one window (> 10 x its baseline of 0.7).
    await _votes(ctx, campaign, quiet, users[100:200], at=start - timedelta(hours=12))
    await _votes(ctx, campaign, quiet, burst, at=start)
    # busy: 750 votes over the previous day (baseline 5.2 a window): 50 is no spike.
    await _votes(ctx, campaign, busy, users[50:800], at=start - timedelta(hours=6))
    await _votes(ctx, campaign, busy, burst, at=start)
    await integrity.detect(ctx=ctx, campaign=campaign, start=start, end=start + WINDOW)
    flags = await _flags()
    assert list(flags) == [("rate_spike", quiet["id"])]
    assert flags[("rate_spike", quiet["id"])].votes == integrity.SPIKE_MIN


async def test_discarding_a_flag_removes_its_votes_from_counts_and_ranking(client, ctx):
    curator, campaign_out, (a, b, _), campaign = await _setup(client, ctx)
    start = _window(ctx)
    bots = await many_users(ctx, integrity.IP_VOTES)
    await _age(bots)
    await _votes(ctx, campaign, a, bots, at=start, ip="203.0.113.66")
    await Participant.bulk_create(
        [Participant(campaign_id=campaign.id, user_id=u.id, votes=1) for u in bots]
    )
    honest = [token_headers(ctx, await make_user(Role.RESIDENT)) for _ in range(2)]
    for headers in honest:
        voted = await client.post(f"/api/v1/pain-points/{b['id']}/vote", headers=headers)
        assert voted.status_code == 201
    await integrity.detect(ctx=ctx, campaign=campaign, start=start, end=start + WINDOW)
    await votes.reconcile_counters(ctx=ctx)
    ranking = (await client.get(f"/api/v1/campaigns/{campaign_out['id']}/pain-points")).json()
    assert [(i["id"], i["votes"]) for i in ranking["items"][:2]] == [
        (a["id"], integrity.IP_VOTES),
        (b["id"], 2),
    ]
    path = f"/api/v1/campaigns/{campaign_out['id']}"
    report = (await client.get(f"{path}/integrity", headers=curator)).json()
    assert report["votes_accepted"] == integrity.IP_VOTES + 2
    assert report["votes_under_review"] == integrity.IP_VOTES
    (flag,) = report["flags"]
    assert flag["heuristic"] == "ip_burst" and flag["status"] == "open"
    assert flag["reason"] and flag["votes_held"] == integrity.IP_VOTES
    assert len(flag["account_ids"]) == integrity.IP_VOTES

    bad = await client.post(
        f"{path}/flags/{flag['id']}/resolve", headers=curator, json={"decision": "maybe"}
    )
    assert bad.status_code == 400 and "decision" in bad.json()["error"]["fields"]
    done = await client.post(
        f"{path}/flags/{flag['id']}/resolve",
        headers=curator,
        json={"decision": "discard", "note": "同一 IP 批量刷票"},
    )
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "discarded" and done.json()["votes_discarded"] == 30
    # Counts and ranking drop at once, and stay right after reconciliation.
    for _ in range(2):
        ranking = (await client.get(f"{path}/pain-points")).json()
        assert ranking["items"][0]["id"] == b["id"]
        assert {i["id"]: i["votes"] for i in ranking["items"]}[a["id"]] == 0
        await votes.reconcile_counters(ctx=ctx)
    assert await Vote.filter(pain_point__public_id=a["id"]).count() == 0
    assert await Participant.filter(user_id__in=[u.id for u in bots], votes__gt=0).count() == 0
    audit = await AuditEntry.get(action="vote_flag.resolve")
    assert audit.reason == "同一 IP 批量刷票" and audit.detail["removed"] == 30
    again = await client.post(
        f"{path}/flags/{flag['id']}/resolve", headers=curator, json={"decision": "accept"}
    )
    assert again.status_code == 409
    report = (await client.get(f"{path}/integrity", headers=curator)).json()
    assert report["votes_accepted"] == 2 and report["votes_discarded"] == 30
    assert report["votes_under_review"] == 0
    missing = await client.post(
        f"{path}/flags/nope/resolve", headers=curator, json={"decision": "accept"}
    )
    assert missing.status_code == 404


async def test_accepting_a_flag_keeps_its_votes(client, ctx):
    curator, campaign_out, (a, _, _), campaign = await _setup(client, ctx)
    start = _window(ctx)
    users = await many_users(ctx, integrity.DEVICE_ACCOUNTS)
    await _age(users)
    await _votes(ctx, campaign, a, users, at=start, ip="203.0.113.5", device="family-tablet")
    await integrity.detect(ctx=ctx, campaign=campaign, start=start, end=start + WINDOW)
    flag = await VoteFlag.get()
    response = await client.post(
        f"/api/v1/campaigns/{campaign_out['id']}/flags/{flag.public_id}/resolve",
        headers=curator,
        json={"decision": "accept", "note": "一家人共用平板"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "accepted" and response.json()["note"] == "一家人共用平板"
    assert await Vote.filter(pain_point__public_id=a["id"]).count() == 3
    # Judging the window again does not reopen it.
    await integrity.detect(ctx=ctx, campaign=campaign, start=start, end=start + WINDOW)
    assert (await VoteFlag.get()).status == "accepted"


async def test_refusals_are_counted_by_reason_and_survive_a_lost_store(client, ctx):
    curator, campaign_out, (a, b, c), _ = await _setup(client, ctx, votes_per_minute_person=3)
    voter = token_headers(ctx, await make_user(Role.RESIDENT))
    assert (
        await client.post(f"/api/v1/pain-points/{a['id']}/vote", headers=voter)
    ).status_code == 201
    assert (
        await client.post(f"/api/v1/pain-points/{a['id']}/vote", headers=voter)
    ).status_code == 409
    assert (
        await client.post(f"/api/v1/pain-points/{b['id']}/vote", headers=voter)
    ).status_code == 201
    limited = await client.post(f"/api/v1/pain-points/{c['id']}/vote", headers=voter)
    assert limited.status_code == 429
    path = f"/api/v1/campaigns/{campaign_out['id']}/integrity"
    expected = {"already_voted": 1, "vote_rate_limited": 1}
    report = (await client.get(path, headers=curator)).json()
    assert report["refused"] == expected and report["refused_total"] == 2
    assert report["votes_accepted"] == 2 and report["flags"] == []
    # The job folds the store's counters into the database ...
    await integrity.scan(ctx=ctx)
    assert {r.code: r.count for r in await RefusalTally.all()} == expected
    assert (await client.get(path, headers=curator)).json()["refused"] == expected
    # ... so losing the store (a restart of the embedded profile) loses nothing folded.
    await ctx.kv.clear_namespace()
    assert (await client.get(path, headers=curator)).json()["refused"] == expected
    resident = token_headers(ctx, await make_user(Role.RESIDENT))
    assert (await client.get(path, headers=resident)).status_code == 403
    assert (
        await client.get("/api/v1/campaigns/nope/integrity", headers=curator)
    ).status_code == 404
