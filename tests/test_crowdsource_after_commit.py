"""Side effects of crowdsourcing use cases run after their transaction commits, never before."""

from __future__ import annotations

from backend.models import Role
from backend.uow import current_unit
from crowdsource import counters, merging
from crowdsource.models import Vote
from tests.crowdsource_helpers import create_campaign, submit, token_headers
from tests.factories import make_user


async def _setup(client, ctx, items=2, **fields):
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    campaign = await create_campaign(client, curator, ctx, **({"submission_cap": 20} | fields))
    author = token_headers(ctx, await make_user(Role.RESIDENT))
    created = [await submit(client, author, campaign["id"]) for _ in range(items)]
    return curator, campaign, created


def _vote_url(item):
    return f"/api/v1/pain-points/{item['id']}/vote"


def _spy(monkeypatch, module, name):
    """Wrap ``module.name`` to note, per call, whether it ran inside a unit of work."""
    calls: list[bool] = []
    real = getattr(module, name)

    async def spy(*args, **kwargs):
        calls.append(current_unit() is not None)
        return await real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


async def test_live_counters_move_after_the_vote_commits(client, ctx, monkeypatch):
    _, _, (item, _) = await _setup(client, ctx)
    bumps = _spy(monkeypatch, counters, "bump")
    voter = token_headers(ctx, await make_user(Role.RESIDENT))
    cast = await client.post(_vote_url(item), headers=voter)
    assert cast.status_code == 201 and cast.json()["votes"] == 1
    withdrawn = await client.delete(_vote_url(item), headers=voter)
    assert withdrawn.status_code == 200 and withdrawn.json()["votes"] == 0
    assert bumps == [False, False]  # both ran once the transaction was over


async def test_a_refused_vote_never_touches_the_live_counters(client, ctx, monkeypatch):
    _, _, (a, b) = await _setup(client, ctx, vote_budget=1)
    bumps = _spy(monkeypatch, counters, "bump")
    voter = token_headers(ctx, await make_user(Role.RESIDENT))
    assert (await client.post(_vote_url(a), headers=voter)).status_code == 201
    refused = await client.post(_vote_url(b), headers=voter)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "vote_budget_exhausted"
    assert bumps == [False]  # the refused vote rolled back: no counter moved for it
    assert await Vote.filter(pain_point__public_id=b["id"]).count() == 0
    page = (await client.get(f"/api/v1/pain-points/{b['id']}")).json()
    assert page["votes"] == 0


async def test_a_merge_moves_the_counters_after_it_commits(client, ctx, monkeypatch):
    curator, _, (a, b) = await _setup(client, ctx)
    voter = token_headers(ctx, await make_user(Role.RESIDENT))
    assert (await client.post(_vote_url(b), headers=voter)).status_code == 201
    moves = _spy(monkeypatch, merging, "_move_counters")
    merged = await client.post(
        f"/api/v1/pain-points/{a['id']}/merge", headers=curator, json={"source": b["id"]}
    )
    assert merged.status_code == 200, merged.text
    assert merged.json()["votes"] == 1
    assert moves == [False]
