"""The vendor area: register a company (credit code checked), proposals with their versions,
edit until the deadline, results and feedback."""

from __future__ import annotations

from typing import Any

from sanic import Blueprint, Request
from sanic.response import HTTPResponse

from admin_console import session as sessions
from admin_console.forms import build
from admin_console.pages import VENDORS, Page, page
from backend.errors import ValidationFailed
from crowdsource.challenges import curation, proposals, service
from crowdsource.challenges.models import ChallengeStatus, Proposal
from crowdsource.challenges.presenters import challenge_out, proposal_out
from crowdsource.challenges.schemas import ChallengeListQuery, ProposalIn, VendorRegistration

bp = Blueprint("console_vendor", url_prefix="/console/vendor")


@bp.get("/register")
@page(public=True)
async def register_form(request: Request, page: Page) -> HTTPResponse:
    token = request.cookies.get(sessions.LOGIN_COOKIE) or sessions.new_token()
    response = page.render("vendor/register.html", values={}, errors={}, form_csrf=token, done=None)
    sessions.set_cookie(response, request, sessions.LOGIN_COOKIE, token)
    return response


@bp.post("/register")
@page(public=True)
async def register(request: Request, page: Page) -> HTTPResponse:
    """The API's registration (uscc checksum, unique code and username, rate limit)."""
    fields = (
        "company_name",
        "uscc",
        "contact_name",
        "contact_phone",
        "contact_email",
        "username",
        "password",
    )
    data = {name: page.form.get(name, "") for name in fields}
    body, errors = build(VendorRegistration, data)
    token = request.cookies.get(sessions.LOGIN_COOKIE, "")
    if body is not None:
        try:
            vendor = await service.register_vendor(
                ctx=page.ctx, data=body, client_ip=request.remote_addr or request.ip or "unknown"
            )
        except ValidationFailed as exc:
            errors = dict(exc.fields)
        else:
            return page.render(
                "vendor/register.html", values={}, errors={}, form_csrf=token, done=vendor
            )
    values = {k: v for k, v in data.items() if k != "password"}
    return page.render(
        "vendor/register.html", status=400, values=values, errors=errors, form_csrf=token, done=None
    )


@bp.get("/")
@page(read=VENDORS)
async def home(request: Request, page: Page) -> HTTPResponse:
    member = await service.membership_of(page.user.user_id)
    mine = await proposals.mine(actor=page.user)
    listing = await curation.list_challenges(
        ctx=page.ctx, viewer=page.user, query=ChallengeListQuery(limit=100)
    )
    now = page.ctx.clock.now()
    proposed = {p.challenge.public_id: p for p in mine}
    return page.render(
        "vendor/home.html",
        vendor=member.vendor if member else None,
        proposals=[proposal_out(p) for p in mine],
        challenges=listing.items,
        proposed=proposed,
        now=now,
    )


async def _own(page: Page, challenge_id: str) -> Proposal | None:
    member = await service.membership_of(page.user.user_id)
    if member is None:
        return None
    return (
        await Proposal.filter(challenge__public_id=challenge_id, vendor_id=member.vendor_id)
        .select_related("vendor", "challenge")
        .first()
    )


async def _proposal_page(
    page: Page,
    challenge_id: str,
    *,
    values: dict[str, Any] | None,
    errors: dict[str, str],
    status: int = 200,
) -> HTTPResponse:
    row = await curation.get_challenge(challenge_id, viewer=None)  # published only
    challenge = await challenge_out(row, now=page.ctx.clock.now())
    existing = await _own(page, challenge_id)
    out = proposal_out(existing) if existing else None
    if values is None:
        values = out.model_dump() if out else {}
    versions = (
        await proposals.versions(actor=page.user, public_id=existing.public_id) if existing else []
    )
    return page.render(
        "vendor/proposal.html",
        status=status,
        challenge=challenge,
        proposal=out,
        versions=versions,
        values=values,
        errors=errors,
    )


@bp.get("/challenges/<challenge_id:str>")
@page(read=VENDORS, write=VENDORS)
async def proposal(request: Request, page: Page, challenge_id: str) -> HTTPResponse:
    return await _proposal_page(page, challenge_id, values=None, errors={})


@bp.post("/challenges/<challenge_id:str>")
@page(read=VENDORS, write=VENDORS)
async def save(request: Request, page: Page, challenge_id: str) -> HTTPResponse:
    """Create or revise the vendor's proposal; "提交" submits a new version (until the deadline)."""
    form = page.form
    data = {
        "title": form.get("title", ""),
        "summary": form.get("summary", ""),
        "body": form.get("body", ""),
        "submit": form.get("action") == "submit",
    }
    body, errors = build(ProposalIn, data)
    if body is not None:
        existing = await _own(page, challenge_id)
        try:
            if existing is None:
                await proposals.create_proposal(
                    ctx=page.ctx, actor=page.user, challenge_id=challenge_id, data=body
                )
            else:
                await proposals.update_proposal(
                    ctx=page.ctx, actor=page.user, public_id=existing.public_id, data=body
                )
        except ValidationFailed as exc:
            errors = dict(exc.fields) or {"title": exc.message}
        else:
            message = (
                "方案已提交"
                if body.submit or (existing and existing.status.value == "submitted")
                else "草稿已保存"
            )
            return await page.redirect(f"/console/vendor/challenges/{challenge_id}", flash=message)
    return await _proposal_page(page, challenge_id, values=data, errors=errors, status=400)


@bp.post("/challenges/<challenge_id:str>/withdraw")
@page(read=VENDORS, write=VENDORS)
async def withdraw(request: Request, page: Page, challenge_id: str) -> HTTPResponse:
    existing = await _own(page, challenge_id)
    if existing is not None:
        await proposals.withdraw_proposal(
            ctx=page.ctx, actor=page.user, public_id=existing.public_id
        )
    return await page.redirect(f"/console/vendor/challenges/{challenge_id}", flash="方案已撤回")


PUBLISHED = ChallengeStatus.PUBLISHED
