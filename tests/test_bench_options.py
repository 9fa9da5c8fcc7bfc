"""The bench's own options: ``--only`` picks scenarios with their ceilings, never the docs."""

from __future__ import annotations

import pytest

from bench import checks, report
from bench.config import LEVELS, SCENARIOS, VOTE_BURST, make_config, select


def test_only_adds_the_ceilings_a_scenario_is_compared_with() -> None:
    assert select("venue_search") == {"venue_search", "noop", "es_direct"}
    assert select("votes,booking_race") == {"votes", "pg_insert", "booking_race"}
    assert select(None) == frozenset(SCENARIOS)


def test_only_refuses_an_unknown_scenario() -> None:
    with pytest.raises(SystemExit, match="venue_serch"):
        select("venue_serch")
    with pytest.raises(SystemExit):
        select(" , ")


def test_a_partial_run_never_writes_the_docs() -> None:
    partial = make_config(profile="embedded", full=False, only="booking_race")
    assert partial.docs is None and partial.partial
    assert partial.runs("booking_race") and not partial.runs("votes")
    whole = make_config(profile="embedded", full=False)
    assert whole.docs is not None and not whole.partial and whole.runs("votes")


def test_the_report_and_the_exit_status_cover_only_the_checks_that_ran() -> None:
    race = {
        "racers": 256,
        "created": 1,
        "bookings_in_database": 1,
        "unanswered": 0,
        "refused": {"409 slot_taken": 255},
        "exactly_one": True,
    }
    lines = report._checks({"booking_race": race})
    assert len(lines) == 1 and "exactly one" in lines[0]
    assert checks.exact({"booking_race": race})
    assert not checks.exact({"booking_race": race | {"exactly_one": False}})
    assert not checks.exact({"votes": {"equal": False}})
    assert checks.exact({})


def test_another_database_gets_its_own_key_and_index_prefixes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("BENCH_DATABASE", raising=False)
    usual = make_config(profile="embedded", full=False)
    assert (usual.kv_prefix, usual.es_prefix) == ("bench:", "bench")
    monkeypatch.setenv("BENCH_DATABASE", "smartcircle_votes2")
    mine = make_config(profile="embedded", full=False)
    assert (mine.kv_prefix, mine.es_prefix) == ("smartcircle_votes2:", "smartcircle-votes2")
    env = mine.server_env()
    assert env["SMARTCIRCLE_KV_PREFIX"] == "smartcircle_votes2:"
    assert env["SMARTCIRCLE_ES_INDEX_PREFIX"] == "smartcircle-votes2"


async def test_the_race_check_finds_the_raced_slot_on_either_database(client, ctx) -> None:
    # The plan carries the slot's start in +08:00; SQLite stores it in UTC and compares the text,
    # so the check must convert it (it once counted 0 bookings on SQLite for a race with one).
    from bench.data import Plan
    from tests.booking_helpers import at, book, make_site, resident

    site = await make_site(client, ctx)
    unit_id = site.units[0]["id"]
    _, headers = await resident(ctx)
    start = at(15)
    assert start.endswith("+08:00")
    await book(client, headers, unit_id, start, confirm=False)
    plan = Plan(
        venues=0, titles=0, holdings=0, people=1, campaign_id="", hot_items=[], tokens=[],
        unit_id=unit_id, booking_start=start,
    )  # fmt: skip
    raw = {
        "statuses": {"201": 1, "409": 255},
        "socket_errors": 0,
        "timeouts": 0,
        "refusals": {"409 slot_taken": 255},
    }
    result = await checks.booking(plan, raw)
    assert result["bookings_in_database"] == 1
    assert result["exactly_one"] is True


def test_votes_are_also_measured_in_a_burst_unless_the_levels_are_chosen() -> None:
    default = make_config(profile="embedded", full=False)
    assert default.levels == LEVELS
    assert default.vote_levels == (*LEVELS, VOTE_BURST)
    chosen = make_config(profile="embedded", full=False, levels=(1, 64))
    assert chosen.vote_levels == (1, 64)
