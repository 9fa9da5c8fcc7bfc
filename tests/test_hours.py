"""backend/hours.py: OSM opening_hours validated and evaluated in Asia/Shanghai."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from backend import hours
from backend.clock import SHANGHAI


def at(*args: int) -> datetime:
    return datetime(*args, tzinfo=SHANGHAI)  # type: ignore[misc]


def test_weekday_hours():
    expr = "Mo-Fr 08:00-18:00; Sa 09:00-12:00"
    wednesday = hours.state_at(expr, at(2026, 11, 18, 10, 0))
    assert wednesday.open_now
    assert wednesday.next_change == at(2026, 11, 18, 18, 0)
    evening = hours.state_at(expr, at(2026, 11, 18, 19, 0))
    assert not evening.open_now
    assert evening.next_change == at(2026, 11, 19, 8, 0)
    sunday = hours.state_at(expr, at(2026, 11, 22, 10, 0))
    assert not sunday.open_now
    assert sunday.next_change == at(2026, 11, 23, 8, 0)


def test_the_moment_is_read_in_shanghai_time():
    # 01:30 UTC is 09:30 in Shanghai.
    state = hours.state_at("Mo-Fr 09:00-17:00", datetime(2026, 11, 18, 1, 30, tzinfo=UTC))
    assert state.open_now
    assert state.next_change == at(2026, 11, 18, 17, 0)
    assert state.next_change.utcoffset().total_seconds() == 8 * 3600


def test_always_open_and_overnight():
    always = hours.state_at("24/7", at(2026, 11, 18, 3, 0))
    assert always.open_now and always.next_change is None
    night = hours.state_at("Mo-Su 22:00-06:00", at(2026, 11, 18, 23, 0))
    assert night.open_now
    assert night.next_change == at(2026, 11, 19, 6, 0)


def test_public_holidays_from_the_chinese_calendar():
    expr = "Mo-Fr 08:00-18:00; PH off"
    # 2026-10-01 (Thursday) is National Day.
    assert not hours.is_open(expr, at(2026, 10, 1, 10, 0))
    assert hours.is_open(expr, at(2026, 9, 30, 10, 0))
    assert not hours.is_open(expr, at(2026, 1, 1, 10, 0))


@pytest.mark.parametrize("bad", ["", "   ", "xx", "Mo-Fr 25:00-26:00", "Mo-Fr 08:00-", "a" * 501])
def test_invalid_expressions_are_refused(bad):
    with pytest.raises(hours.InvalidOpeningHours):
        hours.validate(bad)


def test_valid_expressions_are_kept_stripped():
    assert hours.validate("  Mo-Fr 08:00-18:00; PH off ") == "Mo-Fr 08:00-18:00; PH off"


def test_official_holiday_periods_and_make_up_workdays():
    """The official schedule (chinese-calendar) decides, not only the first holiday day."""
    office = "Mo-Fr 08:30-17:30; PH off"
    # 2026-10-05 is a Monday inside the National Day holiday (10-01…10-07): closed.
    assert not hours.is_open(office, at(2026, 10, 5, 10, 0))
    # 2026-10-10 is a Saturday worked in exchange (调休): the office opens as on a workday.
    assert hours.is_open(office, at(2026, 10, 10, 10, 0))
    # An ordinary Saturday stays closed.
    assert not hours.is_open(office, at(2026, 10, 17, 10, 0))
    library = "Mo-Su 09:00-21:00; PH 10:00-17:00"
    # Holiday hours on every day of the period, not only the first.
    assert hours.is_open(library, at(2026, 10, 4, 9, 30)) is False
    assert hours.is_open(library, at(2026, 10, 4, 16, 0))
    # Next change crosses from the holiday into the make-up pattern correctly.
    state = hours.state_at(office, at(2026, 10, 7, 12, 0))
    assert not state.open_now
    assert state.next_change == at(2026, 10, 8, 8, 30)
    periods = hours.open_intervals(office, at(2026, 10, 9, 0, 0), at(2026, 10, 11, 0, 0))
    assert periods == [
        (at(2026, 10, 9, 8, 30), at(2026, 10, 9, 17, 30)),
        (at(2026, 10, 10, 8, 30), at(2026, 10, 10, 17, 30)),
    ]


def test_days_the_official_calendar_has_not_published_use_the_library():
    # chinese-calendar covers published years only; 2027 falls back to the library's calendar.
    assert not hours.is_open("Mo-Fr 08:00-18:00; PH off", at(2027, 1, 1, 10, 0))
    assert hours.is_open("Mo-Fr 08:00-18:00; PH off", at(2027, 1, 4, 10, 0))


def test_cached_state_is_exactly_the_uncached_one():
    """state_at's per-(expression, day) cache answers exactly what the evaluation does."""
    import random
    from datetime import timedelta

    from fixtures.venues_demo import HOURS_BY_KIND

    expressions = sorted(
        {h for options in HOURS_BY_KIND.values() for h, _ in options if h is not None}
        | {
            "Mo-Fr 08:00-12:00,12:00-18:00",
            "Mo-Su 18:00-02:00",
            "Mo-Fr 09:00-17:00; PH off",
            'Mo-Su 10:00-16:00; PH 10:00-12:00 open "假日"',
            "Mo-Fr 09:00-17:00 unknown",
        }
    )
    rng = random.Random(13)
    # Ordinary weeks, 国庆 and 春节 periods with their 调休 weekends, a year not yet published.
    starts = [at(2025, 3, 10), at(2025, 9, 26), at(2026, 2, 12), at(2025, 4, 30), at(2031, 5, 1)]
    hours._state_cache.clear()
    for expression in expressions:
        for start in starts:
            moment = start
            # Increasing moments (a clock that runs), then random ones (a clock tests set back).
            for step in range(60):
                if step < 40:
                    moment += timedelta(minutes=rng.choice((1, 7, 30, 59, 90, 240)))
                else:
                    moment = start + timedelta(minutes=rng.randint(0, 20000))
                cached = hours.state_at(expression, moment)
                assert cached == hours._state_at(expression, moment), (expression, moment)
    assert hours._state_cache  # the cache was really used
