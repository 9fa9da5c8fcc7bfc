"""Similar pain points before submitting: more-like-this on Elasticsearch (services), bigrams on
the database (embedded); the same suggestions either way for clear cases."""

from __future__ import annotations

from backend.models import Role
from crowdsource import similar_index
from tests.conftest import PROFILE
from tests.crowdsource_helpers import create_campaign, submit
from tests.elastic_helpers import dead_elasticsearch
from tests.factories import headers_for


async def test_similar_items_come_from_the_profile_s_backend(client, ctx):
    curator = await headers_for(client, Role.CURATOR)
    resident = await headers_for(client, Role.RESIDENT)
    campaign = await create_campaign(client, curator, ctx, submission_cap=10)
    parking = await submit(
        client,
        resident,
        campaign["id"],
        title="医院周边停车太难",
        description="省立医院周边停车位太少，排队停车要一个小时。",
    )
    toilet = await submit(
        client,
        resident,
        campaign["id"],
        title="公园里找不到公厕",
        description="逍遥津公园里公厕太少，指示牌也不清楚。",
        category="public_toilet",
    )
    hidden = await submit(
        client,
        resident,
        campaign["id"],
        title="医院停车收费太贵",
        description="医院停车收费太贵，停车难。",
    )
    for _ in range(5):  # reports hide an item until reviewed
        reporter = await headers_for(client, Role.RESIDENT)
        await client.post(
            f"/api/v1/pain-points/{hidden['id']}/report", headers=reporter, json={"reason": "重复"}
        )
    if PROFILE == "services":
        assert await similar_index.sync(ctx, refresh=True) == 3
        assert await similar_index.sync(ctx, refresh=True) == 3  # the overlap re-reads, harmlessly
    url = f"/api/v1/campaigns/{campaign['id']}/pain-points/similar"
    try:
        response = await client.get(url, params={"text": "医院附近停车位不够，停车排长队"})
        assert response.status_code == 200, response.text
        body = response.json()
        expected = (
            "elasticsearch-more-like-this" if PROFILE == "services" else "database-bigram-jaccard"
        )
        assert body["method"] == expected
        ids = [item["id"] for item in body["items"]]
        assert ids and ids[0] == parking["id"]
        assert hidden["id"] not in ids
        assert toilet["id"] not in ids[:1]
    finally:
        if ctx.elastic is not None:
            await ctx.elastic.client.indices.delete(
                index=similar_index.index_name(ctx.settings), ignore_unavailable=True
            )
            await ctx.kv.delete(similar_index.WATERMARK)


async def test_elasticsearch_failure_falls_back_to_the_database(client, ctx):
    curator = await headers_for(client, Role.CURATOR)
    resident = await headers_for(client, Role.RESIDENT)
    campaign = await create_campaign(client, curator, ctx)
    item = await submit(
        client,
        resident,
        campaign["id"],
        title="医院周边停车太难",
        description="省立医院周边停车位太少。",
    )
    async with dead_elasticsearch(ctx):
        response = await client.get(
            f"/api/v1/campaigns/{campaign['id']}/pain-points/similar", params={"text": "医院停车难"}
        )
    assert response.status_code == 200
    assert [i["id"] for i in response.json()["items"]] == [item["id"]]
