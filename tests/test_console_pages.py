"""Console pages beyond access: the opening-hours preview (holidays and 调休), inline field errors
with the API's messages, and long operations started without JavaScript."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

from admin_console.views.venues import preview
from backend.clock import SHANGHAI
from tests.console_helpers import console_login, csrf_of
from tests.console_world import seed

WEEKDAYS = "Mo-Fr 08:00-18:00; PH off"


def _day(result: dict, iso: str) -> dict:
    return next(d for d in result["days"] if d["date"].isoformat() == iso)


def test_hours_preview_follows_the_official_calendar() -> None:
    # Sunday 2026-09-20 is a make-up workday (调休) before National Day.
    saturday = preview(WEEKDAYS, datetime(2026, 9, 19, 10, 0, tzinfo=SHANGHAI))
    assert saturday["open_now"] is False
    sunday = _day(saturday, "2026-09-20")
    assert sunday["label"].startswith("调休上班") and sunday["periods"] == ["08:00–18:00"]
    assert _day(saturday, "2026-09-21")["periods"] == ["08:00–18:00"]
    # National Day: a holiday on a weekday, closed by "PH off".
    holiday = preview(WEEKDAYS, datetime(2026, 9, 30, 9, 0, tzinfo=SHANGHAI))
    assert holiday["open_now"] is True
    assert holiday["next_change"] == datetime(2026, 9, 30, 18, 0, tzinfo=SHANGHAI)
    first = _day(holiday, "2026-10-01")
    assert "国庆节" in first["label"] and first["periods"] == []


def test_hours_preview_names_a_bad_expression() -> None:
    assert "error" in preview("Mo-Su 25:00", datetime(2026, 9, 30, 9, 0, tzinfo=SHANGHAI))
    assert preview("  ", datetime(2026, 9, 30, 9, 0, tzinfo=SHANGHAI)) == {"empty": True}


async def test_campaign_form_shows_the_apis_errors_next_to_the_fields(client, app) -> None:
    await seed()
    await console_login(client, "c_curator")
    token = await csrf_of(client)
    response = await client.post(
        "/console/campaigns/",
        data={
            "csrf_token": token,
            "title": "x",
            "collecting_starts_at": "2026-12-10T09:00",
            "collecting_ends_at": "2026-12-01T09:00",
            "voting_starts_at": "2026-12-10T09:00",
            "voting_ends_at": "2026-12-20T09:00",
            "closes_at": "2026-12-30T09:00",
            "audiences": "resident",
        },
    )
    assert response.status_code == 400
    assert 'id="e-title"' in response.text and 'aria-invalid="true"' in response.text
    assert 'value="x"' in response.text  # what was typed stays


async def test_an_export_runs_in_the_background_without_javascript(client, app) -> None:
    world = await seed()
    await console_login(client, "c_curator")
    token = await csrf_of(client)
    started = await client.post(
        f"/console/campaigns/{world.campaign}/exports", data={"csrf_token": token, "format": "xlsx"}
    )
    assert started.status_code == 200 and "<html" in started.text  # a whole page
    task = re.search(r"/console/tasks/([\w-]+)", started.text)
    assert task
    for _ in range(50):
        status = await client.get(f"/console/tasks/{task.group(1)}")
        if "下载" in status.text:
            break
        await asyncio.sleep(0.1)
    assert "<html" in status.text and ".xlsx" in status.text
    download = await client.get(f"/console/tasks/{task.group(1)}/download")
    assert download.status_code == 200 and download.content[:2] == b"PK"
    # Someone else's task is not theirs to see.
    other = client.__class__(transport=client._transport, base_url="http://testserver")
    async with other:
        await console_login(other, "c_admin")
        assert (await other.get(f"/console/tasks/{task.group(1)}/download")).status_code == 404
