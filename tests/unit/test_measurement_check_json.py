"""shared.measurement_check.check_json gives `check`'s answer on a record's bytes, or none.

`check_json` (msgspec) may only narrow what the fast path accepts: whenever it answers,
the answer is `json.loads` plus `check` of each item, field for field; where it answers
None, the caller reads the record the old way. On the shapes producers send every day it
must answer itself, or it saves nothing.
"""

from __future__ import annotations

import contextlib
import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared.measurement_check import Checked, check, check_json
from tests.unit.test_ingest_fast_path import BOUNDARIES, measurements, ordinary_valid

ITEM = {"id": "a", "meter_name": "api_calls", "customer_name": "acme", "value": 1}


def checked_the_old_way(value: bytes) -> Checked | list[Checked] | None:
    """What envelopes.py did before check_json: json.loads, then check of each item."""
    try:
        raw = json.loads(value.decode())
    except (ValueError, RecursionError):
        return None
    if isinstance(raw, list):
        items = [check(each) for each in raw]
        return None if any(item is None for item in items) else [item for item in items if item is not None]
    return check(raw)


def same(a: Checked | list[Checked] | None, b: Checked | list[Checked] | None) -> bool:
    """Equal, with each field of the same type too (1 and Decimal(1) are equal, but the
    fold treats an int and a Decimal differently)."""
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, Checked) and isinstance(b, Checked):
        return all(type(x) is type(y) and x == y for x, y in zip(a, b, strict=True))
    return a is None and b is None


def spellings(raw: Any) -> list[bytes]:
    """The JSON of `raw` with non-ASCII escaped, and as UTF-8 where it can be encoded."""
    out = [json.dumps(raw).encode()]
    with contextlib.suppress(UnicodeEncodeError):  # a lone surrogate has no UTF-8
        out.append(json.dumps(raw, ensure_ascii=False, separators=(",", ":")).encode())
    return out


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.one_of(measurements(), st.lists(measurements(), max_size=4)))
def test_whenever_check_json_answers_it_is_the_old_answer(raw: Any) -> None:
    for value in spellings(raw):
        fast = check_json(value)
        if fast is not None:
            assert same(fast, checked_the_old_way(value)), value


@settings(max_examples=500, deadline=None, suppress_health_check=list(HealthCheck))
@given(raw=st.one_of(ordinary_valid(), st.lists(ordinary_valid(), max_size=6)))
def test_check_json_answers_every_ordinary_record_itself(raw: Any) -> None:
    for value in spellings(raw):
        assert check_json(value) is not None, value
        assert same(check_json(value), checked_the_old_way(value))


@pytest.mark.parametrize("accepted,item", BOUNDARIES)
def test_each_rule_on_both_sides_of_its_line(accepted: bool, item: dict[str, Any]) -> None:
    value = json.dumps(item).encode()
    old = checked_the_old_way(value)
    fast = check_json(value)
    assert fast is None or same(fast, old)
    if old is None:
        assert fast is None  # what check refuses, check_json never takes


@pytest.mark.parametrize("value", [
    b'{"id":"a","meter_name":"m","value":1,"value":2}',  # the last of a repeated key, as json.loads reads it
    b' [ {"id" : "a", "meter_name" : "m", "value" : 1.5} ]\n',
    b'[{"id":"a","meter_name":"m","value":-0}]', b'[{"id":"a","meter_name":"m","value":-0.0}]',
    b'[{"id":"a","meter_name":"m","value":5e-324}]', b'[{"id":"a","meter_name":"m","value":1E+2}]',
    b'[{"id":"\\ud83d\\ude00","meter_name":"m","value":1}]', b"[]",
])
def test_unusual_but_readable_spellings_read_as_json_loads_reads_them(value: bytes) -> None:
    fast = check_json(value)
    assert fast is not None and same(fast, checked_the_old_way(value))


@pytest.mark.parametrize("value", [
    b'[{"id":"\xff","meter_name":"m","value":1}]',  # not UTF-8
    b'\xef\xbb\xbf[{"id":"a","meter_name":"m","value":1}]',  # a byte-order mark
    "[{\"id\":\"a\",\"meter_name\":\"m\",\"value\":1}]".encode("utf-16"),
    b'[{"id":"a","meter_name":"m","value":' + b"1" * 5000 + b"}]",  # past Python's digit limit
    b'[{"id":"a","meter_name":"m","value":1e400}]', b'[{"id":"a","meter_name":"m","value":NaN}]',
    b'[{"id":"a","meter_name":"m","value":Infinity}]', b'[{"id":"\\ud800","meter_name":"m","value":1}]',
    b'[{"id":"a","meter_name":"m","value":1}] x', b'[{"id":"a","meter_name":"m","value":1},]',
    b'[{"id":"a","meter_name":"m","value":01}]', b'[{"id":"a","meter_name":"m","value":true}]',
    b'[{"id":"a","meter_name":"m","value":1,"labels":null}]', b'[{"id":"a","meter_name":"m","value":1,"x":1}]',
    b'[{"id":"a","value":1}]', b'[{"id":"a","meter_name":"m","value":1,"reset_total":null}]',
    b'[[{"id":"a","meter_name":"m","value":1}]]', b"[1]", b"7", b'"text"', b"null", b"", b"[" * 100_000,
])
def test_what_check_json_cannot_vouch_for_is_left_to_the_old_way(value: bytes) -> None:
    assert check_json(value) is None


def test_a_float_value_is_the_decimal_of_its_shortest_spelling_as_check_makes_it() -> None:
    fast = check_json(json.dumps({**ITEM, "value": 0.1}).encode())
    assert isinstance(fast, Checked) and str(fast.value) == "0.1"
    assert check_json(json.dumps({**ITEM, "value": math.pi}).encode()) == check({**ITEM, "value": math.pi})
