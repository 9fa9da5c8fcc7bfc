"""Vendors: registration with a checked credit code, the bureau's decisions, members, privacy."""

from __future__ import annotations

import itertools

import pytest
from stdnum.cn import uscc

from backend.models import AuditEntry, Role, User
from crowdsource.challenges.models import Vendor, VendorMember
from tests.factories import headers_for

_seq = itertools.count(1)


def credit_code() -> str:
    """A valid 18-character unified social credit code."""
    base = f"9134010{next(_seq):010d}"
    return base + uscc.calc_check_digit(base)


def registration(**changes: object) -> dict[str, object]:
    n = next(_seq)
    body: dict[str, object] = {
        "company_name": f"合肥示例智能科技有限公司{n}",
        "uscc": credit_code(),
        "contact_name": "王经理",
        "contact_phone": "13800138000",
        "contact_email": "bd@example.com",
        "username": f"vendor-owner-{n}",
        "password": "vendor-password-1",
    }
    body.update(changes)
    return body


async def register(client, **changes):
    return await client.post("/api/v1/vendors", json=registration(**changes))


async def login(client, username, password="vendor-password-1"):
    response = await client.post(
        "/api/v1/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['access_token']}"}


async def test_registration_creates_a_pending_vendor_and_its_owner(client):
    response = await register(client, username="acme-owner")
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "pending"
    assert body["members"][0]["username"] == "acme-owner"
    assert body["members"][0]["is_owner"] is True
    user = await User.get(username="acme-owner")
    assert user.role == Role.VENDOR
    assert await VendorMember.filter(user=user).count() == 1
    assert await AuditEntry.filter(action="vendor.register").count() == 1


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"uscc": "91340100MA2N0XXXX1"}, "uscc"),
        ({"uscc": "12345"}, "uscc"),
        ({"contact_phone": "call me"}, "contact_phone"),
        ({"contact_email": "not-an-email"}, "contact_email"),
        ({"password": "short"}, "password"),
        ({"company_name": ""}, "company_name"),
    ],
)
async def test_registration_validation_names_the_field(client, changes, field):
    response = await register(client, **changes)
    assert response.status_code == 400, response.text
    assert field in response.json()["error"]["fields"]
    assert await Vendor.all().count() == 0
    assert await User.filter(role=Role.VENDOR).count() == 0


async def test_credit_code_is_normalised_and_unique(client):
    code = credit_code()
    spaced = f"{code[:4]} {code[4:10]} {code[10:]}"
    first = await register(client, uscc=spaced)
    assert first.status_code == 201
    assert first.json()["uscc"] == code
    again = await register(client, uscc=code)
    assert again.status_code == 409
    assert again.json()["error"]["fields"] == {"uscc": "already registered"}
    assert await Vendor.all().count() == 1
    assert await User.filter(role=Role.VENDOR).count() == 1


async def test_taken_username_leaves_nothing_half_written(client):
    await register(client, username="taken-name")
    response = await register(client, username="taken-name")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "username_taken"
    assert await Vendor.all().count() == 1


async def test_bureau_verifies_and_suspends_with_audit(client):
    vendor_id = (await register(client)).json()["id"]
    admin = await headers_for(client, Role.BUREAU_ADMIN)
    verified = await client.post(f"/api/v1/vendors/{vendor_id}/verify", headers=admin, json={})
    assert verified.status_code == 200
    assert verified.json()["status"] == "verified"
    assert verified.json()["verified_at"]
    missing_reason = await client.post(
        f"/api/v1/vendors/{vendor_id}/suspend", headers=admin, json={}
    )
    assert missing_reason.status_code == 400
    assert "reason" in missing_reason.json()["error"]["fields"]
    suspended = await client.post(
        f"/api/v1/vendors/{vendor_id}/suspend", headers=admin, json={"reason": "资质材料不实"}
    )
    assert suspended.json()["status"] == "suspended"
    assert suspended.json()["status_reason"] == "资质材料不实"
    actions = await AuditEntry.filter(object_id=vendor_id).values_list("action", flat=True)
    assert set(actions) >= {"vendor.verified", "vendor.suspended"}
    assert (
        await client.post("/api/v1/vendors/nope/verify", headers=admin, json={})
    ).status_code == 404


@pytest.mark.parametrize("role", [r for r in Role if r != Role.BUREAU_ADMIN], ids=str)
async def test_only_the_bureau_admin_decides(client, role):
    vendor_id = (await register(client)).json()["id"]
    headers = await headers_for(client, role)
    response = await client.post(f"/api/v1/vendors/{vendor_id}/verify", headers=headers, json={})
    assert response.status_code == 403
    assert (await Vendor.get(public_id=vendor_id)).status == "pending"


async def test_members_share_the_vendor_once_verified(client):
    vendor_id = (await register(client, username="owner-a")).json()["id"]
    owner = await login(client, "owner-a")
    colleague = {"username": "colleague-a", "password": "colleague-pass-1", "display_name": "李工"}
    early = await client.post(f"/api/v1/vendors/{vendor_id}/members", headers=owner, json=colleague)
    assert early.status_code == 422
    assert early.json()["error"]["code"] == "vendor_not_verified"

    admin = await headers_for(client, Role.BUREAU_ADMIN)
    await client.post(f"/api/v1/vendors/{vendor_id}/verify", headers=admin, json={})
    added = await client.post(f"/api/v1/vendors/{vendor_id}/members", headers=owner, json=colleague)
    assert added.status_code == 201, added.text
    member = await login(client, "colleague-a", "colleague-pass-1")
    mine = await client.get("/api/v1/me/vendor", headers=member)
    assert mine.status_code == 200
    assert mine.json()["id"] == vendor_id
    assert {m["username"] for m in mine.json()["members"]} == {"owner-a", "colleague-a"}


async def test_vendors_cannot_see_or_manage_other_vendors(client):
    first = (await register(client, username="owner-b")).json()["id"]
    second = (await register(client, username="owner-c")).json()["id"]
    admin = await headers_for(client, Role.BUREAU_ADMIN)
    for vendor_id in (first, second):
        await client.post(f"/api/v1/vendors/{vendor_id}/verify", headers=admin, json={})
    owner_b = await login(client, "owner-b")
    assert (await client.get(f"/api/v1/vendors/{second}", headers=owner_b)).status_code == 404
    assert (await client.get(f"/api/v1/vendors/{first}", headers=owner_b)).status_code == 200
    body = {"username": "intruder", "password": "intruder-pass-1"}
    response = await client.post(f"/api/v1/vendors/{second}/members", headers=owner_b, json=body)
    assert response.status_code == 403
    assert not await User.filter(username="intruder").exists()


async def test_curators_see_masked_contacts_and_page_through(client):
    for _ in range(3):
        await register(client)
    curator = await headers_for(client, Role.CURATOR)
    first = await client.get("/api/v1/vendors?limit=2", headers=curator)
    assert first.status_code == 200
    page = first.json()
    assert len(page["items"]) == 2
    assert all(item["contact_phone"] == "138****8000" for item in page["items"])
    rest = await client.get(
        f"/api/v1/vendors?limit=2&cursor={page['next_cursor']}", headers=curator
    )
    assert len(rest.json()["items"]) == 1
    assert rest.json()["next_cursor"] is None
    ids = [i["id"] for i in page["items"]] + [i["id"] for i in rest.json()["items"]]
    assert len(set(ids)) == 3
    admin = await headers_for(client, Role.BUREAU_ADMIN)
    full = await client.get("/api/v1/vendors", headers=admin)
    assert all(item["contact_phone"] == "13800138000" for item in full.json()["items"])
    tampered = await client.get(
        f"/api/v1/vendors?cursor={page['next_cursor'][:-2]}xx", headers=curator
    )
    assert tampered.status_code == 400
    assert "cursor" in tampered.json()["error"]["fields"]
    other_scope = await client.get(
        f"/api/v1/vendors?status=verified&cursor={page['next_cursor']}", headers=curator
    )
    assert other_scope.status_code == 400


async def test_residents_cannot_list_vendors(client):
    resident = await headers_for(client, Role.RESIDENT)
    assert (await client.get("/api/v1/vendors", headers=resident)).status_code == 403
    assert (await client.get("/api/v1/vendors")).status_code == 401
