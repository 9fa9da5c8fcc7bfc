"""The demo data loads idempotently and its accounts work."""

from __future__ import annotations

import pytest

from crowdsource.challenges.models import Vendor, VendorStatus
from fixtures.demo import DEMO_ACCOUNTS, load_demo


async def test_demo_data_loads_twice_and_its_accounts_work(client, settings):
    # A smaller city than `make demo` loads, to keep the suite quick; same code path.
    await load_demo(settings, venues=300, books=200)
    await load_demo(settings, venues=300, books=200)
    for username, password, role, _name, _street in DEMO_ACCOUNTS:
        response = await client.post(
            "/api/v1/auth/login", json={"username": username, "password": password}
        )
        assert response.status_code == 200, username
        assert response.json()["user"]["role"] == role.value
    vendor = await Vendor.get(members__user__username="vendor")
    assert vendor.status == VendorStatus.VERIFIED
    login = await client.post(
        "/api/v1/auth/login", json={"username": "vendor", "password": "demo-vendor-2026"}
    )
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}
    mine = await client.get("/api/v1/me/vendor", headers=headers)
    assert mine.json()["id"] == vendor.public_id
    # The crowdsourcing demo: a curated campaign with published challenges and an award.
    campaigns = (await client.get("/api/v1/campaigns")).json()["items"]
    assert len(campaigns) == 2
    challenges = (await client.get("/api/v1/challenges?limit=100")).json()["items"]
    assert len(challenges) >= 5
    results = [
        (await client.get(f"/api/v1/challenges/{c['id']}/results")).json() for c in challenges
    ]
    assert sum(len(r["awarded"]) for r in results) == 1
    assert sum(r["proposals_received"] for r in results) >= 6
    # Resident base data of 荷叶地街道, seen by the demo street account.
    login = await client.post(
        "/api/v1/auth/login", json={"username": "street", "password": "demo-street-2026"}
    )
    street = {"Authorization": f"Bearer {login.json()['access_token']}"}
    residents = await client.get("/api/v1/residents?limit=5", headers=street)
    assert len(residents.json()["items"]) == 5


async def test_demo_data_is_refused_in_production(app, settings):
    with pytest.raises(SystemExit):
        await load_demo(
            settings.model_copy(update={"environment": "production"}), venues=1, books=1
        )
