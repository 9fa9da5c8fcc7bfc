"""Identifiers: ID numbers (GB 11643, through python-stdnum), phones, what is derived, masks.

Every error message here is safe to show and to log: it never repeats the value it refuses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from stdnum import exceptions as stdnum_errors
from stdnum import numdb
from stdnum.cn import ric

_MOBILE = re.compile(r"^1[3-9]\d{9}$")
# Area code 0 + 2-3 digits, subscriber number 7-8 digits (not starting with 0 or 1), extension.
_LANDLINE = re.compile(r"^(0\d{2,3})-?([2-9]\d{6,7})(?:-(\d{1,6}))?$")


class InvalidIdentifier(ValueError):
    """A refused value; ``str()`` is a safe, user-facing reason."""


@dataclass(frozen=True)
class IdNumber:
    """A valid ID number and what it tells: birth date and gender (odd sequence: male)."""

    value: str
    birth_date: date
    gender: str  # "M" or "F"


@lru_cache(maxsize=4096)
def _known_area(code: str) -> bool:
    """The area code names a county in python-stdnum's table, in any period.

    ``ric.validate`` also requires the county to have existed in the birth year; that refuses
    real numbers of people born before their district was created (a resident of 蜀山区 born in
    1950 holds a 340104 number issued in the 1980s), so only the code itself is checked here.
    """
    info = {k for _part, props in numdb.get("cn/loc").info(code) for k in props}
    return "county" in info


def parse_id_number(raw: str, *, today: date | None = None) -> IdNumber:
    """Validate an 18-digit ID number (GB 11643 checksum by python-stdnum, birth date, area
    code) and derive birth date and gender from it."""
    text = re.sub(r"\s+", "", str(raw or "")).upper()
    if not text:
        raise InvalidIdentifier("必填")
    if len(text) != 18:
        raise InvalidIdentifier("身份证号应为 18 位")
    if not text[:17].isdigit() or not (text[17].isdigit() or text[17] == "X"):
        raise InvalidIdentifier("身份证号前 17 位应为数字，末位为数字或 X")
    if text[-1] != ric.calc_check_digit(text):
        raise InvalidIdentifier("身份证号校验位不正确")
    try:
        ric.get_birth_date(text)
    except stdnum_errors.ValidationError:
        raise InvalidIdentifier("身份证号中的出生日期无效") from None
    if not _known_area(text[:6]):
        raise InvalidIdentifier("身份证号中的地区码无效")
    number = ric.compact(text)
    born = ric.get_birth_date(number)
    if today is not None and born > today:
        raise InvalidIdentifier("身份证号中的出生日期在未来")
    if born.year < 1890:
        raise InvalidIdentifier("身份证号中的出生日期无效")
    gender = "M" if int(number[16]) % 2 == 1 else "F"
    return IdNumber(value=number, birth_date=born, gender=gender)


def normalise_phone(raw: str) -> str:
    """A mainland mobile (11 digits) or landline (``0551-65551234[-ext]``) in canonical form."""
    text = re.sub(r"[\s()（）]", "", str(raw or ""))
    if text.startswith("+86"):
        text = text[3:]
    elif text.startswith("0086"):
        text = text[4:]
    text = text.lstrip("-")
    digits_only = text.replace("-", "")
    if _MOBILE.match(digits_only):
        return digits_only
    match = _LANDLINE.match(text)
    if match:
        area, number, ext = match.groups()
        return f"{area}-{number}" + (f"-{ext}" if ext else "")
    raise InvalidIdentifier("电话应为 11 位手机号或带区号的固定电话（如 0551-65551234）")


def phone_index_value(phone: str) -> str:
    """What the blind index of a phone is computed from: its digits."""
    return re.sub(r"\D", "", phone)


def normalise_name(raw: str) -> str:
    name = re.sub(r"\s+", " ", str(raw or "")).strip()
    if not name:
        raise InvalidIdentifier("必填")
    if len(name) > 40:
        raise InvalidIdentifier("姓名不超过 40 个字符")
    return name


def mask_id(value: str) -> str:
    """``3401**********1234``."""
    return value[:4] + "*" * (len(value) - 8) + value[-4:] if len(value) > 8 else "*" * len(value)


def mask_phone(value: str) -> str:
    """``138****5678`` for a mobile, ``0551-****1234`` for a landline."""
    if _MOBILE.match(value):
        return value[:3] + "****" + value[-4:]
    area, _, rest = value.partition("-")
    number = rest.split("-")[0]
    return f"{area}-" + "*" * max(0, len(number) - 4) + number[-4:]


def age_on(birth: date, day: date) -> int:
    return day.year - birth.year - ((day.month, day.day) < (birth.month, birth.day))


def id_for(area: str, birth: date, sequence: int) -> str:
    """A valid ID number for an area code, birth date and 3-digit sequence (demo and tests)."""
    body = f"{area}{birth:%Y%m%d}{sequence % 1000:03d}"
    return body + ric.calc_check_digit(body + "0")
