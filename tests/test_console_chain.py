"""A campaign from creation to awards in the console, as a new bureau user would run it.

Staff, vendors and judges act only through console pages: each form is read from the page that
offers it (its hidden fields, defaults, checked boxes and the button pressed) and posted with the
session cookie and CSRF token, as a browser would post it. Residents use the mini-program, so their
pain points and votes go through the public JSON API. The app clock moves the campaign through its
phases (the console sessions expire with it, so each actor signs in again after a move). Each step
is checked in the database or on the page that follows.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timedelta
from html.parser import HTMLParser

import httpx
import pytest
from stdnum.cn import uscc

from backend.clock import SHANGHAI
from backend.models import Role, User
from backend.security import hash_password
from crowdsource import similar_index
from crowdsource.challenges.models import (
    Challenge,
    ChallengeSource,
    ChallengeStatus,
    JudgeAssignment,
    Proposal,
    ProposalStatus,
    Score,
    Vendor,
    VendorStatus,
)
from crowdsource.models import Campaign, ModerationPolicy, PainPoint, Status, Vote
from crowdsource.schemas import DEFAULT_CATEGORIES
from tests.console_helpers import console_login
from tests.console_world import PASSWORD
from tests.crowdsource_helpers import many_headers, submit

# -- reading forms from pages ------------------------------------------------------------------


class _Forms(HTMLParser):
    """Every <form> of a page: action, fields as a browser would send them, submit buttons."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []
        self._form: dict | None = None
        self._select: str | None = None
        self._options: list[tuple[str, bool]] = []
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = {"action": a.get("action", ""), "fields": [], "buttons": []}
            self.forms.append(self._form)
            return
        if self._form is None:
            return
        name = a.get("name")
        if tag == "input" and name:
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self._form["fields"].append((name, a.get("value", "on")))
                self._form.setdefault("choices", []).append((name, a.get("value", "on")))
            elif kind == "submit":
                self._form["buttons"].append((name, a.get("value", "")))
            else:
                self._form["fields"].append((name, a.get("value", "")))
        elif tag == "button" and a.get("type", "submit") == "submit":
            self._form["buttons"].append((name or "", a.get("value", "")))
        elif tag == "select" and name:
            self._select, self._options = name, []
        elif tag == "option" and self._select is not None:
            self._options.append((a.get("value", ""), "selected" in a))
            self._form.setdefault("choices", []).append((self._select, a.get("value", "")))
        elif tag == "textarea" and name:
            self._textarea, self._text = name, ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if self._form is None:
            return
        if tag == "select" and self._select is not None:
            chosen = [v for v, s in self._options if s] or [v for v, _ in self._options[:1]]
            self._form["fields"] += [(self._select, v) for v in chosen]
            self._select = None
        elif tag == "textarea" and self._textarea is not None:
            self._form["fields"].append((self._textarea, self._text))
            self._textarea = None
        elif tag == "form":
            self._form = None


def _parse(html: str) -> list[dict]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def csrf_in(html: str) -> str:
    """The session's CSRF token, from any form of the page (or htmx's header settings)."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(
        r'"X-CSRF-Token": ?"([^"]+)"', html
    )
    assert found, html[:500]
    return found.group(1)


def form_on(html: str, action: str, *, having: tuple[str, str] | None = None) -> dict:
    found = [
        f
        for f in _parse(html)
        if f["action"] == action and (having is None or having in f["fields"])
    ]
    assert found, f"no form posting to {action} on the page"
    return found[0]


def choices_of(html: str, action: str, name: str) -> list[str]:
    """The values a form offers for a checkbox, radio or select field."""
    return [v for n, v in form_on(html, action).get("choices", []) if n == name]


async def post_form(
    client: httpx.AsyncClient,
    page: str,
    action: str,
    *,
    button: tuple[str, str] | None = None,
    having: tuple[str, str] | None = None,
    **values: str | list[str],
) -> httpx.Response:
    """Open ``page``, fill in its form for ``action`` (the one ``having`` that field, if given)
    and press ``button`` (which must exist)."""
    shown = await client.get(page)
    assert shown.status_code == 200, shown.text[-800:]
    form = form_on(shown.text, action, having=having)
    data: dict[str, list[str]] = {}
    for name, value in form["fields"]:
        data.setdefault(name, []).append(value)
    for name, value in values.items():
        data[name] = [value] if isinstance(value, str) else list(value)
    if button is not None:
        assert button in form["buttons"], (button, form["buttons"])
        data.setdefault(button[0], []).append(button[1])
    assert data.get("csrf_token"), "the form carries no CSRF token"
    return await client.post(action, data=data)


def followed(response: httpx.Response, to: str = "") -> str:
    """A change answered with 303 to the next page."""
    assert response.status_code == 303, response.text[-1500:]
    location = response.headers["location"]
    assert location.startswith(to), location
    return location


# -- actors ------------------------------------------------------------------------------------


@pytest.fixture
async def browsers(app) -> AsyncIterator[Callable[[], httpx.AsyncClient]]:
    """A fresh browser (its own cookie jar) per actor and sign-in."""
    opened: list[httpx.AsyncClient] = []

    def open_one() -> httpx.AsyncClient:
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
            base_url="http://testserver",
        )
        opened.append(client)
        return client

    yield open_one
    for client in opened:
        await client.aclose()


def local(moment: datetime) -> str:
    """A value for <input type="datetime-local"> (Beijing time)."""
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%dT%H:%M")


def credit_code(n: int) -> str:
    base = f"9134010{n:010d}"
    return base + uscc.calc_check_digit(base)


async def test_a_campaign_from_creation_to_awards_in_the_console(client, ctx, browsers) -> None:
    api = client  # the residents' mini-program and the public: JSON API only
    t0 = ctx.clock.now().astimezone(SHANGHAI).replace(second=0, microsecond=0)
    collecting = t0 + timedelta(hours=1)
    voting = t0 + timedelta(days=3)
    curating = t0 + timedelta(days=5)
    closes = t0 + timedelta(days=20)
    deadline = t0 + timedelta(days=8)

    async def sign_in(username: str) -> httpx.AsyncClient:
        browser = browsers()
        signed = await console_login(browser, username)
        assert signed.status_code == 303, signed.text[-500:]
        return browser

    # The first bureau account exists (installation); everything else is made in the console.
    await User.create(
        role=Role.BUREAU_ADMIN,
        username="chain_admin",
        display_name="数据资源局",
        password_hash=hash_password(PASSWORD),
    )
    admin = await sign_in("chain_admin")
    for username, role, name in (
        ("chain_curator", Role.CURATOR, "策展人小李"),
        ("chain_judge", Role.JUDGE, "评委王教授"),
    ):
        created = await post_form(
            admin,
            "/console/admin/users",
            "/console/admin/users",
            username=username,
            display_name=name,
            password=PASSWORD,
            role=role.value,
        )
        followed(created, "/console/admin/users")
    assert await User.filter(username="chain_curator", role=Role.CURATOR).exists()
    judge_user = await User.get(username="chain_judge", role=Role.JUDGE)

    # 1. The curator creates the campaign: its phases and the audiences invited.
    curator = await sign_in("chain_curator")
    schedule = {
        "collecting_starts_at": local(collecting),
        "collecting_ends_at": local(voting),
        "voting_starts_at": local(voting),
        "voting_ends_at": local(curating),
        "closes_at": local(closes - timedelta(days=5)),
    }
    created = await post_form(
        curator,
        "/console/campaigns/new",
        "/console/campaigns/",
        title="2027 年包河区城市痛难点征集",
        description="说出你身边的难题",
        audiences=["resident", "enterprise"],
        vote_budget="3",
        **schedule,
    )
    campaign_page = followed(created, "/console/campaigns/")
    campaign_id = campaign_page.rsplit("/", 1)[1]
    # The phases are edited on the campaign's page: the campaign now closes later.
    saved = await post_form(
        curator, campaign_page, campaign_page, closes_at=local(closes), submission_cap="5"
    )
    followed(saved, campaign_page)
    campaign = await Campaign.get(public_id=campaign_id)
    assert campaign.title == "2027 年包河区城市痛难点征集"
    assert campaign.closes_at == closes and campaign.voting_starts_at == voting
    assert sorted(campaign.audiences) == ["enterprise", "resident"]
    assert campaign.vote_budget == 3
    assert campaign.moderation == ModerationPolicy.PRE  # the form's default, 先审后发
    assert [c["code"] for c in campaign.categories] == [c for c, _ in DEFAULT_CATEGORIES]
    shown = await curator.get(campaign_page)
    assert 'class="current" aria-current="step"><strong>筹备' in shown.text
    assert "已保存" in shown.text

    # 2. Collecting: residents submit through the mini-program's API.
    ctx.clock.set(collecting + timedelta(minutes=5))
    residents = await many_headers(ctx, 5)
    texts = {
        "parking": ("小区门口晚上停车太难", "小区门口晚上停车位严重不足，回家找不到车位"),
        "parking_again": ("小区门口夜间停车位严重不足", "小区门口晚上停车位严重不足，找不到车位"),
        "parking_third": ("小区门口晚上停车难", "小区门口晚上停车位严重不足，每天找不到车位"),
        "lift": ("老旧小区加装电梯进度太慢", "老旧小区加装电梯审批和施工进度太慢，老人上下楼难"),
        "spam": ("加微信领红包", "加微信领红包，转发有奖，名额有限先到先得"),
    }
    ids: dict[str, str] = {}
    for (key, (title, description)), headers in zip(texts.items(), residents, strict=True):
        category = "elderly_care" if key == "lift" else "parking"
        made = await submit(
            api,
            headers,
            campaign_id,
            title=title,
            description=description,
            category=category if key != "spam" else "other",
        )
        ids[key] = made["id"]
    assert await PainPoint.filter(campaign_id=campaign.id, status=Status.SUBMITTED).count() == 5
    public_list = f"/api/v1/campaigns/{campaign_id}/pain-points"
    assert (await api.get(public_list)).json()["items"] == []  # nothing public before review

    # 3. Moderation in the console: valid, invalid with a reason, duplicate, merge.
    curator = await sign_in("chain_curator")
    queue = f"/console/moderation?campaign={campaign_id}"
    shown = await curator.get(queue)
    for title, _ in texts.values():
        assert title in shown.text

    async def decide(key: str, decision: str, **values: str) -> None:
        action = f"/console/moderation/{ids[key]}"
        response = await post_form(curator, queue, action, button=("decision", decision), **values)
        followed(response, "/console/moderation")

    await decide("parking", "valid")
    await decide("lift", "valid")
    await decide("spam", "invalid", reason="广告信息")
    await similar_index.sync(ctx, refresh=True)  # the services profile's suggestions
    shown = await curator.get(queue)
    for key, decision in (("parking_again", "duplicate"), ("parking_third", "merge")):
        action = f"/console/moderation/{ids[key]}"
        # The page suggests the valid item as similar, side by side.
        assert ids["parking"] in choices_of(shown.text, action, "target"), key
        await decide(key, decision, target=ids["parking"])
        shown = await curator.get(queue)
    assert "队列已清空" in shown.text
    statuses = dict(
        await PainPoint.filter(campaign_id=campaign.id).values_list("public_id", "status")
    )
    assert statuses[ids["parking"]] == Status.VALID
    assert statuses[ids["lift"]] == Status.VALID
    assert statuses[ids["spam"]] == Status.INVALID
    assert statuses[ids["parking_again"]] == Status.DUPLICATE
    assert statuses[ids["parking_third"]] == Status.DUPLICATE
    spam = await PainPoint.get(public_id=ids["spam"])
    assert spam.moderation_reason == "广告信息"
    again = await PainPoint.get(public_id=ids["parking_again"]).select_related("duplicate_of")
    assert again.duplicate_of is not None and again.duplicate_of.public_id == ids["parking"]
    listed_now = {p["id"] for p in (await api.get(public_list)).json()["items"]}
    assert listed_now == {ids["parking"], ids["lift"]}

    # 4. Voting: residents vote through the API; the dashboard shows the counts and the ranking.
    ctx.clock.set(voting + timedelta(minutes=5))
    for n, headers in enumerate(residents):
        for key in ("parking",) if n >= 3 else ("parking", "lift"):
            cast = await api.post(f"/api/v1/pain-points/{ids[key]}/vote", headers=headers)
            assert cast.status_code == 201, cast.text
    assert await Vote.filter(pain_point__campaign_id=campaign.id).count() == 8
    curator = await sign_in("chain_curator")
    board = await curator.get(f"/console/dashboard?campaign={campaign_id}")
    assert board.status_code == 200
    assert "有效 <strong>2</strong>" in board.text
    assert "投票 <strong>8</strong> 票，来自 5 人" in board.text
    ranking = board.text.split("<td>1</td>", 1)[1]
    assert ranking.startswith('<td>小区门口晚上停车太难</td><td class="num">5</td>'), ranking[:200]
    data = (await curator.get(f"/console/dashboard/data.json?campaign={campaign_id}")).json()
    assert [(t["title"], t["votes"]) for t in data["top"]][:2] == [
        ("小区门口晚上停车太难", 5),
        ("老旧小区加装电梯进度太慢", 3),
    ]

    # 5. After voting: the curation board, a challenge from pain points, review, publication.
    ctx.clock.set(curating + timedelta(hours=1))
    curator = await sign_in("chain_curator")
    board_page = f"/console/challenges?campaign={campaign_id}"
    listed = await post_form(
        curator,
        board_page,
        "/console/challenges/shortlist",
        having=("pain_point", ids["parking"]),  # the row of the most voted pain point
        button=("action", "add"),
        note="票数最高",
    )
    followed(listed, board_page)
    shown = await curator.get(board_page)
    assert "候选清单（1）" in shown.text
    new_page = f"/console/challenges/new?campaign={campaign_id}&pain_point={ids['parking']}"
    offered = choices_of(
        (await curator.get(new_page)).text, "/console/challenges/new", "pain_point_ids"
    )
    assert {ids["parking"], ids["lift"]} <= set(offered)
    drafted = await post_form(
        curator,
        new_page,
        "/console/challenges/new",
        title="老旧小区夜间停车智能调度",
        category="parking",
        problem_statement="老旧小区夜间停车位严重不足，居民回家找不到车位，占道停车引发纠纷。",
        owning_department="包河区城管局",
        prize="优秀方案给予试点机会",
        submission_deadline=local(deadline),
    )
    challenge_page = followed(drafted, "/console/challenges/")
    challenge_id = challenge_page.rsplit("/", 1)[1]
    challenge = await Challenge.get(public_id=challenge_id)
    assert challenge.status == ChallengeStatus.DRAFT
    sources = await ChallengeSource.filter(challenge=challenge).values_list(
        "pain_point__public_id", flat=True
    )
    assert list(sources) == [ids["parking"]]  # the one chosen from the shortlist
    assert [c["criterion"] for c in challenge.rubric] == ["可行性", "创新性", "成本"]
    reviewed = await post_form(
        curator, challenge_page, f"/console/challenges/{challenge_id}/review"
    )
    followed(reviewed, challenge_page)
    await challenge.refresh_from_db()
    assert challenge.status == ChallengeStatus.IN_REVIEW
    admin = await sign_in("chain_admin")
    published = await post_form(
        admin, challenge_page, f"/console/challenges/{challenge_id}/publish"
    )
    followed(published, challenge_page)
    await challenge.refresh_from_db()
    assert challenge.status == ChallengeStatus.PUBLISHED and challenge.number

    # 6. Vendors register (credit code checked), the admin verifies them, they propose.
    vendors: dict[str, str] = {}
    for n, (company, username) in enumerate(
        (("合肥智泊科技有限公司", "zhibo"), ("合肥停车云有限公司", "tingcheyun")), start=1
    ):
        visitor = browsers()
        fields = {
            "company_name": company,
            "contact_name": "王经理",
            "contact_phone": "13800138000",
            "username": username,
            "password": PASSWORD,
        }
        refused = await post_form(
            visitor,
            "/console/vendor/register",
            "/console/vendor/register",
            uscc=credit_code(n)[:-1] + ("0" if credit_code(n)[-1] != "0" else "1"),
            **fields,
        )
        assert refused.status_code == 400
        assert 'id="e-uscc"' in refused.text
        registered = await post_form(
            visitor,
            "/console/vendor/register",
            "/console/vendor/register",
            uscc=credit_code(n),
            **fields,
        )
        assert registered.status_code == 200 and "等待数据资源局审核" in registered.text
        vendor = await Vendor.get(uscc=credit_code(n))
        assert vendor.status == VendorStatus.PENDING
        vendors[username] = vendor.public_id
        member = await sign_in(username)
        proposal_page = f"/console/vendor/challenges/{challenge_id}"
        proposal_fields = {
            "title": f"{company}：夜间错峰共享停车",
            "summary": "利用周边单位夜间空闲车位错峰共享",
            "body": "方案正文：对接周边写字楼与学校的夜间空闲车位，小程序预约，按时计费。",
        }
        early = await post_form(
            member, proposal_page, proposal_page, button=("action", "submit"), **proposal_fields
        )
        assert early.status_code == 422 and "企业通过审核后才能提交方案" in early.text
        verified = await post_form(
            admin,
            "/console/vendors?status=pending",
            f"/console/vendors/{vendor.public_id}",
            button=("action", "verify"),
        )
        followed(verified, "/console/vendors")
        await vendor.refresh_from_db()
        assert vendor.status == VendorStatus.VERIFIED

        home = await member.get("/console/vendor")
        assert company in home.text and "老旧小区夜间停车智能调度" in home.text
        assert proposal_page in home.text
        sent = await post_form(
            member, proposal_page, proposal_page, button=("action", "submit"), **proposal_fields
        )
        followed(sent, proposal_page)
        proposal = await Proposal.get(vendor=vendor, challenge=challenge)
        assert proposal.status == ProposalStatus.SUBMITTED
    assert await Proposal.filter(challenge=challenge).count() == 2

    # 7. After the deadline: no more revisions; a judge assigned, a conflict declared, scores,
    # the award.
    ctx.clock.set(deadline + timedelta(hours=1))
    member = await sign_in("zhibo")
    proposal_page = f"/console/vendor/challenges/{challenge_id}"
    closed = await member.get(proposal_page)
    assert "提交已截止" in closed.text
    assert not [f for f in _parse(closed.text) if f["action"] == proposal_page]  # no form
    # A form left open in a tab since before the deadline is refused by the service.
    late = await member.post(
        proposal_page,
        data={"csrf_token": csrf_in(closed.text), "action": "submit", "title": "迟到的修改"}
        | {"summary": "迟到", "body": "截止后提交的修改，应被拒绝。"},
    )
    assert late.status_code == 409 and "方案提交已截止" in late.text
    assert not await Proposal.filter(title="迟到的修改").exists()
    curator = await sign_in("chain_curator")
    judging_page = f"/console/judging/{challenge_id}"
    shown = await curator.get(judging_page)
    offered = choices_of(shown.text, f"/console/judging/{challenge_id}/judges", "judge")
    assert judge_user.public_id in offered
    assigned = await post_form(
        curator,
        judging_page,
        f"/console/judging/{challenge_id}/judges",
        judge=judge_user.public_id,
    )
    followed(assigned, judging_page)
    assert await JudgeAssignment.filter(challenge=challenge, judge=judge_user).exists()

    judge = await sign_in("chain_judge")
    assert "老旧小区夜间停车智能调度" in (await judge.get("/console/judging")).text
    shown = await judge.get(judging_page)
    conflicts = f"/console/judging/{challenge_id}/conflicts"
    assert vendors["tingcheyun"] in choices_of(shown.text, conflicts, "vendor")
    declared = await post_form(
        judge, judging_page, conflicts, vendor=vendors["tingcheyun"], reason="曾任该企业顾问"
    )
    followed(declared, judging_page)
    shown = await judge.get(judging_page)
    assert "合肥智泊科技有限公司" in shown.text
    assert "合肥停车云有限公司：" not in shown.text  # its proposal is no longer shown to the judge
    proposal = await Proposal.get(challenge=challenge, vendor__public_id=vendors["zhibo"])
    other = await Proposal.get(challenge=challenge, vendor__public_id=vendors["tingcheyun"])
    assert (await judge.get(f"/console/proposals/{other.public_id}")).status_code in (403, 404)
    proposal_page = f"/console/proposals/{proposal.public_id}"
    scored = await post_form(
        judge,
        proposal_page,
        f"{proposal_page}/score",
        **{"score-可行性": "90", "score-创新性": "80", "score-成本": "70"},
        overall_comment="可行，建议先在两个小区试点",
    )
    followed(scored, proposal_page)
    score = await Score.get(proposal=proposal, judge=judge_user)
    assert score.scores == {"可行性": 90, "创新性": 80, "成本": 70}

    curator = await sign_in("chain_curator")
    shown = await curator.get(proposal_page)
    assert "已评评委 1 位" in shown.text and "<strong>81.00</strong>" in shown.text
    for outcome, status in (
        ("shortlist", ProposalStatus.SHORTLISTED),
        ("award", ProposalStatus.AWARDED),
    ):
        decided = await post_form(
            curator, proposal_page, f"{proposal_page}/decide", button=("outcome", outcome)
        )
        followed(decided, proposal_page)
        await proposal.refresh_from_db()
        assert proposal.status == status

    # The result is public, and the vendor sees it in its area.
    results = await api.get(f"/api/v1/challenges/{challenge_id}/results")
    assert results.status_code == 200, results.text
    body = results.json()
    assert body["proposals_received"] == 2
    assert [(a["vendor_name"], a["aggregate"]) for a in body["awarded"]] == [
        ("合肥智泊科技有限公司", 81.0)
    ]
    member = await sign_in("zhibo")
    mine = (await member.get("/console/vendor")).text
    assert '<span class="badge awarded">优秀解决方案</span>' in mine
