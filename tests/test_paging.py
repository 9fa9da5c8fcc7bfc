"""Signed list cursors: forged, foreign or wrongly shaped cursors are a 400 naming ``cursor``."""

from __future__ import annotations

import pytest

from backend.errors import ValidationFailed
from backend.paging import decode_cursor, encode_cursor, scope_of

SECRET = "s" * 40


def test_round_trip_and_scope():
    scope = scope_of("list", "filter")
    token = encode_cursor([12, "abc"], scope=scope, secret=SECRET)
    assert decode_cursor(token, scope=scope, secret=SECRET, shape=(int, str)) == [12, "abc"]
    with pytest.raises(ValidationFailed) as caught:
        decode_cursor(token, scope=scope_of("list", "other"), secret=SECRET)
    assert "cursor" in caught.value.fields


@pytest.mark.parametrize("values", [["12", "abc"], [True, "abc"], [12], [12, "abc", 3]])
def test_a_signed_cursor_of_the_wrong_shape_is_refused(values):
    scope = scope_of("list")
    token = encode_cursor(values, scope=scope, secret=SECRET)
    with pytest.raises(ValidationFailed) as caught:
        decode_cursor(token, scope=scope, secret=SECRET, shape=(int, str))
    assert caught.value.fields == {"cursor": "游标无效或已被篡改"}


@pytest.mark.parametrize("token", ["", "abc", "a.b", "!!.??"])
def test_damaged_or_forged_cursors_are_refused(token):
    with pytest.raises(ValidationFailed):
        decode_cursor(token, scope="x", secret=SECRET)
    forged = encode_cursor([1], scope="x", secret="another-secret")
    with pytest.raises(ValidationFailed):
        decode_cursor(forged, scope="x", secret=SECRET)
