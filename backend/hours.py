"""Opening hours in OpenStreetMap ``opening_hours`` syntax, evaluated in Asia/Shanghai.

Parsing and evaluation use ``opening-hours-py`` (the maintained Rust ``opening-hours`` crate):
nothing here parses the syntax by hand. Expressions are validated on write (:func:`validate`)
and evaluated at a moment the caller passes (from ``ctx.clock``, never ``datetime.now()``).

Public holidays and 调休: the library's own calendar for ``country="CN"`` knows only the first
day of each statutory holiday, and the Python binding takes no custom calendar. So each local
day is evaluated *as* a reference day that the library treats the way the official calendar
(``chinese-calendar``, the State Council's schedule) says the day should be treated:

* a day of an official holiday period → the nearest day with the same weekday that the library
  treats as ``PH`` (so ``PH`` rules apply on every day of 国庆、春节、清明…, and a venue without
  ``PH`` rules keeps its weekday hours);
* a 调休 make-up workday (a Saturday or Sunday worked) → the nearest ordinary Wednesday (the
  venue's working-day hours);
* a day the library calls ``PH`` but the official calendar does not → the nearest ordinary day
  with the same weekday;
* every other day → itself.

Years the official calendar does not cover yet (it is published year by year) fall back to the
library's own calendar.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

import chinese_calendar
import opening_hours as oh

from backend.clock import SHANGHAI

COUNTRY = "CN"
MAX_LENGTH = 500
# Changes further away than this are reported as "no change" (keeps evaluation bounded).
MAX_INTERVAL_DAYS = 366
_POSITION = re.compile(r"-->\s*(\d+:\d+)")


class InvalidOpeningHours(ValueError):
    """The expression is not valid ``opening_hours`` syntax."""


@dataclass(frozen=True, slots=True)
class HoursState:
    """Whether a place is open at a moment, and when that next changes (None: never)."""

    open_now: bool
    unknown: bool
    next_change: datetime | None


@lru_cache(maxsize=4096)
def _parse(expression: str) -> oh.OpeningHours:
    return oh.OpeningHours(
        expression, timezone=SHANGHAI, country=COUNTRY, max_interval_days=MAX_INTERVAL_DAYS
    )


def validate(expression: str) -> str:
    """The expression, stripped, if the parser accepts it; raise InvalidOpeningHours otherwise."""
    text = expression.strip()
    if not text:
        raise InvalidOpeningHours("营业时间不能为空")
    if len(text) > MAX_LENGTH:
        raise InvalidOpeningHours(f"营业时间不能超过 {MAX_LENGTH} 个字符")
    try:
        _parse(text)
    # ParserError exists at run time but the package's stub (__init__.pyi) does not declare it.
    except (SyntaxError, ValueError, oh.ParserError) as exc:  # type: ignore[attr-defined]
        where = _POSITION.search(str(exc))
        at = f"（第 {where.group(1)} 处）" if where else ""
        raise InvalidOpeningHours(f"营业时间不符合 OSM opening_hours 语法{at}") from None
    return text


@lru_cache(maxsize=1)
def _library_ph() -> oh.OpeningHours:
    return _parse("PH open")


def _library_says_ph(day: date) -> bool:
    noon = datetime.combine(day, time(12), SHANGHAI)
    return bool(_library_ph().is_open(noon))


def _official(day: date) -> str | None:
    """'holiday', 'makeup' (a weekend day worked), 'ordinary', or None when not published."""
    try:
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
        workday = chinese_calendar.is_workday(day)
    except NotImplementedError:
        return None
    if on_holiday and name is not None:
        return "holiday"
    if workday and day.weekday() >= 5:
        return "makeup"
    return "ordinary"


def _nearest(day: date, step: int, wanted: Callable[[date], bool]) -> date:
    for distance in range(1, 400):
        for candidate in (
            day - timedelta(days=step * distance),
            day + timedelta(days=step * distance),
        ):
            if wanted(candidate):
                return candidate
    return day


@lru_cache(maxsize=4096)
def reference_day(day: date) -> date:
    """The day the library should evaluate in place of ``day`` (see the module docstring)."""
    kind = _official(day)
    if kind is None:
        return day
    library_ph = _library_says_ph(day)
    if kind == "holiday":
        return day if library_ph else _nearest(day, 7, _library_says_ph)
    if kind == "makeup":
        wednesday = day - timedelta(days=(day.weekday() - 2))
        return (
            _nearest(wednesday + timedelta(days=7), 7, _plain)
            if not _plain(wednesday)
            else wednesday
        )
    return _nearest(day, 7, _plain) if library_ph else day


def _plain(day: date) -> bool:
    """An ordinary day for both calendars."""
    return _official(day) in ("ordinary", None) and not _library_says_ph(day)


def _shift(moment: datetime, days: int) -> datetime:
    return (moment.astimezone(SHANGHAI).replace(tzinfo=None) + timedelta(days=days)).replace(
        tzinfo=SHANGHAI
    )


def _day_periods(parsed: oh.OpeningHours, day: date) -> list[tuple[datetime, datetime, str]]:
    """(begin, end, state) over one real local day, evaluated on its reference day."""
    ref = reference_day(day)
    offset = (day - ref).days
    lo = datetime.combine(ref, time(0), SHANGHAI)
    hi = lo + timedelta(days=1)
    periods = []
    for begin, finish, state, _comment in parsed.intervals(lo, hi):
        begin = max(begin.astimezone(SHANGHAI), lo)
        finish = hi if finish is None else min(finish.astimezone(SHANGHAI), hi)
        if begin < finish:
            name = (
                "open"
                if state == oh.State.OPEN
                else ("unknown" if state == oh.State.UNKNOWN else "closed")
            )
            periods.append((_shift(begin, offset), _shift(finish, offset), name))
    return periods


NEXT_CHANGE_SCAN_DAYS = 14


def _next_change(parsed: oh.OpeningHours, local: datetime, current: str) -> datetime | None:
    """The first later period in another state, day by day; the library's answer past two weeks."""
    for offset in range(NEXT_CHANGE_SCAN_DAYS):
        for begin, _finish, state in _day_periods(parsed, local.date() + timedelta(days=offset)):
            if begin > local and state != current:
                return begin
    later = parsed.next_change(_shift(local, NEXT_CHANGE_SCAN_DAYS))
    return later.astimezone(SHANGHAI) if later is not None else None


def _calendar_agrees(first: date, last: date) -> bool:
    """True when every day in [first, last] is its own reference day."""
    day = first
    while day <= last:
        if reference_day(day) != day:
            return False
        day += timedelta(days=1)
    return True


# Answers already computed, per (expression, local day): a list of (from, until, state) meaning
# "``state`` is the answer at every moment in [from, until)". See :func:`state_at`.
STATE_CACHE_SIZE = 65536
_SPANS_PER_DAY = 8
_state_cache: OrderedDict[tuple[str, date], list[tuple[datetime, datetime, HoursState]]] = (
    OrderedDict()
)
_state_lock = threading.Lock()


def state_at(expression: str, moment: datetime) -> HoursState:
    """Open or closed at ``moment`` (aware) and the next change, in Asia/Shanghai.

    Cached per (expression, local day): an answer computed at ``t`` with next change ``c`` is,
    by definition, also the answer at every ``t'`` in ``[t, c)`` — the state holds until ``c``
    and the first change after ``t'`` is still ``c`` — and the fast/slow path below chooses the
    same way for ``t'`` on the same local day. So a search re-ranking many venues with the same
    hours, or the same venue again a few seconds later, reuses the answer; it is exactly what
    :func:`_state_at` would return (tests/test_hours.py compares both on random moments).
    """
    local = moment.astimezone(SHANGHAI)
    key = (expression, local.date())
    with _state_lock:
        spans = _state_cache.get(key)
        if spans is not None:
            _state_cache.move_to_end(key)
            for start, until, state in spans:
                if start <= local < until:
                    return state
    state = _state_at(expression, local)
    end_of_day = datetime.combine(local.date() + timedelta(days=1), time(0), SHANGHAI)
    until = end_of_day if state.next_change is None else min(state.next_change, end_of_day)
    if local < until:
        with _state_lock:
            spans = _state_cache.setdefault(key, [])
            spans.append((local, until, state))
            del spans[:-_SPANS_PER_DAY]
            _state_cache.move_to_end(key)
            while len(_state_cache) > STATE_CACHE_SIZE:
                _state_cache.popitem(last=False)
    return state


def _state_at(expression: str, moment: datetime) -> HoursState:
    """:func:`state_at` without the cache."""
    parsed = _parse(expression)
    local = moment.astimezone(SHANGHAI)
    # Fast path: no special day between now and the library's next change.
    change = parsed.next_change(local)
    horizon = (
        change.astimezone(SHANGHAI).date()
        if change is not None
        else local.date() + timedelta(days=NEXT_CHANGE_SCAN_DAYS)
    )
    if _calendar_agrees(local.date(), min(horizon, local.date() + timedelta(days=400))):
        state, _comment = parsed.state(local)
        return HoursState(
            open_now=state == oh.State.OPEN,
            unknown=state == oh.State.UNKNOWN,
            next_change=change.astimezone(SHANGHAI) if change is not None else None,
        )
    current = "closed"
    for begin, finish, state_name in _day_periods(parsed, local.date()):
        if begin <= local < finish:
            current = state_name
            break
    return HoursState(
        open_now=current == "open",
        unknown=current == "unknown",
        next_change=_next_change(parsed, local, current),
    )


def is_open(expression: str, moment: datetime) -> bool:
    return state_at(expression, moment).open_now


def open_intervals(
    expression: str, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The open periods between ``start`` and ``end`` (aware), clipped, in Asia/Shanghai."""
    parsed = _parse(expression)
    lo, hi = start.astimezone(SHANGHAI), end.astimezone(SHANGHAI)
    periods: list[tuple[datetime, datetime]] = []
    day = lo.date()
    while datetime.combine(day, time(0), SHANGHAI) < hi:
        for begin, finish, state in _day_periods(parsed, day):
            if state != "open":
                continue
            begin, finish = max(begin, lo), min(finish, hi)
            if begin < finish:
                if periods and periods[-1][1] == begin:
                    periods[-1] = (periods[-1][0], finish)
                else:
                    periods.append((begin, finish))
        day += timedelta(days=1)
    return periods
