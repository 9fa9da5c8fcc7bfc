"""Campaigns: who creates and edits them, their schedule, and phases moved by the scheduler."""

from __future__ import annotations

from datetime import timedelta

from backend.models import AuditEntry, Role
from crowdsource import scheduled
from crowdsource.models import Campaign
from tests.crowdsource_helpers import create_campaign, schedule, token_headers
from tests.factories import headers_for, make_user


async def test_curator_creates_and_anyone_reads(client, ctx):
    headers = await headers_for(client, Role.CURATOR)
    created = await create_campaign(client, headers, ctx)
    assert created["phase"] == "voting"
    assert created["phases_open"] == ["collecting", "voting"]
    labels = {c["code"]: c["label"] for c in created["categories"]}
    assert labels["parking"] == "停车" and labels["public_toilet"] == "公厕"
    assert labels["government_services"] == "政务服务"
    assert created["audiences"] == ["resident", "enterprise", "department"]
    assert created["voting_ends_at"].endswith("+08:00")

    one = await client.get(f"/api/v1/campaigns/{created['id']}")
    assert one.status_code == 200 and one.json()["phase"] == "voting"
    listed = await client.get("/api/v1/campaigns")
    assert [c["id"] for c in listed.json()["items"]] == [created["id"]]
    assert await AuditEntry.filter(action="campaign.create", object_id=created["id"]).exists()


async def test_only_curators_and_bureau_manage_campaigns(client, ctx):
    body = {"title": "不该创建", **schedule(ctx)}
    for role in (Role.RESIDENT, Role.VENDOR, Role.JUDGE, Role.STREET_WORKER):
        response = await client.post(
            "/api/v1/campaigns", headers=await headers_for(client, role), json=body
        )
        assert response.status_code == 403, role
    assert (await client.post("/api/v1/campaigns", json=body)).status_code == 401
    admin = await headers_for(client, Role.BUREAU_ADMIN)
    created = await create_campaign(client, admin, ctx, title="局里的活动")
    resident = await headers_for(client, Role.RESIDENT)
    patch = await client.patch(
        f"/api/v1/campaigns/{created['id']}", headers=resident, json={"title": "改"}
    )
    assert patch.status_code == 403
    assert await Campaign.all().count() == 1


async def test_bad_campaign_input_names_the_field(client, ctx):
    headers = await headers_for(client, Role.CURATOR)
    cases = [
        ({"title": "x"}, "title"),
        ({"collecting_starts_at": "2026-07-01T00:00:00"}, "collecting_starts_at"),
        ({"audiences": ["resident", "martians"]}, "audiences.1"),
        ({"categories": [{"code": "Bad Code", "label": "坏"}]}, "categories.0.code"),
        (
            {"categories": [{"code": "a1", "label": "一"}, {"code": "a1", "label": "二"}]},
            "categories",
        ),
        ({"vote_budget": 0}, "vote_budget"),
        ({"surprise": 1}, "surprise"),
    ]
    for change, field in cases:
        body = {"title": "测试活动", **schedule(ctx)} | change
        response = await client.post("/api/v1/campaigns", headers=headers, json=body)
        assert response.status_code == 400, (change, response.text)
        assert field in response.json()["error"]["fields"], (change, response.json())
    # A schedule out of order names the offending field.
    body = {"title": "测试活动", **schedule(ctx, voting_ends_at=12, collecting_ends_at=24)}
    response = await client.post("/api/v1/campaigns", headers=headers, json=body)
    assert response.status_code == 400
    assert "voting_ends_at" in response.json()["error"]["fields"]
    body = {"title": "测试活动", **schedule(ctx, closes_at=40)}
    response = await client.post("/api/v1/campaigns", headers=headers, json=body)
    assert "closes_at" in response.json()["error"]["fields"]
    assert await Campaign.all().count() == 0


async def test_phases_follow_the_schedule_and_transitions_are_audited_once(client, ctx, app):
    headers = await headers_for(client, Role.CURATOR)
    created = await create_campaign(
        client,
        headers,
        ctx,
        hours={
            "collecting_starts_at": 1,
            "collecting_ends_at": 3,
            "voting_starts_at": 2,
            "voting_ends_at": 4,
            "closes_at": 5,
        },
    )
    cid = created["id"]
    assert created["phase"] == "draft" and created["phases_open"] == ["draft"]
    # Drafts are hidden from the public, visible to curators.
    assert (await client.get(f"/api/v1/campaigns/{cid}")).status_code == 404
    assert (await client.get("/api/v1/campaigns")).json()["items"] == []
    staff_list = await client.get("/api/v1/campaigns", headers=headers)
    assert [c["id"] for c in staff_list.json()["items"]] == [cid]

    jobs = app.ctx.jobs
    assert "crowdsource.phases" in jobs.specs and "crowdsource.reconcile" in jobs.specs
    expected = [
        (1.5, "collecting", ["collecting"]),
        (2.5, "voting", ["collecting", "voting"]),
        (3.5, "voting", ["voting"]),
        (4.5, "curating", ["curating"]),
        (5.5, "closed", ["closed"]),
    ]
    elapsed = 0.0
    for at, phase, opened in expected:
        ctx.clock.advance((at - elapsed) * 3600)
        elapsed = at
        public = await client.get(f"/api/v1/campaigns/{cid}")
        assert public.json()["phase"] == phase and public.json()["phases_open"] == opened
        await scheduled.advance_phases(ctx)
        await scheduled.advance_phases(ctx)  # idempotent: a second run changes nothing
        stored = await Campaign.get(public_id=cid)
        assert stored.phase == phase and stored.phase_state == "+".join(opened)
    transitions = await AuditEntry.filter(action="campaign.phase", object_id=cid).order_by("id")
    assert [t.detail["to"] for t in transitions] == [
        "collecting",
        "collecting+voting",
        "voting",
        "curating",
        "closed",
    ]
    assert all(t.actor == "system" for t in transitions)
    # A closed campaign can no longer be edited; the phase filter finds it.
    headers = token_headers(ctx, await make_user(Role.CURATOR))  # the first token has expired
    patch = await client.patch(
        f"/api/v1/campaigns/{cid}", headers=headers, json={"title": "新标题"}
    )
    assert patch.status_code == 409, patch.text
    assert patch.json()["error"]["code"] == "campaign_closed"
    closed = await client.get("/api/v1/campaigns", params={"phase": "closed"})
    assert [c["id"] for c in closed.json()["items"]] == [cid]
    assert (await client.get("/api/v1/campaigns", params={"phase": "voting"})).json()["items"] == []


async def test_phase_job_runs_through_the_scheduler_once(client, ctx, app):
    headers = await headers_for(client, Role.CURATOR)
    created = await create_campaign(
        client, headers, ctx, hours={"collecting_starts_at": 0.5, "voting_starts_at": 0.5}
    )
    ctx.clock.advance(3600)
    jobs = app.ctx.jobs
    slot = ctx.clock.now().replace(microsecond=0)
    assert await jobs.run("crowdsource.phases", slot) is True
    assert await jobs.run("crowdsource.phases", slot) is False
    stored = await Campaign.get(public_id=created["id"])
    assert stored.phase_state == "collecting+voting"


async def test_edit_schedule_and_rules(client, ctx):
    curator = await make_user(Role.CURATOR)
    headers = token_headers(ctx, curator)
    created = await create_campaign(client, headers, ctx)
    cid = created["id"]
    later = (ctx.clock.now() + timedelta(hours=10)).isoformat()
    patch = await client.patch(
        f"/api/v1/campaigns/{cid}",
        headers=headers,
        json={"voting_starts_at": later, "vote_budget": 3, "report_threshold": 2},
    )
    assert patch.status_code == 200, patch.text
    body = patch.json()
    assert body["phases_open"] == ["collecting"] and body["vote_budget"] == 3
    assert body["report_threshold"] == 2
    # Back to no budget with an explicit null; a null elsewhere is refused.
    patch = await client.patch(
        f"/api/v1/campaigns/{cid}", headers=headers, json={"vote_budget": None}
    )
    assert patch.json()["vote_budget"] is None
    patch = await client.patch(f"/api/v1/campaigns/{cid}", headers=headers, json={"title": None})
    assert patch.status_code == 400 and "title" in patch.json()["error"]["fields"]
    # An out-of-order edit is refused whole.
    bad = (ctx.clock.now() + timedelta(hours=200)).isoformat()
    patch = await client.patch(
        f"/api/v1/campaigns/{cid}", headers=headers, json={"voting_starts_at": bad, "title": "X2"}
    )
    assert patch.status_code == 400
    assert (await Campaign.get(public_id=cid)).title != "X2"
    edits = await AuditEntry.filter(action="campaign.update", object_id=cid).count()
    assert edits == 2
    # The edit moved the phases at once (audited with the editor as actor).
    moved = await AuditEntry.filter(action="campaign.phase", object_id=cid, actor=curator.public_id)
    assert [m.detail["to"] for m in moved][-1] == "collecting"


async def test_unknown_campaign_is_404(client):
    response = await client.get("/api/v1/campaigns/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "campaign_not_found"


async def test_openapi_documents_every_crowdsource_route(client):
    response = await client.get("/docs/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    expected = {
        "/api/v1/campaigns": {"get", "post"},
        "/api/v1/campaigns/{campaign_id}": {"get", "patch"},
        "/api/v1/campaigns/{campaign_id}/pain-points": {"get", "post"},
        "/api/v1/campaigns/{campaign_id}/pain-points/similar": {"get"},
        "/api/v1/campaigns/{campaign_id}/statistics": {"get"},
        "/api/v1/pain-points/{pain_point_id}": {"get", "patch"},
        "/api/v1/pain-points/{pain_point_id}/moderation": {"post"},
        "/api/v1/pain-points/{pain_point_id}/merge": {"post"},
        "/api/v1/pain-points/{pain_point_id}/report": {"post"},
        "/api/v1/pain-points/{pain_point_id}/vote": {"post", "delete"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    vote = paths["/api/v1/pain-points/{pain_point_id}/vote"]["post"]
    assert {"201", "401", "409", "422", "429"} <= set(vote["responses"])
    listing = paths["/api/v1/campaigns/{campaign_id}/pain-points"]["get"]
    assert {"sort", "limit", "cursor"} <= {p["name"] for p in listing["parameters"]}
