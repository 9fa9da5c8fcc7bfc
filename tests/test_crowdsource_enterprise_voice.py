"""An enterprise voice comes only from a verified vendor membership, under its registered name.

Submissions and votes that count for the ``enterprise`` audience, through the API and Open311.
"""

from __future__ import annotations

from backend.models import Role
from crowdsource.challenges.models import Vendor, VendorStatus
from crowdsource.models import PainPoint, Vote
from tests.crowdsource_helpers import create_campaign, submit, token_headers, vendor_member
from tests.factories import make_user

FORM = "application/x-www-form-urlencoded"


async def _campaign(client, ctx, **fields):
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    campaign = await create_campaign(client, curator, ctx, submission_cap=20, **fields)
    return curator, campaign["id"]


def _refused(response, status: int, code: str, field: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and field in error["fields"], error


async def _post(client, headers, cid, **fields):
    body = {
        "title": "园区通勤班车太少",
        "description": "高新区园区早晚通勤班车太少，员工上下班很不方便",
        "category": "transport",
    } | fields
    return await client.post(f"/api/v1/campaigns/{cid}/pain-points", headers=headers, json=body)


async def test_a_resident_cannot_speak_as_an_enterprise(client, ctx):
    _, cid = await _campaign(client, ctx)
    resident = token_headers(ctx, await make_user(Role.RESIDENT))
    _, vendor = await vendor_member(ctx, name="合肥真实科技有限公司")  # verified, with a member
    for fields in (
        {"audience": "enterprise", "company_name": "随便写的公司"},
        {"audience": "enterprise", "company_name": vendor.name},  # a verified vendor's name
        {"audience": "enterprise"},
    ):
        _refused(await _post(client, resident, cid, **fields), 403, "not_vendor_member", "audience")
    # Vendor-role accounts without a membership and venue operators are not enterprises either.
    for role in (Role.VENDOR, Role.VENUE_OPERATOR):
        headers = token_headers(ctx, await make_user(role))
        _refused(await _post(client, headers, cid), 403, "not_vendor_member", "audience")
    assert await PainPoint.all().count() == 0
    # A resident still speaks as a resident, whatever company name it sends.
    item = await submit(client, resident, cid, company_name="随便写的公司")
    assert item["audience"] == "resident" and item["company_name"] is None


async def test_members_of_unverified_vendors_are_refused(client, ctx):
    _, cid = await _campaign(client, ctx)
    item = await submit(client, token_headers(ctx, await make_user(Role.RESIDENT)), cid)
    for status in (VendorStatus.PENDING, VendorStatus.SUSPENDED):
        member, vendor = await vendor_member(ctx, status=status)
        _refused(
            await _post(client, member, cid, company_name=vendor.name),
            403,
            "vendor_not_verified",
            "audience",
        )
        vote = await client.post(f"/api/v1/pain-points/{item['id']}/vote", headers=member)
        _refused(vote, 403, "vendor_not_verified", "audience")
    assert await PainPoint.filter(audience="enterprise").count() == 0
    assert await Vote.all().count() == 0
    stranger = token_headers(ctx, await make_user(Role.VENDOR))
    vote = await client.post(f"/api/v1/pain-points/{item['id']}/vote", headers=stranger)
    _refused(vote, 403, "not_vendor_member", "audience")


async def test_a_verified_member_speaks_under_the_registered_name(client, ctx):
    curator, cid = await _campaign(client, ctx)
    member, vendor = await vendor_member(ctx, name="安徽智慧城市研究院有限公司")
    colleague, _ = await vendor_member(ctx, vendor=vendor)
    omitted = await submit(client, member, cid)
    assert omitted["audience"] == "enterprise"
    assert omitted["company_name"] == "安徽智慧城市研究院有限公司"
    repeated = await submit(client, colleague, cid, audience="enterprise", company_name=vendor.name)
    assert repeated["company_name"] == vendor.name
    stored = await PainPoint.get(public_id=omitted["id"])
    assert stored.company_name == vendor.name
    # Votes of members count for enterprises.
    resident = token_headers(ctx, await make_user(Role.RESIDENT))
    for headers in (member, resident):
        response = await client.post(f"/api/v1/pain-points/{omitted['id']}/vote", headers=headers)
        assert response.status_code == 201, response.text
    counts = (await client.get(f"/api/v1/pain-points/{omitted['id']}")).json()
    assert counts["votes_by_audience"] == {"resident": 1, "enterprise": 1, "department": 0}
    # Suspending the vendor stops its members' enterprise voice at once.
    await Vendor.filter(id=vendor.id).update(status=VendorStatus.SUSPENDED)
    vote = await client.post(f"/api/v1/pain-points/{repeated['id']}/vote", headers=colleague)
    _refused(vote, 403, "vendor_not_verified", "audience")


async def test_the_company_name_cannot_be_spoofed(client, ctx):
    _, cid = await _campaign(client, ctx)
    member, own = await vendor_member(ctx, name="合肥小微科技有限公司")
    _, famous = await vendor_member(ctx, name="合肥知名集团股份有限公司")
    for name in (famous.name, "合肥小微科技有限公司（分公司）", "任意名称"):
        response = await _post(client, member, cid, company_name=name)
        _refused(response, 422, "company_name_mismatch", "company_name")
        assert own.name in response.json()["error"]["fields"]["company_name"]
    assert await PainPoint.all().count() == 0
    # Only the member's own vendor name is ever shown.
    item = await submit(client, member, cid, company_name=f"  {own.name} ")
    assert item["company_name"] == own.name


async def test_an_enterprise_campaign_invitation_is_checked_first(client, ctx):
    _, cid = await _campaign(client, ctx, audiences=["resident"])
    member, _ = await vendor_member(ctx)
    _refused(await _post(client, member, cid), 422, "audience_not_invited", "audience")


async def test_open311_enterprise_clients_speak_for_a_verified_vendor(client, ctx):
    await _campaign(client, ctx)
    admin = token_headers(ctx, await make_user(Role.BUREAU_ADMIN))
    _, vendor = await vendor_member(ctx, name="合肥随手拍科技有限公司")
    _, pending = await vendor_member(ctx, status=VendorStatus.PENDING)
    url = "/api/v1/open311/clients"
    base = {"name": "企业随手拍", "audience": "enterprise"}
    missing = await client.post(url, headers=admin, json=base | {"organisation": "自填名称"})
    assert missing.status_code == 400 and "vendor_id" in missing.json()["error"]["fields"]
    unknown = await client.post(url, headers=admin, json=base | {"vendor_id": "nope"})
    assert unknown.status_code == 400 and "vendor_id" in unknown.json()["error"]["fields"]
    unverified = await client.post(url, headers=admin, json=base | {"vendor_id": pending.public_id})
    _refused(unverified, 422, "vendor_not_verified", "vendor_id")
    resident_with_vendor = await client.post(
        url, headers=admin, json={"name": "居民端", "vendor_id": vendor.public_id}
    )
    assert resident_with_vendor.status_code == 400
    created = await client.post(
        url, headers=admin, json=base | {"vendor_id": vendor.public_id, "organisation": "别名"}
    )
    assert created.status_code == 201, created.text
    key = created.json()
    assert key["organisation"] == vendor.name and key["vendor_id"] == vendor.public_id
    listed = (await client.get(url, headers=admin)).json()["items"]
    assert [c["vendor_id"] for c in listed] == [vendor.public_id]
    form = {
        "api_key": key["key"],
        "service_code": "parking",
        "address_string": "高新区创新大道",
        "description": "园区周边停车位太少，访客车辆无处停放",
    }
    posted = await client.post(
        "/open311/v2/requests.json", data=form, headers={"content-type": FORM}
    )
    assert posted.status_code == 201, posted.text
    item = await PainPoint.get(public_id=posted.json()[0]["service_request_id"])
    assert item.audience == "enterprise" and item.company_name == vendor.name
    # A suspended vendor's client stops submitting.
    await Vendor.filter(id=vendor.id).update(status=VendorStatus.SUSPENDED)
    refused = await client.post(
        "/open311/v2/requests.json", data=form, headers={"content-type": FORM}
    )
    assert refused.status_code == 403, refused.text
    assert "api_key" in refused.json()[0]["description"]
