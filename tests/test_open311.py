"""Open311 GeoReport v2: services, form-encoded intake with client keys, status, JSON and XML.

The last test starts a real server and drives it with a published Open311 client library.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import subprocess
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import requests
import xmltodict
from georeport import GeoReport

from backend.models import AuditEntry, Role, User
from crowdsource.models import Open311Client, PainPoint
from tests.conftest import PROFILE, RUN_ID
from tests.crowdsource_helpers import create_campaign, submit, token_headers
from tests.factories import make_user
from tests.server_process import stop

REPO = Path(__file__).resolve().parent.parent
FORM = "application/x-www-form-urlencoded"
PERSONAL = {
    "email": "zhang.san@example.com",
    "first_name": "三",
    "last_name": "张",
    "phone": "13800138000",
    "device_id": "device-0001",
    "account_id": "acct-77",
}


async def _setup(client, ctx, **campaign_fields):
    admin = token_headers(ctx, await make_user(Role.BUREAU_ADMIN))
    campaign = await create_campaign(client, admin, ctx, **campaign_fields)
    response = await client.post(
        "/api/v1/open311/clients", headers=admin, json={"name": "随手拍", "requests_per_minute": 5}
    )
    assert response.status_code == 201, response.text
    return admin, campaign, response.json()


def _form(key: str, **fields: str) -> dict[str, str]:
    return {
        "api_key": key,
        "service_code": "parking",
        "lat": "31.8206",
        "long": "117.2272",
        "description": "小区门口的路边停车位太少。晚上回家总是找不到地方停车",
    } | fields


async def _post(client, data, fmt="json", expect=201):
    response = await client.post(
        f"/open311/v2/requests.{fmt}", data=data, headers={"content-type": FORM}
    )
    assert response.status_code == expect, response.text
    return response


def _error(response, status):
    assert response.status_code == status, response.text
    body = response.json()
    assert isinstance(body, list) and body, body
    assert all(e["code"] == status and e["description"] for e in body), body
    return body


async def test_services_are_the_categories_of_the_collecting_campaign(client, ctx):
    assert (await client.get("/open311/v2/services.json")).json() == []
    _, campaign, _ = await _setup(client, ctx)
    response = await client.get("/open311/v2/services.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    services = response.json()
    codes = [s["service_code"] for s in services]
    assert codes == [c["code"] for c in campaign["categories"]]
    parking = services[codes.index("parking")]
    assert parking["service_name"] == "停车"
    assert parking["metadata"] is False and parking["type"] == "realtime"
    assert "停车" in parking["keywords"] and parking["group"] == campaign["title"]
    xml = await client.get("/open311/v2/services.xml")
    assert xml.headers["content-type"].startswith("text/xml")
    assert xml.text.startswith('<?xml version="1.0" encoding="UTF-8"?>')
    parsed = xmltodict.parse(xml.content)["services"]["service"]
    assert [s["service_code"] for s in parsed] == codes
    assert parsed[codes.index("parking")]["metadata"] == "false"


async def test_a_request_becomes_a_pain_point_without_personal_data(client, ctx, caplog):
    _, campaign, key = await _setup(client, ctx)
    with caplog.at_level(logging.DEBUG):
        response = await _post(
            client,
            _form(key["key"], media_url="https://img.example.cn/p.jpg", **PERSONAL),
        )
    answer = response.json()
    assert answer == [
        {
            "service_request_id": answer[0]["service_request_id"],
            "service_notice": answer[0]["service_notice"],
            "account_id": None,
        }
    ]
    item = await PainPoint.get(public_id=answer[0]["service_request_id"]).select_related(
        "author", "campaign"
    )
    assert item.campaign.public_id == campaign["id"]
    assert item.category == "parking" and item.audience.value == "resident"
    assert item.title == "小区门口的路边停车位太少"
    assert (item.lat, item.lng) == (31.8206, 117.2272)
    assert item.photo_urls == ["https://img.example.cn/p.jpg"]
    # The author is the client's service account: nobody can sign in as it.
    client_row = await Open311Client.get(public_id=key["id"])
    assert item.author_id == client_row.account_id  # type: ignore[attr-defined]
    account = await User.get(id=client_row.account_id)  # type: ignore[attr-defined]
    assert account.wechat_openid is None and account.username is None
    assert account.password_hash is None
    # Personal fields are neither stored, logged nor echoed; the key is stored hashed.
    stored = " ".join(
        str(v) for v in (await PainPoint.filter(id=item.id).values())[0].values()
    ) + " ".join(str(a.detail) for a in await AuditEntry.all())
    for value in [*PERSONAL.values(), key["key"]]:
        assert value not in stored
        assert value not in caplog.text
        assert value not in response.text
    assert client_row.key_hash != key["key"] and key["key"] not in str(
        await Open311Client.filter(id=client_row.id).values()
    )
    # Shown by the regular API too, and counted in the campaign.
    listed = (await client.get(f"/api/v1/campaigns/{campaign['id']}/pain-points?sort=new")).json()
    assert [i["id"] for i in listed["items"]] == [item.public_id]


async def test_errors_follow_the_spec(client, ctx):
    admin, _, key = await _setup(client, ctx, audiences=["resident"])
    missing = _error(await _post(client, {"service_code": "parking"}, expect=400), 400)
    assert {e["description"].split(":")[0] for e in missing} >= {"api_key", "description"}
    bad_key = await _post(client, _form("o311_nope"), expect=403)
    assert "api_key" in _error(bad_key, 403)[0]["description"]
    unknown = _error(await _post(client, _form(key["key"], service_code="zoo"), expect=400), 400)
    assert unknown[0]["description"].startswith("service_code:")
    nowhere = _form(key["key"])
    del nowhere["lat"], nowhere["long"]
    assert _error(await _post(client, nowhere, expect=400), 400)[0]["description"].startswith(
        "lat:"
    )
    half = _form(key["key"])
    del half["long"]
    assert "long" in _error(await _post(client, half, expect=400), 400)[0]["description"]
    plain_http = _form(key["key"], media_url="http://img.example.cn/p.jpg")
    assert "media_url" in _error(await _post(client, plain_http, expect=400), 400)[0]["description"]
    as_json = await client.post("/open311/v2/requests.json", json=_form(key["key"]))
    _error(as_json, 415)  # the spec's form encoding only
    # XML errors: <errors><error><code/><description/></error></errors>.
    xml = await _post(client, _form("o311_nope"), fmt="xml", expect=403)
    error = xmltodict.parse(xml.content)["errors"]["error"]
    assert error["code"] == "403" and "api_key" in error["description"]
    # An address instead of a point is fine.
    by_address = _form(key["key"], address_string="蜀山区长江西路 100 号")
    del by_address["lat"], by_address["long"]
    created = (await _post(client, by_address)).json()[0]["service_request_id"]
    one = (await client.get(f"/open311/v2/requests/{created}.json")).json()[0]
    assert one["address"] == "蜀山区长江西路 100 号" and one["lat"] is None
    regular = (await client.get(f"/api/v1/pain-points/{created}")).json()
    assert regular["address"] == "蜀山区长江西路 100 号" and regular["location"] is None
    # The per-client rate limit (5 attempts a minute here: four so far), then a revoked key.
    await _post(client, _form(key["key"]))
    limited = await _post(client, _form(key["key"]), expect=429)
    assert int(limited.headers["retry-after"]) >= 1
    _error(limited, 429)
    revoked = await client.delete(f"/api/v1/open311/clients/{key['id']}", headers=admin)
    assert revoked.status_code == 204
    _error(await _post(client, _form(key["key"]), expect=403), 403)
    # Only the bureau manages keys; a department client needs its organisation.
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    assert (await client.get("/api/v1/open311/clients", headers=curator)).status_code == 403
    no_org = await client.post(
        "/api/v1/open311/clients", headers=admin, json={"name": "区政务", "audience": "department"}
    )
    assert no_org.status_code == 400 and "organisation" in no_org.json()["error"]["fields"]
    dept = await client.post(
        "/api/v1/open311/clients",
        headers=admin,
        json={"name": "区政务", "audience": "department", "organisation": "蜀山区政务服务中心"},
    )
    assert dept.status_code == 201
    # This campaign invites residents only: a department client is refused by the rule.
    refused = await _post(client, _form(dept.json()["key"]), expect=422)
    _error(refused, 422)
    listed = (await client.get("/api/v1/open311/clients", headers=admin)).json()["items"]
    assert [c["revoked_at"] is not None for c in listed] == [True, False]
    assert all(c["key"] is None for c in listed)


async def test_status_filters_and_formats(client, ctx):
    admin, campaign, key = await _setup(client, ctx, submission_cap=20)
    curator = token_headers(ctx, await make_user(Role.CURATOR))
    ids = [
        (await _post(client, _form(key["key"], service_code=code))).json()[0]["service_request_id"]
        for code in ("parking", "parking", "public_toilet", "parking")
    ]
    a, b, c, d = ids
    resident = token_headers(ctx, await make_user(Role.RESIDENT))
    e = (await submit(client, resident, campaign["id"], category="transport"))["id"]

    async def moderate(item, **body):
        response = await client.post(
            f"/api/v1/pain-points/{item}/moderation", headers=curator, json=body
        )
        assert response.status_code == 200, response.text

    await moderate(a, decision="valid")
    await moderate(b, decision="invalid", reason="与城市管理无关")
    merged = await client.post(
        f"/api/v1/pain-points/{a}/merge", headers=curator, json={"source": d}
    )
    assert merged.status_code == 200, merged.text
    await moderate(c, decision="duplicate", duplicate_of=a)

    everything = (await client.get("/open311/v2/requests.json")).json()
    by_id = {r["service_request_id"]: r for r in everything}
    assert [r["service_request_id"] for r in everything] == [e, d, c, b, a]  # newest first
    assert by_id[a]["status"] == "open" and by_id[e]["status"] == "open"
    assert by_id[b]["status"] == "closed" and "与城市管理无关" in by_id[b]["status_notes"]
    assert by_id[b]["description"] == ""
    assert by_id[c]["status"] == "closed" and a in by_id[c]["status_notes"]
    assert by_id[d]["status"] == "closed" and "合并" in by_id[d]["status_notes"]
    row = by_id[a]
    assert row["service_code"] == "parking" and row["service_name"] == "停车"
    assert row["requested_datetime"].endswith("+08:00")
    assert row["updated_datetime"].endswith("+08:00")
    assert (row["lat"], row["long"]) == (31.8206, 117.2272)

    async def ids_for(query: str) -> list[str]:
        response = await client.get(f"/open311/v2/requests.json?{query}")
        assert response.status_code == 200, response.text
        return [r["service_request_id"] for r in response.json()]

    assert await ids_for("status=open") == [e, a]
    assert await ids_for("status=closed") == [d, c, b]
    assert await ids_for("status=open,closed") == [e, d, c, b, a]
    assert await ids_for("service_code=public_toilet,transport") == [e, c]
    assert await ids_for(f"service_request_id={a},{c}&status=open") == [c, a]  # ids override
    now = ctx.clock.now()
    later = (now + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await ids_for(f"start_date={later}") == []
    earlier = (now - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert len(await ids_for(f"start_date={earlier}&end_date={later}&jurisdiction_id=hf")) == 5
    too_long = (now - timedelta(days=120)).strftime("%Y-%m-%dT%H:%M:%SZ")
    wide = await client.get(f"/open311/v2/requests.json?start_date={too_long}&end_date={later}")
    assert "end_date" in _error(wide, 400)[0]["description"]
    naive = await client.get("/open311/v2/requests.json?start_date=2026-01-01T00:00:00")
    assert "start_date" in _error(naive, 400)[0]["description"]
    assert (
        "status"
        in _error(await client.get("/open311/v2/requests.json?status=x"), 400)[0]["description"]
    )
    # Outside the 90-day default window.
    ctx.clock.advance(91 * 24 * 3600)
    assert await ids_for("") == []
    ctx.clock.reset()

    xml = await client.get("/open311/v2/requests.xml?status=closed")
    rows = xmltodict.parse(xml.content)["service_requests"]["request"]
    assert [r["service_request_id"] for r in rows] == [d, c, b]
    one = await client.get(f"/open311/v2/requests/{a}.xml")
    single = xmltodict.parse(one.content)["service_requests"]["request"]
    assert single["status"] == "open" and single["lat"] == "31.8206"
    assert (await client.get(f"/open311/v2/requests/{a}.json")).json()[0]["status"] == "open"
    _error(await client.get("/open311/v2/requests/nope.json"), 404)
    _error(await client.get(f"/open311/v2/requests/{a}.csv"), 400)
    missing_xml = await client.get("/open311/v2/requests/nope.xml")
    assert xmltodict.parse(missing_xml.content)["errors"]["error"]["code"] == "404"


# -- a published client library against a real server ------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SMARTCIRCLE_", "PYTEST"))}
    env.update(
        SMARTCIRCLE_LOG_LEVEL="WARNING",
        SMARTCIRCLE_SCHEDULER="0",
        SMARTCIRCLE_KV_PREFIX=f"test:{RUN_ID}:open311:",
        SMARTCIRCLE_VAR_DIR=str(tmp_path),  # the install's secret too, never the checkout's
    )
    if PROFILE == "services":
        env.update(SMARTCIRCLE_PROFILE="services", DATABASE_URL=os.environ["TEST_DATABASE_URL"])
    else:
        for name in ("DATABASE_URL", "REDIS_URL", "ELASTICSEARCH_URL"):
            env.pop(name, None)
        env.update(SMARTCIRCLE_PROFILE="embedded")
    return env


SEED_ADMIN = textwrap.dedent(
    """
    import asyncio
    from backend import db
    from backend.config import Settings
    from backend.models import Role, User
    from backend.security import hash_password
    from server import orm

    async def main():
        settings = Settings.from_env()
        await orm.open_database(settings)
        await User.create(username="o311admin", password_hash=hash_password("o311-admin-pass"),
                          role=Role.BUREAU_ADMIN)
        await db.close_database()

    asyncio.run(main())
    """
)


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(
        args, env=env, cwd=REPO, capture_output=True, timeout=120, check=False, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]


async def test_a_published_client_library_works_against_a_real_server(app, ctx, tmp_path):
    """georeport lists services, reads requests back (JSON and XML) from a real server."""
    env = _server_env(tmp_path)
    if PROFILE != "services":
        _run([sys.executable, "-m", "server", "migrate"], env)
    _run([sys.executable, "-c", SEED_ADMIN], env)
    port = _free_port()
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sanic",
                "server.app:create_app",
                "--factory",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--single-process",
            ],
            env=env,
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            deadline = time.monotonic() + 180  # generous: a loaded 2-core machine starts slowly
            while True:
                try:
                    await http.get("/api/v1/health")
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or process.poll() is not None:
                        pytest.fail(f"server did not start: {log_path.read_text()[-3000:]}")
                    await asyncio.sleep(0.2)
            # The campaign and the client key through the server's real API.
            login = await http.post(
                "/api/v1/auth/login", json={"username": "o311admin", "password": "o311-admin-pass"}
            )
            assert login.status_code == 200, login.text
            admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
            campaign = await create_campaign(http, admin, ctx, title="Open311 联调活动")
            created = await http.post(
                "/api/v1/open311/clients", headers=admin, json={"name": "georeport"}
            )
            assert created.status_code == 201, created.text
            key = created.json()["key"]

        root = f"{base}/open311/v2"
        json_client = GeoReport(root, api_key=key)
        xml_client = GeoReport(root, api_key=key, output_format="xml")

        async def call(func, *args, **kwargs):
            return await asyncio.wait_for(asyncio.to_thread(func, *args, **kwargs), timeout=20)

        services = await call(json_client.get_service_list)
        assert [s["service_code"] for s in services] == [c["code"] for c in campaign["categories"]]
        xml_services = await call(xml_client.get_service_list)
        assert [s["service_name"] for s in xml_services] == [s["service_name"] for s in services]

        # georeport 0.3.1 has no create method (it is read-only): a client posts the spec's form
        # with the same HTTP library georeport uses, to the URL georeport builds for requests.
        def post_request() -> requests.Response:
            return requests.post(
                f"{json_client.root_address}/requests.json",
                data=_form(json_client.api_key or "", **PERSONAL),
                timeout=15,
            )

        posted = await call(post_request)
        assert posted.status_code == 201, posted.text
        request_id = posted.json()[0]["service_request_id"]

        one = await call(json_client.get_service_request, request_id)
        assert one["service_request_id"] == request_id and one["status"] == "open"
        assert one["service_code"] == "parking" and one["requested_datetime"].endswith("+08:00")
        one_xml = await call(xml_client.get_service_request, request_id)
        assert one_xml["status"] == "open" and one_xml["service_name"] == "停车"
        listed = await call(json_client.get_service_requests, service_code="parking", status="open")
        assert [r["service_request_id"] for r in listed] == [request_id]
        listed_xml = await call(xml_client.get_service_requests, service_request_id=request_id)
        assert listed_xml["service_request_id"] == request_id  # one <request>: a mapping
        with pytest.raises(requests.HTTPError) as raised:
            await call(json_client.get_service_request, "does-not-exist")
        assert raised.value.response.status_code == 404
        assert raised.value.response.json()[0]["code"] == 404
    finally:
        stop(process, timeout=20)
    output = log_path.read_text(errors="replace")
    for value in PERSONAL.values():
        assert value not in output


async def test_xml_stays_well_formed_whatever_the_text(client, ctx):
    _, _, key = await _setup(client, ctx)
    text = "井盖<缺失>&松动]]>，夜间行人容易踩空"
    created = (await _post(client, _form(key["key"], description=text))).json()
    one = await client.get(f"/open311/v2/requests/{created[0]['service_request_id']}.xml")
    parsed = xmltodict.parse(one.content)["service_requests"]["request"]
    assert parsed["description"] == text
    # Characters XML cannot carry never get in: refused at the border, in the spec's shape.
    for bad in ("\x07", "\x00", "\x1b", "\ufffe"):
        refused = await _post(
            client, _form(key["key"], description=f"井盖缺失{bad}夜间行人容易踩空"), expect=400
        )
        assert _error(refused, 400)[0]["description"].startswith("description:")
