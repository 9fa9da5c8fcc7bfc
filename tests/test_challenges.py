"""From valid pain points to published challenges, proposals, judging, awards and public results."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest
from pypdf import PdfReader
from stdnum.cn import uscc

from backend.access import Principal
from backend.errors import ValidationFailed
from backend.models import AuditEntry, Notification, Role, User
from crowdsource.challenges import judging
from crowdsource.challenges.judging import weighted_total
from crowdsource.challenges.models import (
    Challenge,
    Proposal,
    ProposalStatus,
    ProposalVersion,
    Vendor,
    VendorMember,
    VendorStatus,
)
from crowdsource.models import Audience, Campaign, PainPoint, Phase, Status, Vote
from tests.factories import make_user, sign_in

_seq = count(1)
CATEGORIES = [
    {"code": "toilets", "label": "公厕"},
    {"code": "parking", "label": "停车"},
    {"code": "elderly", "label": "养老"},
]
RUBRIC = [
    {"criterion": "可行性", "weight": 40},
    {"criterion": "创新性", "weight": 30},
    {"criterion": "成本", "weight": 30},
]


@pytest.fixture(autouse=True)
def long_lived_tokens(ctx):
    """These tests move the clock by days: keep sign-ins valid across the jump."""
    original = ctx.settings
    ctx.settings = original.model_copy(update={"access_token_ttl": 30 * 86400})
    yield
    ctx.settings = original


async def make_campaign(now: datetime) -> Campaign:
    return await Campaign.create(
        title="2018 合肥城市痛难点征集",
        categories=CATEGORIES,
        audiences=["resident", "enterprise", "department"],
        collecting_starts_at=now - timedelta(days=40),
        collecting_ends_at=now - timedelta(days=10),
        voting_starts_at=now - timedelta(days=35),
        voting_ends_at=now - timedelta(days=5),
        closes_at=now + timedelta(days=60),
        phase=Phase.CURATING,
        phase_state="curating",
        created_at=now,
        updated_at=now,
    )


async def make_pain_point(
    campaign: Campaign,
    *,
    title: str,
    category: str = "toilets",
    status: Status = Status.VALID,
    hidden: bool = False,
    votes: int = 0,
) -> PainPoint:
    author = await make_user(Role.RESIDENT)
    now = datetime.now(UTC)
    item = await PainPoint.create(
        campaign=campaign,
        author=author,
        audience=Audience.RESIDENT,
        title=title,
        description=f"{title}，居民反映强烈。",
        category=category,
        status=status,
        hidden=hidden,
        created_at=now,
        updated_at=now,
    )
    for i in range(votes):
        voter = await make_user(Role.RESIDENT)
        audience = Audience.ENTERPRISE if i % 3 == 0 else Audience.RESIDENT
        await Vote.create(
            pain_point=item, campaign=campaign, user=voter, audience=audience, created_at=now
        )
    return item


def challenge_body(pain_points: list[PainPoint], deadline: datetime, **changes) -> dict:
    body = {
        "title": "公厕快速查找与导引",
        "category": "toilets",
        "problem_statement": "市民和游客在城区内难以快速找到最近的开放公厕。",
        "background": "全市公厕分属多个部门管理，数据分散。",
        "expected_outcome": "在智慧生活圈中按距离展示开放中的公厕。",
        "owning_department": "合肥市城市管理局",
        "pain_point_ids": [p.public_id for p in pain_points],
        "open_data": [
            {"dataset": "公厕点位", "description": "位置与开放时间", "access_tier": "public"},
            {"dataset": "保洁记录", "access_tier": "on_application"},
        ],
        "rubric": RUBRIC,
        "prize": "优秀方案纳入城市试点，并提供数据与场景支持。",
        "submission_deadline": deadline.isoformat(),
    }
    body.update(changes)
    return body


async def headers(client, role: Role, **kwargs) -> tuple[User, dict[str, str]]:
    user = await make_user(role, **kwargs)
    return user, await sign_in(client, user)


async def make_vendor(client, status: VendorStatus = VendorStatus.VERIFIED):
    n = next(_seq)
    base = f"9134010{n:010d}"
    vendor = await Vendor.create(
        name=f"合肥示例科技{n}",
        uscc=base + uscc.calc_check_digit(base),
        contact_name="王",
        contact_phone="13800000000",
        status=status,
        created_at=datetime.now(UTC),
    )
    user, hdrs = await headers(client, Role.VENDOR)
    await VendorMember.create(vendor=vendor, user=user, is_owner=True, created_at=datetime.now(UTC))
    return vendor, hdrs


async def published_challenge(client, ctx, *, deadline_days: float = 10):
    now = ctx.clock.now()
    campaign = await make_campaign(now)
    first = await make_pain_point(campaign, title="公厕难找", votes=5)
    second = await make_pain_point(campaign, title="夜间公厕不开放", votes=2)
    _, curator = await headers(client, Role.CURATOR)
    _, admin = await headers(client, Role.BUREAU_ADMIN)
    created = await client.post(
        f"/api/v1/campaigns/{campaign.public_id}/challenges",
        headers=curator,
        json=challenge_body([first, second], now + timedelta(days=deadline_days)),
    )
    assert created.status_code == 201, created.text
    challenge_id = created.json()["id"]
    assert (
        await client.post(f"/api/v1/challenges/{challenge_id}/submit-for-review", headers=curator)
    ).status_code == 200
    published = await client.post(f"/api/v1/challenges/{challenge_id}/publish", headers=admin)
    assert published.status_code == 200, published.text
    return campaign, challenge_id, curator, admin, [first, second]


# --- curation ------------------------------------------------------------------------------------


async def test_shortlist_takes_only_valid_visible_pain_points(client, ctx):
    campaign = await make_campaign(ctx.clock.now())
    valid = await make_pain_point(campaign, title="停车难", category="parking", votes=3)
    invalid = await make_pain_point(campaign, title="无效条目", status=Status.INVALID)
    hidden = await make_pain_point(campaign, title="被隐藏", hidden=True)
    _, curator = await headers(client, Role.CURATOR)
    url = f"/api/v1/campaigns/{campaign.public_id}/shortlist"
    ok = await client.post(
        url, headers=curator, json={"pain_point_id": valid.public_id, "note": "投票多"}
    )
    assert ok.status_code == 204
    assert (
        await client.post(url, headers=curator, json={"pain_point_id": valid.public_id})
    ).status_code == 204
    for item in (invalid, hidden):
        refused = await client.post(url, headers=curator, json={"pain_point_id": item.public_id})
        assert refused.status_code == 400
        assert "pain_point_id" in refused.json()["error"]["fields"]
    listed = (await client.get(url, headers=curator)).json()["items"]
    assert [i["pain_point"]["id"] for i in listed] == [valid.public_id]
    assert listed[0]["pain_point"]["votes"] == 3
    assert listed[0]["pain_point"]["votes_by_audience"] == {"enterprise": 1, "resident": 2}
    removed = await client.delete(f"{url}/{valid.public_id}", headers=curator)
    assert removed.status_code == 204
    assert (await client.delete(f"{url}/{valid.public_id}", headers=curator)).status_code == 404
    _, resident = await headers(client, Role.RESIDENT)
    assert (await client.get(url, headers=resident)).status_code == 403


async def test_challenge_validation(client, ctx):
    now = ctx.clock.now()
    campaign = await make_campaign(now)
    item = await make_pain_point(campaign, title="公厕难找")
    other_campaign = await make_campaign(now)
    foreign = await make_pain_point(other_campaign, title="别的活动")
    invalid = await make_pain_point(campaign, title="无效", status=Status.INVALID)
    _, curator = await headers(client, Role.CURATOR)
    url = f"/api/v1/campaigns/{campaign.public_id}/challenges"
    deadline = now + timedelta(days=5)
    cases = [
        ({"rubric": [{"criterion": "可行性", "weight": 60}]}, "rubric"),
        (
            {"rubric": [{"criterion": "a", "weight": 50}, {"criterion": "a", "weight": 50}]},
            "rubric",
        ),
        ({"category": "education"}, "category"),
        ({"submission_deadline": (now - timedelta(hours=1)).isoformat()}, "submission_deadline"),
        ({"submission_deadline": "2026-12-01T10:00:00"}, "submission_deadline"),
        ({"pain_point_ids": [foreign.public_id]}, "pain_point_ids.0"),
        ({"pain_point_ids": [item.public_id, invalid.public_id]}, "pain_point_ids.1"),
        ({"open_data": [{"dataset": "x", "access_tier": "secret"}]}, "open_data.0.access_tier"),
        ({"owning_department": ""}, "owning_department"),
    ]
    for changes, field in cases:
        response = await client.post(
            url, headers=curator, json=challenge_body([item], deadline, **changes)
        )
        assert response.status_code == 400, (changes, response.text)
        assert field in response.json()["error"]["fields"], (field, response.json())
    assert await Challenge.all().count() == 0


async def test_draft_review_publish_and_visibility(client, ctx):
    now = ctx.clock.now()
    campaign = await make_campaign(now)
    item = await make_pain_point(campaign, title="公厕难找", votes=4)
    _, curator = await headers(client, Role.CURATOR)
    _, admin = await headers(client, Role.BUREAU_ADMIN)
    created = await client.post(
        f"/api/v1/campaigns/{campaign.public_id}/challenges",
        headers=curator,
        json=challenge_body([item], now + timedelta(days=3)),
    )
    challenge_id = created.json()["id"]
    assert created.json()["status"] == "draft" and created.json()["number"] is None
    assert created.json()["pain_points"][0]["votes"] == 4
    # Not public before publication.
    assert (await client.get(f"/api/v1/challenges/{challenge_id}")).status_code == 404
    assert (await client.get("/api/v1/challenges")).json()["items"] == []
    staff_list = await client.get("/api/v1/challenges?status=draft", headers=curator)
    assert [c["id"] for c in staff_list.json()["items"]] == [challenge_id]
    assert (await client.get("/api/v1/challenges?status=draft")).status_code == 400
    # Only in review can be published; the curator may not publish.
    early = await client.post(f"/api/v1/challenges/{challenge_id}/publish", headers=admin)
    assert early.status_code == 409
    await client.post(f"/api/v1/challenges/{challenge_id}/submit-for-review", headers=curator)
    assert (
        await client.post(f"/api/v1/challenges/{challenge_id}/publish", headers=curator)
    ).status_code == 403
    back = await client.post(
        f"/api/v1/challenges/{challenge_id}/return",
        headers=admin,
        json={"note": "请补充开放数据说明"},
    )
    assert back.json()["status"] == "draft"
    patched = await client.patch(
        f"/api/v1/challenges/{challenge_id}", headers=curator, json={"prize": "试点支持"}
    )
    assert patched.json()["prize"] == "试点支持"
    await client.post(f"/api/v1/challenges/{challenge_id}/submit-for-review", headers=curator)
    published = await client.post(f"/api/v1/challenges/{challenge_id}/publish", headers=admin)
    assert published.json()["status"] == "published"
    assert published.json()["number"] == 1
    assert published.json()["submissions_open"] is True
    # Times come back in Asia/Shanghai with their offset.
    assert published.json()["published_at"].endswith("+08:00")
    assert published.json()["submission_deadline"].endswith("+08:00")
    public = await client.get(f"/api/v1/challenges/{challenge_id}")
    assert public.status_code == 200
    assert [{k: r[k] for k in ("criterion", "weight")} for r in public.json()["rubric"]] == RUBRIC
    assert (
        await client.patch(
            f"/api/v1/challenges/{challenge_id}", headers=curator, json={"prize": "x"}
        )
    ).status_code == 409
    actions = set(await AuditEntry.filter(object_id=challenge_id).values_list("action", flat=True))
    assert {
        "challenge.create",
        "challenge.submit_review",
        "challenge.return",
        "challenge.update",
        "challenge.publish",
    } <= actions


async def test_numbers_are_sequential_per_campaign(client, ctx):
    campaign, first_id, curator, admin, items = await published_challenge(client, ctx)
    now = ctx.clock.now()
    second = await client.post(
        f"/api/v1/campaigns/{campaign.public_id}/challenges",
        headers=curator,
        json=challenge_body(
            items[:1], now + timedelta(days=4), title="停车难挑战", category="parking"
        ),
    )
    second_id = second.json()["id"]
    await client.post(f"/api/v1/challenges/{second_id}/submit-for-review", headers=curator)
    published = await client.post(f"/api/v1/challenges/{second_id}/publish", headers=admin)
    assert published.json()["number"] == 2
    listing = await client.get(f"/api/v1/challenges?campaign={campaign.public_id}&limit=1")
    assert [c["number"] for c in listing.json()["items"]] == [1]
    rest = await client.get(
        f"/api/v1/challenges?campaign={campaign.public_id}&limit=1"
        f"&cursor={listing.json()['next_cursor']}"
    )
    assert [c["number"] for c in rest.json()["items"]] == [2]


async def test_booklet_html_and_pdf(client, ctx):
    campaign, challenge_id, curator, admin, items = await published_challenge(client, ctx)
    now = ctx.clock.now()
    second = await client.post(
        f"/api/v1/campaigns/{campaign.public_id}/challenges",
        headers=curator,
        json=challenge_body(
            items[:1], now + timedelta(days=4), title="停车泊位共享", category="parking"
        ),
    )
    # A draft never appears in the booklet.
    html = await client.get(f"/api/v1/campaigns/{campaign.public_id}/booklet")
    assert html.status_code == 200
    assert html.headers["content-type"].startswith("text/html")
    text = html.text
    assert "公厕快速查找与导引" in text and "挑战 1" in text
    assert "停车泊位共享" not in text
    assert "目录" in text and "公厕" in text and "依申请开放" in text
    assert "公厕难找（5 票）" in text
    await client.post(
        f"/api/v1/challenges/{second.json()['id']}/submit-for-review", headers=curator
    )
    await client.post(f"/api/v1/challenges/{second.json()['id']}/publish", headers=admin)
    html = (await client.get(f"/api/v1/campaigns/{campaign.public_id}/booklet")).text
    # Grouped by category in the campaign's order: 公厕 before 停车.
    assert html.index("停车泊位共享") > html.index("公厕快速查找与导引")
    pdf = await client.get(f"/api/v1/campaigns/{campaign.public_id}/booklet.pdf")
    assert pdf.status_code == 200
    assert pdf.headers["content-type"] == "application/pdf"
    reader = PdfReader(io.BytesIO(pdf.content))
    content = "".join(page.extract_text() for page in reader.pages)
    assert "挑战 1" in content and "公厕快速查找与导引" in content
    assert "挑战 2" in content and "停车泊位共享" in content
    assert len(reader.pages) >= 3
    assert (await client.get("/api/v1/campaigns/nope/booklet")).status_code == 404


async def test_html_is_escaped(client, ctx):
    now = ctx.clock.now()
    campaign = await make_campaign(now)
    item = await make_pain_point(campaign, title="公厕难找")
    _, curator = await headers(client, Role.CURATOR)
    _, admin = await headers(client, Role.BUREAU_ADMIN)
    created = await client.post(
        f"/api/v1/campaigns/{campaign.public_id}/challenges",
        headers=curator,
        json=challenge_body([item], now + timedelta(days=3), title="<script>alert(1)</script>"),
    )
    cid = created.json()["id"]
    await client.post(f"/api/v1/challenges/{cid}/submit-for-review", headers=curator)
    await client.post(f"/api/v1/challenges/{cid}/publish", headers=admin)
    html = (await client.get(f"/api/v1/campaigns/{campaign.public_id}/booklet")).text
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;" in html


# --- proposals ---------------------------------------------------------------------------------


def proposal_body(**changes) -> dict:
    body = {
        "title": "智慧公厕导引系统",
        "summary": "基于开放点位数据与实时客流的公厕导引。",
        "body": "方案正文……",
        "attachments": [
            {
                "url": "https://files.example.com/p.pdf",
                "name": "方案.pdf",
                "size_bytes": 204800,
                "content_type": "application/pdf",
            }
        ],
    }
    body.update(changes)
    return body


async def test_proposal_versions_withdrawal_and_deadline(client, ctx):
    _, challenge_id, curator, _, _ = await published_challenge(client, ctx, deadline_days=2)
    vendor, vendor_headers = await make_vendor(client)
    url = f"/api/v1/challenges/{challenge_id}/proposals"
    draft = await client.post(url, headers=vendor_headers, json=proposal_body())
    assert draft.status_code == 201, draft.text
    proposal_id = draft.json()["id"]
    assert draft.json()["status"] == "draft"
    again = await client.post(url, headers=vendor_headers, json=proposal_body())
    assert again.status_code == 409
    # Curators do not see drafts.
    assert (
        await client.get(f"/api/v1/proposals/{proposal_id}", headers=curator)
    ).status_code == 404
    submitted = await client.post(f"/api/v1/proposals/{proposal_id}/submit", headers=vendor_headers)
    assert submitted.json()["status"] == "submitted"
    assert submitted.json()["versions_submitted"] == 1
    revised = await client.put(
        f"/api/v1/proposals/{proposal_id}",
        headers=vendor_headers,
        json=proposal_body(title="智慧公厕导引系统（修订）"),
    )
    assert revised.json()["versions_submitted"] == 2
    versions = (
        await client.get(f"/api/v1/proposals/{proposal_id}/versions", headers=vendor_headers)
    ).json()["items"]
    assert [v["number"] for v in versions] == [1, 2]
    assert versions[0]["title"] == "智慧公厕导引系统"
    assert versions[1]["title"] == "智慧公厕导引系统（修订）"
    withdrawn = await client.post(
        f"/api/v1/proposals/{proposal_id}/withdraw", headers=vendor_headers
    )
    assert withdrawn.json()["status"] == "withdrawn"
    resubmitted = await client.post(
        f"/api/v1/proposals/{proposal_id}/submit", headers=vendor_headers
    )
    assert resubmitted.json()["versions_submitted"] == 3
    # After the deadline (server clock) nothing changes any more.
    ctx.clock.advance(2 * 86400 + 1)
    late = await client.put(
        f"/api/v1/proposals/{proposal_id}",
        headers=vendor_headers,
        json=proposal_body(title="迟到的修改"),
    )
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "deadline_passed"
    assert (
        await client.post(f"/api/v1/proposals/{proposal_id}/withdraw", headers=vendor_headers)
    ).status_code == 409
    other, other_headers = await make_vendor(client)
    assert (await client.post(url, headers=other_headers, json=proposal_body())).status_code == 409
    stored = await Proposal.get(public_id=proposal_id)
    assert stored.title == "智慧公厕导引系统（修订）"
    assert await ProposalVersion.filter(proposal=stored).count() == 3


async def test_vendor_must_be_verified_and_attachments_checked(client, ctx):
    _, challenge_id, _, _, _ = await published_challenge(client, ctx)
    url = f"/api/v1/challenges/{challenge_id}/proposals"
    _, pending = await make_vendor(client, VendorStatus.PENDING)
    assert (await client.post(url, headers=pending, json=proposal_body())).status_code == 422
    _, suspended = await make_vendor(client, VendorStatus.SUSPENDED)
    assert (await client.post(url, headers=suspended, json=proposal_body())).status_code == 403
    _, verified = await make_vendor(client)
    bad = proposal_body(
        attachments=[
            {
                "url": "https://x.example.com/a.exe",
                "name": "a.exe",
                "size_bytes": 10,
                "content_type": "application/x-msdownload",
            }
        ]
    )
    response = await client.post(url, headers=verified, json=bad)
    assert response.status_code == 400
    assert "attachments.0.content_type" in response.json()["error"]["fields"]
    huge = proposal_body(
        attachments=[
            {
                "url": "https://x.example.com/a.pdf",
                "name": "a.pdf",
                "size_bytes": 10**10,
                "content_type": "application/pdf",
            }
        ]
    )
    assert (await client.post(url, headers=verified, json=huge)).status_code == 400
    unpublished = await Challenge.create(
        campaign=await make_campaign(ctx.clock.now()),
        title="未发布",
        category="toilets",
        problem_statement="x" * 20,
        owning_department="某局",
        rubric=RUBRIC,
        submission_deadline=ctx.clock.now() + timedelta(days=3),
        created_by="x",
        created_at=ctx.clock.now(),
        updated_at=ctx.clock.now(),
    )
    response = await client.post(
        f"/api/v1/challenges/{unpublished.public_id}/proposals",
        headers=verified,
        json=proposal_body(),
    )
    assert response.status_code == 404


async def test_proposals_are_confidential_for_every_role(client, ctx):
    _, challenge_id, curator, admin, _ = await published_challenge(client, ctx)
    vendor, vendor_headers = await make_vendor(client)
    created = await client.post(
        f"/api/v1/challenges/{challenge_id}/proposals",
        headers=vendor_headers,
        json=proposal_body(submit=True),
    )
    proposal_id = created.json()["id"]
    colleague = await make_user(Role.VENDOR)
    await VendorMember.create(vendor=vendor, user=colleague, created_at=datetime.now(UTC))
    assigned, assigned_headers = await headers(client, Role.JUDGE)
    await client.post(
        f"/api/v1/challenges/{challenge_id}/judges",
        headers=curator,
        json={"user_id": assigned.public_id},
    )
    conflicted, conflicted_headers = await headers(client, Role.JUDGE)
    await client.post(
        f"/api/v1/challenges/{challenge_id}/judges",
        headers=curator,
        json={"user_id": conflicted.public_id},
    )
    declared = await client.post(
        f"/api/v1/challenges/{challenge_id}/conflicts",
        headers=conflicted_headers,
        json={"vendor_id": vendor.public_id, "reason": "曾任该企业顾问"},
    )
    assert declared.status_code == 204
    _, other_vendor = await make_vendor(client)
    allowed = {
        "vendor member": await sign_in(client, colleague),
        "owner": vendor_headers,
        "curator": curator,
        "assigned judge": assigned_headers,
    }
    refused = {
        "other vendor": other_vendor,
        "unassigned judge": (await headers(client, Role.JUDGE))[1],
        "conflicted judge": conflicted_headers,
        "bureau admin": admin,
        "resident": (await headers(client, Role.RESIDENT))[1],
        "street worker": (await headers(client, Role.STREET_WORKER))[1],
        "venue operator": (await headers(client, Role.VENUE_OPERATOR))[1],
        "anonymous": {},
    }
    for who, hdrs in allowed.items():
        response = await client.get(f"/api/v1/proposals/{proposal_id}", headers=hdrs)
        assert response.status_code == 200, who
        versions = await client.get(f"/api/v1/proposals/{proposal_id}/versions", headers=hdrs)
        assert versions.status_code == 200, who
    for who, hdrs in refused.items():
        response = await client.get(f"/api/v1/proposals/{proposal_id}", headers=hdrs)
        expected = 404
        assert response.status_code == expected, (who, response.text)
        versions = await client.get(f"/api/v1/proposals/{proposal_id}/versions", headers=hdrs)
        assert versions.status_code == expected, who
    # Listings follow the same rule.
    for who, hdrs in (("curator", curator), ("assigned judge", assigned_headers)):
        listing = await client.get(f"/api/v1/challenges/{challenge_id}/proposals", headers=hdrs)
        assert [p["id"] for p in listing.json()["items"]] == [proposal_id], who
    for hdrs in (conflicted_headers, other_vendor):
        listing = await client.get(f"/api/v1/challenges/{challenge_id}/proposals", headers=hdrs)
        assert listing.json()["items"] == []
    # A proposal that does not exist answers the same.
    assert (await client.get("/api/v1/proposals/nope", headers=curator)).status_code == 404


# --- judging and results -----------------------------------------------------------------------


def test_weighted_total():
    assert weighted_total(RUBRIC, {"可行性": 90, "创新性": 80, "成本": 70}) == 81.0


async def test_the_whole_chain_to_a_public_result(client, ctx):
    campaign, challenge_id, curator, admin, items = await published_challenge(
        client, ctx, deadline_days=1
    )
    resident, resident_headers = await headers(client, Role.RESIDENT)
    # A resident follows a pain point before the award (publication already happened).
    assert (
        await client.post(
            f"/api/v1/pain-points/{items[0].public_id}/follow", headers=resident_headers
        )
    ).status_code == 204
    winner_vendor, winner = await make_vendor(client)
    loser_vendor, loser = await make_vendor(client)
    url = f"/api/v1/challenges/{challenge_id}/proposals"
    winner_id = (await client.post(url, headers=winner, json=proposal_body(submit=True))).json()[
        "id"
    ]
    loser_id = (
        await client.post(url, headers=loser, json=proposal_body(title="人工巡查方案", submit=True))
    ).json()["id"]
    judge_a, judge_a_headers = await headers(client, Role.JUDGE)
    judge_b, judge_b_headers = await headers(client, Role.JUDGE)
    for judge in (judge_a, judge_b):
        await client.post(
            f"/api/v1/challenges/{challenge_id}/judges",
            headers=curator,
            json={"user_id": judge.public_id},
        )
    scores_a = {"scores": {"可行性": 90, "创新性": 80, "成本": 70}, "overall_comment": "可行"}
    early = await client.put(
        f"/api/v1/proposals/{winner_id}/score", headers=judge_a_headers, json=scores_a
    )
    assert early.status_code == 409 and early.json()["error"]["code"] == "judging_not_open"
    ctx.clock.advance(86400 + 1)
    incomplete = await client.put(
        f"/api/v1/proposals/{winner_id}/score",
        headers=judge_a_headers,
        json={"scores": {"可行性": 90, "颜值": 10}},
    )
    assert incomplete.status_code == 400
    assert set(incomplete.json()["error"]["fields"]) == {
        "scores.创新性",
        "scores.成本",
        "scores.颜值",
    }
    out_of_range = await client.put(
        f"/api/v1/proposals/{winner_id}/score",
        headers=judge_a_headers,
        json={"scores": {"可行性": 190, "创新性": 1, "成本": 1}},
    )
    assert out_of_range.status_code == 400
    assert (
        await client.put(
            f"/api/v1/proposals/{winner_id}/score", headers=judge_a_headers, json=scores_a
        )
    ).status_code == 204
    # Judge B cannot see A's scores before scoring.
    hidden = await client.get(f"/api/v1/proposals/{winner_id}/scores", headers=judge_b_headers)
    assert hidden.json()["scores"] == [] and hidden.json()["others_hidden"] is True
    assert hidden.json()["aggregate"] is None
    await client.put(
        f"/api/v1/proposals/{winner_id}/score",
        headers=judge_b_headers,
        json={"scores": {"可行性": 70, "创新性": 60, "成本": 50}},
    )
    board = (
        await client.get(f"/api/v1/proposals/{winner_id}/scores", headers=judge_b_headers)
    ).json()
    assert board["others_hidden"] is False
    assert sorted(s["total"] for s in board["scores"]) == [61.0, 81.0]
    assert board["aggregate"] == 71.0
    curator_board = (
        await client.get(f"/api/v1/proposals/{winner_id}/scores", headers=curator)
    ).json()
    assert curator_board["aggregate"] == 71.0
    assert (
        await client.get(f"/api/v1/proposals/{winner_id}/scores", headers=winner)
    ).status_code == 403
    # Decisions: award needs the shortlist first; decline needs feedback.
    assert (
        await client.post(f"/api/v1/proposals/{winner_id}/award", headers=curator, json={})
    ).status_code == 409
    assert (
        await client.post(f"/api/v1/proposals/{winner_id}/shortlist", headers=curator, json={})
    ).json()["status"] == "shortlisted"
    awarded = await client.post(
        f"/api/v1/proposals/{winner_id}/award", headers=curator, json={"feedback": "方案完整可行"}
    )
    assert awarded.json()["status"] == "awarded"
    no_feedback = await client.post(
        f"/api/v1/proposals/{loser_id}/decline", headers=curator, json={}
    )
    assert no_feedback.status_code == 400
    declined = await client.post(
        f"/api/v1/proposals/{loser_id}/decline",
        headers=curator,
        json={"feedback": "成本过高，建议结合现有设施"},
    )
    assert declined.json()["status"] == "declined"
    # The vendor sees the decision and its feedback.
    mine = (await client.get("/api/v1/me/proposals", headers=loser)).json()["items"]
    assert mine[0]["decision_feedback"] == "成本过高，建议结合现有设施"
    # The public result links the solution back to its pain points.
    result = await client.get(f"/api/v1/challenges/{challenge_id}/results")
    assert result.status_code == 200
    body = result.json()
    assert [a["proposal_id"] for a in body["awarded"]] == [winner_id]
    assert body["awarded"][0]["vendor_name"] == winner_vendor.name
    assert body["awarded"][0]["aggregate"] == 71.0
    assert body["proposals_received"] == 2
    assert {p["id"] for p in body["challenge"]["pain_points"]} == {i.public_id for i in items}
    # The follower is told about the award (once), the vendors about their decisions.
    notes = (await client.get("/api/v1/me/notifications", headers=resident_headers)).json()
    kinds = [n["kind"] for n in notes["items"]]
    assert kinds.count("challenge_awarded") == 1
    winner_notes = (await client.get("/api/v1/me/notifications", headers=winner)).json()
    assert {n["kind"] for n in winner_notes["items"]} >= {
        "proposal_shortlisted",
        "proposal_awarded",
    }
    assert winner_vendor.name not in str(await AuditEntry.all().values_list("detail", flat=True))


async def test_followers_are_told_when_the_challenge_is_published(client, ctx):
    now = ctx.clock.now()
    campaign = await make_campaign(now)
    item = await make_pain_point(campaign, title="公厕难找")
    follower, follower_headers = await headers(client, Role.RESIDENT)
    await client.post(f"/api/v1/pain-points/{item.public_id}/follow", headers=follower_headers)
    _, curator = await headers(client, Role.CURATOR)
    _, admin = await headers(client, Role.BUREAU_ADMIN)
    cid = (
        await client.post(
            f"/api/v1/campaigns/{campaign.public_id}/challenges",
            headers=curator,
            json=challenge_body([item], now + timedelta(days=3)),
        )
    ).json()["id"]
    await client.post(f"/api/v1/challenges/{cid}/submit-for-review", headers=curator)
    await client.post(f"/api/v1/challenges/{cid}/publish", headers=admin)
    notes = (await client.get("/api/v1/me/notifications", headers=follower_headers)).json()
    assert notes["unread"] == 1
    note = notes["items"][0]
    assert note["kind"] == "challenge_published"
    assert note["link"] == f"/api/v1/challenges/{cid}"
    assert (
        await client.post(f"/api/v1/me/notifications/{note['id']}/read", headers=follower_headers)
    ).status_code == 204
    assert (await client.get("/api/v1/me/notifications", headers=follower_headers)).json()[
        "unread"
    ] == 0
    assert await Notification.filter(kind="challenge_published").count() == 1


async def test_conflicted_judge_cannot_score_and_loses_earlier_scores(client, ctx):
    _, challenge_id, curator, _, _ = await published_challenge(client, ctx, deadline_days=1)
    vendor, vendor_headers = await make_vendor(client)
    pid = (
        await client.post(
            f"/api/v1/challenges/{challenge_id}/proposals",
            headers=vendor_headers,
            json=proposal_body(submit=True),
        )
    ).json()["id"]
    judge, judge_headers = await headers(client, Role.JUDGE)
    await client.post(
        f"/api/v1/challenges/{challenge_id}/judges",
        headers=curator,
        json={"user_id": judge.public_id},
    )
    ctx.clock.advance(86400 + 1)
    body = {"scores": {"可行性": 50, "创新性": 50, "成本": 50}}
    assert (
        await client.put(f"/api/v1/proposals/{pid}/score", headers=judge_headers, json=body)
    ).status_code == 204
    await client.post(
        f"/api/v1/challenges/{challenge_id}/conflicts",
        headers=judge_headers,
        json={"vendor_id": vendor.public_id},
    )
    assert (
        await client.put(f"/api/v1/proposals/{pid}/score", headers=judge_headers, json=body)
    ).status_code == 404
    board = (await client.get(f"/api/v1/proposals/{pid}/scores", headers=curator)).json()
    assert board["judges_scored"] == 0
    judges = (
        await client.get(f"/api/v1/challenges/{challenge_id}/judges", headers=curator)
    ).json()["items"]
    assert judges[0]["conflicts"] == [vendor.public_id]
    not_a_judge = await make_user(Role.CURATOR)
    refused = await client.post(
        f"/api/v1/challenges/{challenge_id}/judges",
        headers=curator,
        json={"user_id": not_a_judge.public_id},
    )
    assert refused.status_code == 400


async def test_scheduled_close_of_submissions_is_recorded_once(client, ctx):
    _, challenge_id, _, _, _ = await published_challenge(client, ctx, deadline_days=1)
    from crowdsource.challenges.curation import close_due_submissions

    assert await close_due_submissions(ctx=ctx) == 0
    ctx.clock.advance(86400 + 1)
    assert await close_due_submissions(ctx=ctx) == 1
    assert await close_due_submissions(ctx=ctx) == 0
    challenge = await Challenge.get(public_id=challenge_id)
    assert challenge.submissions_closed_at is not None
    shown = (await client.get(f"/api/v1/challenges/{challenge_id}")).json()
    assert shown["submissions_open"] is False


@pytest.mark.parametrize(
    "role",
    [Role.RESIDENT, Role.VENDOR, Role.JUDGE, Role.STREET_WORKER, Role.VENUE_OPERATOR],
    ids=str,
)
async def test_curation_is_for_curators(client, ctx, role):
    campaign = await make_campaign(ctx.clock.now())
    item = await make_pain_point(campaign, title="公厕难找")
    _, hdrs = await headers(client, role)
    response = await client.post(
        f"/api/v1/campaigns/{campaign.public_id}/challenges",
        headers=hdrs,
        json=challenge_body([item], ctx.clock.now() + timedelta(days=3)),
    )
    assert response.status_code == 403


async def test_complaint_to_solution_end_to_end_through_the_api(client, ctx):
    """Campaign → pain points → moderation → votes → challenge → booklet → proposal → award."""
    from tests.crowdsource_helpers import create_campaign, submit

    _, curator = await headers(client, Role.CURATOR)
    _, admin = await headers(client, Role.BUREAU_ADMIN)
    campaign = await create_campaign(client, curator, ctx)
    campaign_id = campaign["id"]
    residents = [(await headers(client, Role.RESIDENT))[1] for _ in range(3)]
    toilet = await submit(
        client,
        residents[0],
        campaign_id,
        title="公厕难找",
        description="在城区里找不到开放的公厕，地图上也查不到。",
        category="public_toilet",
    )
    junk = await submit(
        client,
        residents[1],
        campaign_id,
        title="测试内容",
        description="这是一条与城市无关的测试内容。",
        category="other",
    )
    for item, decision in ((toilet, "valid"), (junk, "invalid")):
        body = {"decision": decision, "reason": "" if decision == "valid" else "与城市治理无关"}
        moderated = await client.post(
            f"/api/v1/pain-points/{item['id']}/moderation", headers=curator, json=body
        )
        assert moderated.status_code == 200, moderated.text
    for resident in residents:
        voted = await client.post(f"/api/v1/pain-points/{toilet['id']}/vote", headers=resident)
        assert voted.status_code == 201, voted.text
    await client.post(f"/api/v1/pain-points/{toilet['id']}/follow", headers=residents[0])

    # Voting and collecting end; curation begins.
    ctx.clock.advance(49 * 3600)
    shortlist_url = f"/api/v1/campaigns/{campaign_id}/shortlist"
    assert (
        await client.post(shortlist_url, headers=curator, json={"pain_point_id": junk["id"]})
    ).status_code == 400
    assert (
        await client.post(shortlist_url, headers=curator, json={"pain_point_id": toilet["id"]})
    ).status_code == 204
    deadline = ctx.clock.now() + timedelta(days=7)
    body = challenge_body([], deadline, category="public_toilet", pain_point_ids=[toilet["id"]])
    created = await client.post(
        f"/api/v1/campaigns/{campaign_id}/challenges", headers=curator, json=body
    )
    assert created.status_code == 201, created.text
    challenge_id = created.json()["id"]
    assert created.json()["pain_points"][0]["votes"] == 3
    await client.post(f"/api/v1/challenges/{challenge_id}/submit-for-review", headers=curator)
    assert (
        await client.post(f"/api/v1/challenges/{challenge_id}/publish", headers=admin)
    ).status_code == 200
    booklet_html = await client.get(f"/api/v1/campaigns/{campaign_id}/booklet")
    assert "公厕快速查找与导引" in booklet_html.text and "公厕难找（3 票）" in booklet_html.text
    pdf = await client.get(f"/api/v1/campaigns/{campaign_id}/booklet.pdf")
    assert "公厕快速查找与导引" in PdfReader(io.BytesIO(pdf.content)).pages[2].extract_text()

    vendor, vendor_headers = await make_vendor(client)
    proposal = await client.post(
        f"/api/v1/challenges/{challenge_id}/proposals",
        headers=vendor_headers,
        json=proposal_body(submit=True),
    )
    proposal_id = proposal.json()["id"]
    judge, judge_headers = await headers(client, Role.JUDGE)
    await client.post(
        f"/api/v1/challenges/{challenge_id}/judges",
        headers=curator,
        json={"user_id": judge.public_id},
    )
    ctx.clock.advance(7 * 86400 + 1)
    scored = await client.put(
        f"/api/v1/proposals/{proposal_id}/score",
        headers=judge_headers,
        json={"scores": {"可行性": 80, "创新性": 70, "成本": 90}},
    )
    assert scored.status_code == 204
    await client.post(f"/api/v1/proposals/{proposal_id}/shortlist", headers=curator, json={})
    await client.post(f"/api/v1/proposals/{proposal_id}/award", headers=curator, json={})
    result = (await client.get(f"/api/v1/challenges/{challenge_id}/results")).json()
    assert result["awarded"][0]["vendor_name"] == vendor.name
    assert result["awarded"][0]["aggregate"] == 80.0
    assert result["challenge"]["pain_points"][0]["id"] == toilet["id"]
    kinds = {
        n["kind"]
        for n in (await client.get("/api/v1/me/notifications", headers=residents[0])).json()[
            "items"
        ]
    }
    assert {"challenge_published", "challenge_awarded"} <= kinds


async def test_judges_never_see_drafts_or_withdrawn_proposals(client, ctx):
    _, challenge_id, curator, _, _ = await published_challenge(client, ctx)
    _, vendor_headers = await make_vendor(client)
    judge, judge_headers = await headers(client, Role.JUDGE)
    await client.post(
        f"/api/v1/challenges/{challenge_id}/judges",
        headers=curator,
        json={"user_id": judge.public_id},
    )
    created = await client.post(
        f"/api/v1/challenges/{challenge_id}/proposals",
        headers=vendor_headers,
        json=proposal_body(),
    )
    proposal_id = created.json()["id"]
    listing = f"/api/v1/challenges/{challenge_id}/proposals"

    async def judge_sees() -> tuple[int, int, list]:
        one = await client.get(f"/api/v1/proposals/{proposal_id}", headers=judge_headers)
        versions = await client.get(
            f"/api/v1/proposals/{proposal_id}/versions", headers=judge_headers
        )
        items = (await client.get(listing, headers=judge_headers)).json()["items"]
        return one.status_code, versions.status_code, items

    assert await judge_sees() == (404, 404, [])  # a draft
    await client.post(f"/api/v1/proposals/{proposal_id}/submit", headers=vendor_headers)
    status, _, items = await judge_sees()
    assert status == 200 and [p["id"] for p in items] == [proposal_id]
    await client.post(f"/api/v1/proposals/{proposal_id}/withdraw", headers=vendor_headers)
    assert await judge_sees() == (404, 404, [])  # withdrawn


def test_submissions_are_closed_by_a_scheduled_job(app):
    jobs = app.ctx.jobs
    assert "challenges.close_submissions" in jobs.specs
    assert jobs.specs["challenges.close_submissions"].seconds <= 60


async def test_a_decline_needs_feedback_whoever_asks(ctx):
    """The rule lives in ``judging.decide``: the API and the console both reach it."""
    curator = await make_user(Role.CURATOR)
    for blank in ("", "   "):
        with pytest.raises(ValidationFailed) as refused:
            await judging.decide(
                ctx=ctx,
                actor=Principal(user_id=curator.public_id, role=Role.CURATOR),
                public_id="nope",
                outcome=ProposalStatus.DECLINED,
                feedback=blank,
            )
        assert "feedback" in refused.value.fields
