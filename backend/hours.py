"""Opening hours in OpenStreetMap ``opening_hours`` syntax, evaluated in Asia/Shanghai.

Parsing and evaluation use ``opening-hours-py`` (the maintained Rust ``opening-hours`` crate):
nothing here parses the syntax by hand. Expressions are validated on write (:func:`validate`)
and evaluated at a moment the caller passes (from ``ctx.clock``, never ``datetime.now()``).

Public holidays (``PH``) come from the library's own calendar for ``country="CN"``. That calendar
knows only the first day of each statutory holiday (元旦, 春节, 劳动节, 端午节, 中秋节, 国庆节
on their first day); it does not know the multi-day periods set each year by the State Council,
Qingming, or the 调休 make-up workdays. Feeding the official schedule (e.g. from the
``chinese-calendar`` package) into the evaluation is a known gap, noted in docs/search.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

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
    except (SyntaxError, ValueError, oh.ParserError) as exc:  # type: ignore[attr-defined]
        where = _POSITION.search(str(exc))
        at = f"（第 {where.group(1)} 处）" if where else ""
        raise InvalidOpeningHours(f"营业时间不符合 OSM opening_hours 语法{at}") from None
    return text


def state_at(expression: str, moment: datetime) -> HoursState:
    """Open or closed at ``moment`` (aware) and the next change, in Asia/Shanghai."""
    parsed = _parse(expression)
    local = moment.astimezone(SHANGHAI)
    state, _comment = parsed.state(local)
    change = parsed.next_change(local)
    return HoursState(
        open_now=state == oh.State.OPEN,
        unknown=state == oh.State.UNKNOWN,
        next_change=change.astimezone(SHANGHAI) if change is not None else None,
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
    for begin, finish, state, _comment in parsed.intervals(lo, hi):
        if state != oh.State.OPEN:
            continue
        begin = max(begin.astimezone(SHANGHAI), lo)
        finish = hi if finish is None else min(finish.astimezone(SHANGHAI), hi)
        if begin < finish:
            if periods and periods[-1][1] == begin:
                periods[-1] = (periods[-1][0], finish)
            else:
                periods.append((begin, finish))
    return periods
