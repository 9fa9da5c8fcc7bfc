"""Group commit of votes (crowdsource/ballots.py): one rule for a batch, one transaction, answers
after COMMIT, and counts that stay exact — database, live counter and accepted answers."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime

import pytest
from asyncpg.exceptions import DeadlockDetectedError
from tortoise.exceptions import OperationalError

from backend.models import Role, User
from backend.uow import unit_of_work
from crowdsource import ballots, counters
from crowdsource.models import Audience, Campaign, PainPoint, Participant, Vote
from tests.crowdsource_helpers import create_campaign, many_users, submit, token_headers
from tests.factories import make_user

UNLIMITED = {"votes_per_minute_ip": 100_000, "votes_per_minute_person": 1000}


async def _setup(client, ctx, items=1, **fields):
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    campaign = await create_campaign(
        client, curator, ctx, **({"submission_cap": 20} | UNLIMITED | fields)
    )
    author = token_headers(ctx, await make_user(Role.RESIDENT))
    created = [await submit(client, author, campaign["id"]) for _ in range(items)]
    return campaign, created


def _url(item):
    return f"/api/v1/pain-points/{item['id']}/vote"


def _batch_sizes(monkeypatch) -> list[int]:
    """Record the size of every batch the flusher writes."""
    sizes: list[int] = []
    real = ballots.record_votes

    async def spy(batch):
        sizes.append(len(batch))
        return await real(batch)

    monkeypatch.setattr(ballots, "record_votes", spy)
    return sizes


async def _live_total(ctx, campaign_id: str) -> int:
    campaign = await Campaign.get(public_id=campaign_id)
    return sum(e["total"] for e in (await counters.read_all(ctx=ctx, campaign=campaign)).values())


async def test_a_burst_is_batched_and_counted_exactly(client, ctx, monkeypatch):
    campaign, items = await _setup(client, ctx, items=3, vote_budget=2)
    sizes = _batch_sizes(monkeypatch)
    people = await many_users(ctx, 120)
    twice = people[:20]  # each of these also votes again for the same item at the same moment
    greedy = people[20:40]  # each of these votes for all three items at once: one is refused
    calls = [(p, items[n % 3]) for n, p in enumerate(people)]
    calls += [(p, items[n % 3]) for n, p in enumerate(twice)]
    calls += [(p, items[(m + k) % 3]) for m, p in enumerate(people) if p in greedy for k in (1, 2)]
    responses = await asyncio.gather(
        *(client.post(_url(item), headers=token_headers(ctx, p)) for p, item in calls)
    )
    outcomes = Counter(
        r.json()["error"]["code"] if r.status_code >= 400 else r.status_code for r in responses
    )
    assert outcomes == {201: 120 - 20 + 20 + 20, "already_voted": 20, "vote_budget_exhausted": 20}
    accepted = outcomes[201]
    assert max(sizes) > 1, sizes  # votes really shared commits
    assert await Vote.filter(campaign__public_id=campaign["id"]).count() == accepted
    assert await _live_total(ctx, campaign["id"]) == accepted
    listed = await client.get(f"/api/v1/campaigns/{campaign['id']}/pain-points")
    assert sum(i["votes"] for i in listed.json()["items"]) == accepted
    for person in greedy:
        assert (await Participant.get(user_id=person.id)).votes == 2
        assert await Vote.filter(user_id=person.id).count() == 2
    for person in twice:
        assert (await Participant.get(user_id=person.id)).votes == 1
    # Every answer's own count was read after its batch committed: never above the final count.
    finals = {i["id"]: i["votes"] for i in listed.json()["items"]}
    for (_, item), response in zip(calls, responses, strict=True):
        if response.status_code == 201:
            assert 1 <= response.json()["votes"] <= finals[item["id"]]


async def test_one_batch_applies_every_rule_in_order(client, ctx):
    """The rule itself on one hand-made batch: a disabled account, an existing vote, budgets
    at their edge, no budget, and an unknown account — each with its own outcome."""
    campaign, (a, b) = await _setup(client, ctx, items=2, vote_budget=2)
    stored = await Campaign.get(public_id=campaign["id"])
    item_a = await PainPoint.get(public_id=a["id"])
    item_b = await PainPoint.get(public_id=b["id"])
    (fresh, at_edge, full, voted, disabled) = await many_users(ctx, 5)
    for person, n in ((at_edge, 1), (full, 2), (voted, 1)):
        await Participant.create(campaign_id=stored.id, user_id=person.id, votes=n)
    await Vote.create(
        pain_point=item_a,
        campaign=stored,
        user=voted,
        audience="resident",
        created_at=ctx.clock.now(),
    )
    for item in (item_a, item_b):
        await Vote.create(
            pain_point=item,
            campaign=stored,
            user=full,
            audience="resident",
            created_at=ctx.clock.now(),
        )
    await User.filter(id=disabled.id).update(is_active=False)

    def ballot(person: User | None, item: PainPoint) -> ballots.Ballot:
        return ballots.Ballot(
            campaign_id=stored.id,
            pain_point_id=item.id,
            user_public_id=person.public_id if person else "nobody-at-all",
            audience=Audience.RESIDENT,
            created_at=ctx.clock.now(),
            ip_hash="0" * 16,
            net_hash="1" * 16,
            device_hash=None,
        )

    batch = [
        ballot(fresh, item_b),
        ballot(at_edge, item_b),
        ballot(full, item_b),  # already voted for b: that comes before the budget
        ballot(voted, item_a),
        ballot(disabled, item_a),
        ballot(None, item_a),  # no such account
    ]
    async with unit_of_work():
        outcomes = await ballots.record_votes(batch)
    assert outcomes == [
        ballots.ACCEPTED,
        ballots.ACCEPTED,
        ballots.ALREADY_VOTED,
        ballots.ALREADY_VOTED,
        ballots.ACCOUNT_DISABLED,
        ballots.ACCOUNT_DISABLED,
    ]
    # Now the budget at its edge within one batch: at_edge has 2 of 2, fresh 1 of 2.
    batch = [ballot(at_edge, item_a), ballot(fresh, item_a)]
    async with unit_of_work():
        outcomes = await ballots.record_votes(batch)
    assert outcomes == [ballots.BUDGET_EXHAUSTED, ballots.ACCEPTED]
    assert await Vote.filter(user_id=at_edge.id).count() == 1  # the refused vote was removed
    assert (await Participant.get(user_id=at_edge.id)).votes == 2
    assert (await Participant.get(user_id=fresh.id)).votes == 2
    assert (await Participant.get(user_id=full.id)).votes == 2
    assert not await Participant.filter(user_id=disabled.id).exists()
    # No budget at all: everything fits.
    await Campaign.filter(id=stored.id).update(vote_budget=None)
    async with unit_of_work():
        assert await ballots.record_votes([ballot(at_edge, item_a)]) == [ballots.ACCEPTED]
    assert (await Participant.get(user_id=at_edge.id)).votes == 3
    # A budget of 0 (the API offers none, the rule holds for any row): a newcomer's tally is
    # created uncounted, the vote refused and removed; an existing tally is not counted either.
    await Campaign.filter(id=stored.id).update(vote_budget=0)
    (newcomer,) = await many_users(ctx, 1)
    async with unit_of_work():
        outcomes = await ballots.record_votes([ballot(newcomer, item_a), ballot(fresh, item_b)])
    assert outcomes == [ballots.BUDGET_EXHAUSTED, ballots.ALREADY_VOTED]
    async with unit_of_work():
        assert await ballots.record_votes([ballot(voted, item_b)]) == [ballots.BUDGET_EXHAUSTED]
    assert (await Participant.get(user_id=newcomer.id)).votes == 0
    assert (await Participant.get(user_id=voted.id)).votes == 1
    assert not await Vote.filter(user_id=newcomer.id).exists()
    assert await Vote.filter(user_id=voted.id).count() == 1
    with pytest.raises(ValueError, match="one vote per person"):
        await ballots.record_votes([ballot(fresh, item_a), ballot(fresh, item_b)])


async def test_a_disabled_account_is_refused_at_once(client, ctx):
    _, (a, b) = await _setup(client, ctx, items=2)
    person = await make_user(Role.RESIDENT)
    headers = token_headers(ctx, person)
    assert (await client.post(_url(a), headers=headers)).status_code == 201
    # Disabled in the database only: the token itself stays valid, the batch reads the account.
    await User.filter(id=person.id).update(is_active=False)
    refused = await client.post(_url(b), headers=headers)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "account_disabled"
    assert await Vote.filter(user_id=person.id).count() == 1


async def test_withdrawals_racing_votes_keep_tallies_and_counts_exact(client, ctx):
    campaign, (a, b) = await _setup(client, ctx, items=2, vote_budget=1)
    people = await many_users(ctx, 30)
    for person in people:
        assert (await client.post(_url(a), headers=token_headers(ctx, person))).status_code == 201
    # Each person withdraws from a while voting for b (budget 1) and voting a again.
    calls = []
    for person in people:
        headers = token_headers(ctx, person)
        calls += [
            client.delete(_url(a), headers=headers),
            client.post(_url(b), headers=headers),
            client.post(_url(a), headers=headers),
        ]
    responses = await asyncio.gather(*calls)
    assert {r.status_code for r in responses} <= {200, 201, 404, 409, 422}, [
        r.text for r in responses if r.status_code >= 500
    ]
    accepted = 30 + sum(1 for r in responses if r.status_code == 201)
    withdrawn = sum(1 for r in responses if r.status_code == 200)
    for person in people:
        held = await Vote.filter(user_id=person.id).count()
        assert held <= 1  # the budget held whatever the order
        assert (await Participant.get(user_id=person.id)).votes == held
    stored = await Vote.filter(campaign__public_id=campaign["id"]).count()
    assert stored == accepted - withdrawn
    assert await _live_total(ctx, campaign["id"]) == stored


async def test_a_failing_batch_fails_all_its_waiters_and_stores_nothing(client, ctx, monkeypatch):
    campaign, items = await _setup(client, ctx, items=2)
    sizes: list[int] = []
    real = ballots.record_votes

    async def written_then_lost(batch):
        sizes.append(len(batch))
        await real(batch)  # the rows are written in the transaction...
        raise ConnectionResetError("the database went away")  # ...which never commits

    monkeypatch.setattr(ballots, "record_votes", written_then_lost)
    people = await many_users(ctx, 40)
    responses = await asyncio.gather(
        *(
            client.post(_url(items[n % 2]), headers=token_headers(ctx, p))
            for n, p in enumerate(people)
        )
    )
    assert [r.status_code for r in responses] == [503] * 40
    assert {r.json()["error"]["code"] for r in responses} == {"database_unavailable"}
    assert max(sizes) > 1, sizes
    assert await Vote.all().count() == 0
    assert not await Participant.filter(votes__gt=0).exists()
    assert await _live_total(ctx, campaign["id"]) == 0
    monkeypatch.undo()
    # The batcher carries on with the next batch.
    again = await client.post(_url(items[0]), headers=token_headers(ctx, people[0]))
    assert again.status_code == 201 and again.json()["votes"] == 1


async def test_a_deadlock_victim_batch_is_written_again(client, ctx, monkeypatch):
    _, (item,) = await _setup(client, ctx)
    real = ballots.record_votes
    calls: list[int] = []

    async def first_one_deadlocks(batch):
        calls.append(len(batch))
        outcomes = await real(batch)  # written in the transaction...
        if len(calls) == 1:  # ...which PostgreSQL aborts the first time
            raise OperationalError(DeadlockDetectedError("deadlock detected"))
        return outcomes

    monkeypatch.setattr(ballots, "record_votes", first_one_deadlocks)
    person = await make_user(Role.RESIDENT)
    response = await client.post(_url(item), headers=token_headers(ctx, person))
    assert response.status_code == 201 and response.json()["votes"] == 1, response.text
    assert calls == [1, 1]
    assert await Vote.filter(user_id=person.id).count() == 1


def test_postgres_gets_one_statement_text_whatever_the_batch_size():
    """Each pooled connection prepares a statement once: a text per batch size would outgrow
    asyncpg's statement cache in a burst and prepare most statements again."""

    class Postgres:
        class capabilities:  # noqa: N801 - the attribute Tortoise's clients carry
            dialect = "postgres"

    sql = ballots._Sql(Postgres())  # type: ignore[arg-type]
    now = datetime.now(UTC)

    def statements(n: int) -> list[tuple[str, int]]:
        rows = [(i, 1, f"u{i}", "resident", now, "ip", "net", None) for i in range(n)]
        built = [
            sql.users_and_votes([f"u{i}" for i in range(n)], rows),
            sql.count_tallies([(1, i) for i in range(n)]),
            sql.delete_votes(list(range(n))),
        ]
        return [(text, len(params)) for text, params in built]

    assert statements(1) == statements(7) == statements(256)


def test_a_burst_reads_its_items_with_a_few_statement_texts():
    from crowdsource.votes import padded  # noqa: PLC0415

    lengths = set()
    for n in range(1, 257):
        ids = [f"p{i % 50}" for i in range(n)]
        out = padded(ids)
        assert set(out) == set(ids)
        lengths.add(len(out))
    assert lengths == {1, 2, 4, 8, 16, 32, 64}


async def test_a_changed_campaign_or_item_is_seen_by_the_next_vote(client, ctx):
    """The vote reads its item and campaign in one statement and keeps the campaign model while
    its row is unchanged: any change of the row — even one written without touching
    ``updated_at`` — is seen by the very next vote of the same worker."""
    campaign, items = await _setup(client, ctx, items=4)
    pk = (await Campaign.get(public_id=campaign["id"])).id
    first, second = await make_user(Role.RESIDENT), await make_user(Role.RESIDENT)
    answer = await client.post(_url(items[0]), headers=token_headers(ctx, first))
    assert answer.status_code == 201, answer.text
    # A budget set by a set-based write (no updated_at): the refusal names the new budget.
    await Campaign.filter(id=pk).update(vote_budget=1)
    refused = await client.post(_url(items[1]), headers=token_headers(ctx, first))
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "vote_budget_exhausted"
    assert "最多投 1 票" in refused.json()["error"]["message"]
    # The item hidden by reports, then the campaign switched to pre-moderation.
    await PainPoint.filter(public_id=items[2]["id"]).update(hidden=True)
    hidden = await client.post(_url(items[2]), headers=token_headers(ctx, second))
    assert hidden.json()["error"]["code"] == "pain_point_hidden", hidden.text
    await Campaign.filter(id=pk).update(moderation="pre")
    pending = await client.post(_url(items[3]), headers=token_headers(ctx, second))
    assert pending.json()["error"]["code"] == "pain_point_pending_review", pending.text
    # Voting closed by moving the schedule.
    await Campaign.filter(id=pk).update(moderation="post", voting_ends_at=ctx.clock.now())
    closed = await client.post(_url(items[3]), headers=token_headers(ctx, second))
    assert closed.json()["error"]["code"] == "phase_closed", closed.text
    assert await Vote.filter(campaign_id=pk).count() == 1


async def test_a_burst_shares_one_campaign_model_while_its_row_is_unchanged(client, ctx):
    from crowdsource.votes import _load_items  # noqa: PLC0415

    campaign, items = await _setup(client, ctx, items=3)
    ids = [item["id"] for item in items]
    once = await _load_items([*ids, "nope", ids[0]])
    assert once[3] is None
    assert [v.public_id for v in once if v] == [*ids, ids[0]]
    assert len({id(v.campaign) for v in once if v}) == 1
    again = await _load_items(ids)
    assert again[0] is not None and once[0] is not None
    assert again[0].campaign is once[0].campaign  # not rebuilt: the row is unchanged
    assert again[0].campaign.public_id == campaign["id"]
    await Campaign.filter(public_id=campaign["id"]).update(votes_per_minute_person=7)
    changed = await _load_items(ids)
    assert changed[0] is not None
    assert changed[0].campaign is not once[0].campaign
    assert changed[0].campaign.votes_per_minute_person == 7
    assert once[0].campaign.votes_per_minute_person == UNLIMITED["votes_per_minute_person"]
