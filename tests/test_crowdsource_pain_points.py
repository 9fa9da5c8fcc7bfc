"""Pain points: submissions, audiences, caps, editing, similar suggestions, moderation, reports."""

from __future__ import annotations

import asyncio

from backend import geo
from backend.models import AuditEntry, Role
from crowdsource import similar_index
from crowdsource.models import PainPoint, Participant
from tests.conftest import PROFILE
from tests.crowdsource_helpers import (
    create_campaign,
    many_headers,
    submit,
    token_headers,
    vendor_member,
)
from tests.factories import headers_for, make_user


async def _campaign(client, ctx, **fields):
    curator = await headers_for(client, Role.CURATOR)
    return curator, await create_campaign(client, curator, ctx, **fields)


async def test_resident_submits_with_location_in_gcj02(client, ctx):
    _, campaign = await _campaign(client, ctx)
    resident = await headers_for(client, Role.RESIDENT)
    wgs = geo.Point(31.8206, 117.2272)  # Hefei
    gcj = geo.from_wgs84(wgs, "gcj02")
    item = await submit(
        client,
        resident,
        campaign["id"],
        title="公厕难找",
        category="public_toilet",
        location={"lat": gcj.lat, "lng": gcj.lng, "coord": "gcj02"},
        district="蜀山区",
        photo_urls=["https://img.example.cn/a.jpg"],
    )
    assert item["status"] == "submitted" and item["audience"] == "resident"
    assert item["category_label"] == "公厕"
    assert abs(item["location"]["lat"] - gcj.lat) < 1e-5  # answered in the system it was given in
    stored = await PainPoint.get(public_id=item["id"])
    assert abs(stored.lat - wgs.lat) < 1e-5 and abs(stored.lng - wgs.lng) < 1e-5
    one = await client.get(f"/api/v1/pain-points/{item['id']}")
    assert one.status_code == 200 and abs(one.json()["location"]["lat"] - wgs.lat) < 1e-5
    bd = await client.get(f"/api/v1/pain-points/{item['id']}", params={"coord": "bd09"})
    assert abs(bd.json()["location"]["lat"] - geo.from_wgs84(wgs, "bd09").lat) < 1e-5
    assert one.json()["votes"] == 0 and one.json()["votes_by_audience"]["resident"] == 0


async def test_bad_submissions_name_the_field(client, ctx):
    _, campaign = await _campaign(client, ctx)
    resident = await headers_for(client, Role.RESIDENT)
    url = f"/api/v1/campaigns/{campaign['id']}/pain-points"
    good = {
        "title": "停车太难了",
        "description": "小区附近没有停车位很难停车",
        "category": "parking",
    }
    cases = [
        ({"title": "短"}, "title"),
        ({"title": "长" * 61}, "title"),
        ({"description": "太短"}, "description"),
        ({"description": "长" * 2001}, "description"),
        ({"category": "spaceships"}, "category"),
        ({"location": {"lat": 91, "lng": 117}}, "location.lat"),
        ({"location": {"lat": 31, "lng": 117, "coord": "mars"}}, "location.coord"),
        ({"photo_urls": ["http://insecure.example/a.jpg"]}, "photo_urls"),
        ({"photo_urls": ["not a url"]}, "photo_urls.0"),
        ({"extra": True}, "extra"),
    ]
    for change, field in cases:
        response = await client.post(url, headers=resident, json=good | change)
        assert response.status_code == 400, (change, response.text)
        assert field in response.json()["error"]["fields"], (change, response.json())
    malformed = await client.post(
        url, headers=resident | {"content-type": "application/json"}, content=b"{oops"
    )
    assert malformed.status_code == 400
    assert await PainPoint.all().count() == 0
    assert (await client.post(url, json=good)).status_code == 401


async def test_audiences_enterprise_and_department(client, ctx):
    _, campaign = await _campaign(client, ctx)
    cid = campaign["id"]
    resident = await headers_for(client, Role.RESIDENT)
    member, _ = await vendor_member(ctx, name="合肥某科技公司")
    item = await submit(client, member, cid, audience="enterprise", company_name="合肥某科技公司")
    assert item["audience"] == "enterprise" and item["company_name"] == "合肥某科技公司"
    refused = await submit(client, resident, cid, audience="department", expect=422)
    assert refused["error"]["code"] == "audience_not_allowed"
    worker = await headers_for(client, Role.STREET_WORKER)
    item = await submit(client, worker, cid, department_name="蜀山区数据资源局")
    assert item["audience"] == "department" and item["department_name"] == "蜀山区数据资源局"
    vendor = await headers_for(client, Role.VENDOR)
    refused = await submit(
        client, vendor, cid, company_name="某公司", audience="resident", expect=422
    )
    assert refused["error"]["code"] == "audience_not_allowed"
    # A campaign for residents only refuses departments.
    _, residents_only = await _campaign(client, ctx, audiences=["resident"])
    refused = await submit(client, worker, residents_only["id"], expect=422)
    assert refused["error"]["code"] == "audience_not_invited"


async def test_only_while_collecting(client, ctx):
    _, campaign = await _campaign(
        client,
        ctx,
        hours={
            "collecting_starts_at": 1,
            "collecting_ends_at": 2,
            "voting_starts_at": 1,
            "voting_ends_at": 3,
            "closes_at": 4,
        },
    )
    resident = token_headers(ctx, await make_user(Role.RESIDENT))  # outlives the clock moves
    # A draft campaign is invisible to residents.
    response = await submit(client, resident, campaign["id"], expect=404)
    assert response["error"]["code"] == "campaign_not_found"
    ctx.clock.advance(1.5 * 3600)
    await submit(client, resident, campaign["id"])
    ctx.clock.advance(3600)  # voting only now
    refused = await submit(client, resident, campaign["id"], expect=409)
    assert refused["error"]["code"] == "phase_closed"


async def test_per_person_cap_holds_under_concurrency(client, ctx):
    _, campaign = await _campaign(client, ctx, submission_cap=3)
    resident = await headers_for(client, Role.RESIDENT)
    url = f"/api/v1/campaigns/{campaign['id']}/pain-points"
    bodies = [
        {
            "title": f"问题标题{i}",
            "description": f"问题的详细描述第{i}条内容",
            "category": "medical",
        }
        for i in range(12)
    ]
    responses = await asyncio.gather(*(client.post(url, headers=resident, json=b) for b in bodies))
    codes = sorted(r.status_code for r in responses)
    assert codes == [201] * 3 + [422] * 9, codes
    assert {r.json()["error"]["code"] for r in responses if r.status_code == 422} == {
        "submission_cap_reached"
    }
    assert await PainPoint.filter(campaign__public_id=campaign["id"]).count() == 3
    assert (await Participant.get()).submissions == 3
    # Another person is not affected.
    await submit(client, await headers_for(client, Role.RESIDENT), campaign["id"])


async def test_author_edits_until_moderated(client, ctx):
    curator, campaign = await _campaign(client, ctx)
    author = await make_user(Role.RESIDENT)
    headers = token_headers(ctx, author)
    item = await submit(client, headers, campaign["id"])
    url = f"/api/v1/pain-points/{item['id']}"
    edited = await client.patch(
        url, headers=headers, json={"title": "修改后的标题", "category": "transport"}
    )
    assert edited.status_code == 200, edited.text
    assert (
        edited.json()["title"] == "修改后的标题" and edited.json()["category_label"] == "交通出行"
    )
    bad = await client.patch(url, headers=headers, json={"category": "nonexistent"})
    assert bad.status_code == 400 and "category" in bad.json()["error"]["fields"]
    other = await headers_for(client, Role.RESIDENT)
    refused = await client.patch(url, headers=other, json={"title": "别人的修改"})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "not_author"
    decided = await client.post(f"{url}/moderation", headers=curator, json={"decision": "valid"})
    assert decided.status_code == 200
    late = await client.patch(url, headers=headers, json={"title": "审核后再改"})
    assert late.status_code == 409 and late.json()["error"]["code"] == "already_moderated"
    assert (await PainPoint.get(public_id=item["id"])).title == "修改后的标题"


async def test_similar_suggestions(client, ctx):
    _, campaign = await _campaign(client, ctx)
    cid = campaign["id"]
    resident = await headers_for(client, Role.RESIDENT)
    parking = await submit(
        client,
        resident,
        cid,
        title="小区停车难",
        description="晚上小区里停车位不够，车只能停在路边",
    )
    await submit(
        client,
        resident,
        cid,
        title="公厕太少",
        description="商业街附近找不到公共厕所",
        category="public_toilet",
    )
    await submit(
        client, resident, cid, title="学校门口拥堵", description="上下学时间校门口交通拥堵"
    )
    if PROFILE == "services":  # the pain-point index is kept in step by a scheduled sync
        await similar_index.sync(ctx, refresh=True)
    response = await client.get(
        f"/api/v1/campaigns/{cid}/pain-points/similar", params={"text": "停车位不够，停车难"}
    )
    if PROFILE == "services":
        await ctx.elastic.client.indices.delete(
            index=similar_index.index_name(ctx.settings), ignore_unavailable=True
        )
        await ctx.kv.delete(similar_index.WATERMARK)
    assert response.status_code == 200, response.text
    body = response.json()
    expected = (
        "elasticsearch-more-like-this" if PROFILE == "services" else "database-bigram-jaccard"
    )
    assert body["method"] == expected
    assert body["items"][0]["id"] == parking["id"]
    assert 0 < body["items"][0]["score"] <= 1
    bad = await client.get(f"/api/v1/campaigns/{cid}/pain-points/similar", params={"text": "x"})
    assert bad.status_code == 400 and "text" in bad.json()["error"]["fields"]
    missing = await client.get(f"/api/v1/campaigns/{cid}/pain-points/similar")
    assert missing.status_code == 400 and "text" in missing.json()["error"]["fields"]


async def test_moderation_decisions_are_audited(client, ctx):
    curator_user = await make_user(Role.CURATOR)
    curator = token_headers(ctx, curator_user)
    campaign = await create_campaign(client, curator, ctx)
    resident = await headers_for(client, Role.RESIDENT)
    a = await submit(client, resident, campaign["id"])
    b = await submit(client, resident, campaign["id"])
    c = await submit(client, resident, campaign["id"])

    def url(item):
        return f"/api/v1/pain-points/{item['id']}/moderation"

    refused = await client.post(url(a), headers=resident, json={"decision": "valid"})
    assert refused.status_code == 403
    no_reason = await client.post(url(a), headers=curator, json={"decision": "invalid"})
    assert no_reason.status_code == 400 and "reason" in no_reason.json()["error"]["fields"]
    no_target = await client.post(url(b), headers=curator, json={"decision": "duplicate"})
    assert no_target.status_code == 400 and "duplicate_of" in no_target.json()["error"]["fields"]
    itself = await client.post(
        url(b), headers=curator, json={"decision": "duplicate", "duplicate_of": b["id"]}
    )
    assert itself.status_code == 422

    invalid = await client.post(
        url(a), headers=curator, json={"decision": "invalid", "reason": "与本市无关"}
    )
    assert invalid.status_code == 200 and invalid.json()["status"] == "invalid"
    assert invalid.json()["moderation_reason"] == "与本市无关"
    dup = await client.post(
        url(b), headers=curator, json={"decision": "duplicate", "duplicate_of": c["id"]}
    )
    assert dup.status_code == 200 and dup.json()["duplicate_of"] == c["id"]
    # No chains: nothing may be a duplicate of an item that is itself a duplicate or invalid.
    chain = await client.post(
        url(c), headers=curator, json={"decision": "duplicate", "duplicate_of": b["id"]}
    )
    assert (
        chain.status_code == 422 and chain.json()["error"]["code"] == "duplicate_target_not_listed"
    )
    again = await client.post(url(b), headers=curator, json={"decision": "valid"})
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_duplicate"

    entries = await AuditEntry.filter(action="pain_point.moderate").order_by("id")
    assert [(e.object_id, e.detail["to"]) for e in entries] == [
        (a["id"], "invalid"),
        (b["id"], "duplicate"),
    ]
    assert entries[0].actor == curator_user.public_id and entries[0].reason == "与本市无关"
    assert entries[1].detail["duplicate_of"] == c["id"]
    # Invalid items leave the public list and pages; the author and curators still see them.
    assert (await client.get(f"/api/v1/pain-points/{a['id']}")).status_code == 404
    assert (await client.get(f"/api/v1/pain-points/{a['id']}", headers=resident)).status_code == 200
    listed = await client.get(f"/api/v1/campaigns/{campaign['id']}/pain-points")
    assert [i["id"] for i in listed.json()["items"]] == [c["id"]]


async def test_reports_hide_until_reviewed(client, ctx):
    curator, campaign = await _campaign(client, ctx, report_threshold=3)
    author = await headers_for(client, Role.RESIDENT)
    item = await submit(client, author, campaign["id"])
    url = f"/api/v1/pain-points/{item['id']}/report"
    own = await client.post(url, headers=author, json={})
    assert own.status_code == 422 and own.json()["error"]["code"] == "own_pain_point"
    reporters = await many_headers(ctx, 4)
    first = await client.post(url, headers=reporters[0], json={"reason": "广告"})
    assert first.status_code == 201 and first.json()["hidden"] is False
    twice = await client.post(url, headers=reporters[0], json={})
    assert twice.status_code == 409 and twice.json()["error"]["code"] == "already_reported"
    results = await asyncio.gather(*(client.post(url, headers=h, json={}) for h in reporters[1:3]))
    assert all(r.status_code == 201 for r in results)
    assert any(r.json()["hidden"] for r in results)
    assert (await PainPoint.get(public_id=item["id"])).hidden
    assert await AuditEntry.filter(action="pain_point.hide", object_id=item["id"]).count() == 1
    # Hidden: gone from the list and the public page, votes refused.
    listed = await client.get(f"/api/v1/campaigns/{campaign['id']}/pain-points")
    assert listed.json()["items"] == []
    assert (await client.get(f"/api/v1/pain-points/{item['id']}")).status_code == 404
    vote = await client.post(f"/api/v1/pain-points/{item['id']}/vote", headers=reporters[3])
    assert vote.status_code == 409 and vote.json()["error"]["code"] == "pain_point_hidden"
    # A curator's review shows it again, and reports count afresh.
    review = await client.post(
        f"/api/v1/pain-points/{item['id']}/moderation", headers=curator, json={"decision": "valid"}
    )
    assert review.status_code == 200 and review.json()["hidden"] is False
    entry = await AuditEntry.get(action="pain_point.moderate", object_id=item["id"])
    assert entry.detail["was_hidden"] is True
    listed = await client.get(f"/api/v1/campaigns/{campaign['id']}/pain-points")
    assert [i["id"] for i in listed.json()["items"]] == [item["id"]]
    again = await client.post(url, headers=reporters[3], json={})
    assert again.status_code == 201 and again.json()["hidden"] is False
