"""One moderation policy per campaign, and every surface follows it.

Pre-moderation (the default): a submission is public only once a curator marks it valid.
Post-moderation: public at once, withdrawn when judged invalid. The surfaces: the submit reply
(API and Open311), the public list and ranking, the detail (authors and curators still see their
own), /me/pain-points, similar-item suggestions, voting, statistics, Open311 lists and
``{id}.json``, reports, follows and the curators' exports.
"""

from __future__ import annotations

import csv
import io

import pytest

from backend.models import Role
from crowdsource import similar_index
from crowdsource.visibility import NOTICES
from tests.conftest import PROFILE
from tests.crowdsource_helpers import create_campaign, schedule, submit, token_headers
from tests.factories import make_user

FORM = "application/x-www-form-urlencoded"
TOILET = {
    "title": "公园公厕夜间不开放",
    "description": "晚上在公园散步时公共厕所全部锁门，找不到地方上厕所",
    "category": "public_toilet",
    "location": {"lat": 31.8206, "lng": 117.2272},
}


async def _similar(client, ctx, campaign_id: str) -> list[str]:
    if PROFILE == "services":
        await similar_index.sync(ctx, refresh=True)
    response = await client.get(
        f"/api/v1/campaigns/{campaign_id}/pain-points/similar",
        params={"text": "公园的公共厕所晚上不开放"},
    )
    assert response.status_code == 200, response.text
    return [i["id"] for i in response.json()["items"]]


async def _listed(client, campaign_id: str, headers=None) -> list[str]:
    """The ids in the public list (the same items by votes and by time), sorted."""
    found = []
    for sort in ("votes", "new"):
        response = await client.get(
            f"/api/v1/campaigns/{campaign_id}/pain-points", params={"sort": sort}, headers=headers
        )
        assert response.status_code == 200, response.text
        found.append(sorted(i["id"] for i in response.json()["items"]))
    assert found[0] == found[1]
    return found[0]


async def _open311_client(client, admin) -> str:
    response = await client.post(
        "/api/v1/open311/clients", headers=admin, json={"name": "随手拍", "requests_per_minute": 50}
    )
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


async def _open311_ids(client, query: str = "") -> list[str]:
    response = await client.get(f"/open311/v2/requests.json?{query}")
    assert response.status_code == 200, response.text
    return [r["service_request_id"] for r in response.json()]


async def _export(client, curator, campaign_id: str) -> dict[str, list[str]]:
    response = await client.get(
        f"/api/v1/campaigns/{campaign_id}/pain-points/export.csv", headers=curator
    )
    assert response.status_code == 200, response.text
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert rows[0][-1] == "公开"
    return {r[0]: r for r in rows[1:]}


async def test_the_default_is_pre_moderation_and_curators_can_switch(client, ctx):
    admin = token_headers(ctx, await make_user(Role.BUREAU_ADMIN))
    body = {"title": "默认审核方式的活动", **schedule(ctx)}
    created = await client.post("/api/v1/campaigns", headers=admin, json=body)
    assert created.status_code == 201, created.text
    campaign = created.json()
    assert campaign["moderation"] == "pre"
    assert (await client.get(f"/api/v1/campaigns/{campaign['id']}")).json()["moderation"] == "pre"
    url = f"/api/v1/campaigns/{campaign['id']}"
    switched = await client.patch(url, headers=admin, json={"moderation": "post"})
    assert switched.status_code == 200 and switched.json()["moderation"] == "post"
    for bad in ("later", None):
        refused = await client.patch(url, headers=admin, json={"moderation": bad})
        assert refused.status_code == 400 and "moderation" in refused.json()["error"]["fields"]
    listed = (await client.get("/api/v1/campaigns")).json()["items"]
    assert listed[0]["moderation"] == "post"


@pytest.mark.parametrize("policy", ["pre", "post"])
async def test_a_fresh_submission_on_every_surface(client, ctx, policy):
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    admin = token_headers(ctx, await make_user(Role.BUREAU_ADMIN))
    campaign = await create_campaign(client, curator, ctx, moderation=policy, submission_cap=20)
    cid = campaign["id"]
    author_user = await make_user(Role.RESIDENT)
    author = token_headers(ctx, author_user)
    stranger = token_headers(ctx, await make_user(Role.RESIDENT))
    public = policy == "post"

    # The reply says when the item becomes public, by the campaign's policy.
    item = await submit(client, author, cid, **TOILET)
    assert item["public"] is public and item["status"] == "submitted"
    assert item["notice"] == NOTICES[policy]  # type: ignore[index]
    key = await _open311_client(client, admin)
    form = {
        "api_key": key,
        "service_code": "parking",
        "lat": "31.8206",
        "long": "117.2272",
        "description": "小区门口的路边停车位太少。晚上回家总是找不到地方停车",
    }
    posted = await client.post(
        "/open311/v2/requests.json", data=form, headers={"content-type": FORM}
    )
    assert posted.status_code == 201, posted.text
    request_id = posted.json()[0]["service_request_id"]
    assert posted.json()[0]["service_notice"] == NOTICES[policy]  # type: ignore[index]
    if policy == "pre":
        assert "审核通过后" in posted.json()[0]["service_notice"]

    # The public list and ranking, the detail, similar items, statistics.
    expected = [request_id, item["id"]] if public else []  # newest first
    assert await _listed(client, cid) == sorted(expected)
    assert await _listed(client, cid, headers=author) == sorted(expected)  # the public's list
    anonymous = await client.get(f"/api/v1/pain-points/{item['id']}")
    assert anonymous.status_code == (200 if public else 404)
    other = await client.get(f"/api/v1/pain-points/{item['id']}", headers=stranger)
    assert other.status_code == (200 if public else 404)
    for who in (author, curator):
        own = await client.get(f"/api/v1/pain-points/{item['id']}", headers=who)
        assert own.status_code == 200, own.text
        assert own.json()["status"] == "submitted" and own.json()["public"] is public
    mine = (await client.get("/api/v1/me/pain-points", headers=author)).json()["items"]
    assert [(i["id"], i["public"]) for i in mine] == [(item["id"], public)]
    # Similar items are public ones only (Elasticsearch's more-like-this may also find the
    # Open311 request, which shares words with the query).
    similar = await _similar(client, ctx, cid)
    assert set(similar) <= set(expected) and (item["id"] in similar) is public, similar
    stats = (await client.get(f"/api/v1/campaigns/{cid}/statistics")).json()
    by_category = {c["category"]: c["pain_points"] for c in stats["by_category"]}
    assert by_category["public_toilet"] == (1 if public else 0)
    assert stats["pain_points"]["submitted"] == 2  # counts of every status stay aggregate

    # Voting, reports and follows: only on what the public can see.
    vote = await client.post(f"/api/v1/pain-points/{item['id']}/vote", headers=stranger)
    if public:
        assert vote.status_code == 201, vote.text
    else:
        assert vote.status_code == 409
        assert vote.json()["error"]["code"] == "pain_point_pending_review"
    report = await client.post(
        f"/api/v1/pain-points/{item['id']}/report", headers=stranger, json={"reason": "广告"}
    )
    assert report.status_code == (201 if public else 404)
    follow = await client.post(f"/api/v1/pain-points/{item['id']}/follow", headers=stranger)
    assert follow.status_code == (204 if public else 404), follow.text

    # Open311: the lists show public items only; by id, the status without the content.
    assert await _open311_ids(client) == expected
    assert await _open311_ids(client, "status=open") == expected
    one = (await client.get(f"/open311/v2/requests/{request_id}.json")).json()[0]
    assert one["status"] == "open"
    if public:
        assert one["description"].startswith("小区门口") and one["lat"] == 31.8206
    else:
        assert one["description"] == "" and one["lat"] is None and one["long"] is None
        assert one["media_url"] == "" and "审核通过后公开" in one["status_notes"]
    by_ids = await _open311_ids(client, f"service_request_id={request_id},{item['id']}")
    assert sorted(by_ids) == sorted([request_id, item["id"]])

    # Curators export everything, with whether the public sees it.
    exported = await _export(client, curator, cid)
    assert sorted(exported) == sorted([request_id, item["id"]])
    assert {row[-1] for row in exported.values()} == {"是" if public else "否"}


@pytest.mark.parametrize("policy", ["pre", "post"])
async def test_moderation_decides_what_the_public_sees(client, ctx, policy):
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    campaign = await create_campaign(client, curator, ctx, moderation=policy, submission_cap=20)
    cid = campaign["id"]
    author = token_headers(ctx, await make_user(Role.RESIDENT))
    voter = token_headers(ctx, await make_user(Role.RESIDENT))
    valid = await submit(client, author, cid, **TOILET)
    invalid = await submit(client, author, cid, category="parking")
    waiting = await submit(client, author, cid, category="transport")

    async def moderate(item, **body):
        response = await client.post(
            f"/api/v1/pain-points/{item['id']}/moderation", headers=curator, json=body
        )
        assert response.status_code == 200, response.text
        return response.json()

    assert (await moderate(valid, decision="valid"))["public"] is True
    assert (await moderate(invalid, decision="invalid", reason="与城市治理无关"))["public"] is False
    # A valid item is public under both policies; an invalid one under neither.
    shown = [valid["id"]] if policy == "pre" else [waiting["id"], valid["id"]]
    assert await _listed(client, cid) == sorted(shown)
    assert (await client.get(f"/api/v1/pain-points/{valid['id']}")).status_code == 200
    assert (await client.get(f"/api/v1/pain-points/{invalid['id']}")).status_code == 404
    similar = await _similar(client, ctx, cid)  # public items only, the valid one among them
    assert valid["id"] in similar and set(similar) <= set(shown), similar
    vote = await client.post(f"/api/v1/pain-points/{valid['id']}/vote", headers=voter)
    assert vote.status_code == 201, vote.text
    refused = await client.post(f"/api/v1/pain-points/{invalid['id']}/vote", headers=voter)
    assert refused.status_code == 422 and refused.json()["error"]["code"] == "pain_point_invalid"
    # Open311: the closure of the invalid one is public, never its content.
    rows = (await client.get("/open311/v2/requests.json")).json()
    feed = {r["service_request_id"]: r for r in rows}
    assert set(feed) == {valid["id"], invalid["id"], *([waiting["id"]] if policy == "post" else [])}
    closed = feed[invalid["id"]]
    assert closed["status"] == "closed" and "与城市治理无关" in closed["status_notes"]
    assert closed["description"] == "" and closed["lat"] is None
    assert feed[valid["id"]]["description"] == TOILET["description"]
    # A duplicate must point at an item the public sees: under pre-moderation, a valid one.
    duplicate = await client.post(
        f"/api/v1/pain-points/{invalid['id']}/moderation",
        headers=curator,
        json={"decision": "valid"},
    )
    assert duplicate.status_code == 200
    pointed = await client.post(
        f"/api/v1/pain-points/{invalid['id']}/moderation",
        headers=curator,
        json={"decision": "duplicate", "duplicate_of": waiting["id"]},
    )
    if policy == "pre":
        assert pointed.status_code == 422
        assert pointed.json()["error"]["code"] == "duplicate_target_not_listed"
    else:
        assert pointed.status_code == 200, pointed.text
    exported = await _export(client, curator, cid)
    assert exported[waiting["id"]][-1] == ("否" if policy == "pre" else "是")
    assert exported[valid["id"]][-1] == "是"


async def test_switching_to_pre_moderation_withdraws_unreviewed_items(client, ctx):
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    campaign = await create_campaign(client, curator, ctx, moderation="post")
    cid = campaign["id"]
    author = token_headers(ctx, await make_user(Role.RESIDENT))
    item = await submit(client, author, cid, **TOILET)
    assert await _listed(client, cid) == [item["id"]]
    switched = await client.patch(
        f"/api/v1/campaigns/{cid}", headers=curator, json={"moderation": "pre"}
    )
    assert switched.status_code == 200, switched.text
    assert await _listed(client, cid) == []
    assert (await client.get(f"/api/v1/pain-points/{item['id']}")).status_code == 404
    assert await _open311_ids(client) == []
    assert await _similar(client, ctx, cid) == []
