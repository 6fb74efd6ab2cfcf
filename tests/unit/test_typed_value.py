"""shared.resolution.typed_value: plain decimal text skips the digit-by-digit bounds check
(magnitude_problems) only where that check could not refuse it."""

from __future__ import annotations

import random
import re
from decimal import Decimal

import pytest

from shared import resolution
from shared.models import Meter
from shared.resolution import typed_value

METERS = [
    Meter(name="calls"),
    Meter(name="gb", data_type="FLOAT", aggregation="MAX"),
    Meter(name="level", meter_type="GAUGE", data_type="FLOAT"),
]
EDGES = [
    "0", "-0", "-0.000000000000", "5", "5.0", "-5", "12.5", "0.000000000001", "0.0000000000001",
    "9" * 26, "9" * 27, "0" * 25 + "1", "1" + "0" * 26, "9" * 26 + "." + "9" * 12, "1." + "0" * 12, "1." + "0" * 13,
    "1.", ".5", "+5", " 5", "1_000", "1e3", "1E+30", "NaN", "-Infinity", "\u0663", "5.5.5", "", "-",
]


def _random_text(rng: random.Random) -> str:
    integer = "".join(rng.choices("0123456789", k=rng.randint(1, 30)))
    fraction = "".join(rng.choices("0123456789", k=rng.randint(0, 15)))
    return ("-" if rng.random() < 0.3 else "") + integer + ("." + fraction if fraction else "")


@pytest.mark.parametrize("meter", METERS, ids=lambda m: m.name)
def test_the_shortcut_answers_what_the_full_check_answers(meter: Meter, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(11)
    texts = EDGES + [_random_text(rng) for _ in range(3_000)]
    fast = [typed_value(text, meter) for text in texts]
    monkeypatch.setattr(resolution, "_PLAIN_NUMBER", re.compile(r"(?!)"))  # matches nothing
    monkeypatch.setattr(resolution, "_TYPED_TEXTS", {})  # nothing remembered from the first pass
    full = [typed_value(text, meter) for text in texts]
    assert fast == full
    assert any(problems for _, problems in full) and any(not problems for _, problems in full)


@pytest.mark.parametrize("meter", METERS, ids=lambda m: m.name)
def test_a_text_judged_again_gets_the_answer_it_got_the_first_time(meter: Meter,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolution, "_TYPED_TEXTS", {})
    texts = EDGES + [_random_text(random.Random(5)) for _ in range(200)]
    first = [typed_value(text, meter) for text in texts]
    assert [typed_value(text, meter) for text in texts] == first
    monkeypatch.setattr(resolution, "_TYPED_TEXTS", {})
    assert [resolution._number(text, meter) for text in texts] == first


def test_a_remembered_text_is_judged_anew_for_a_meter_that_reads_it_differently() -> None:
    calls, gauge = Meter(name="calls"), Meter(name="level", meter_type="GAUGE", data_type="FLOAT")
    assert typed_value("-1.5", gauge) == (Decimal("-1.5"), [])
    assert typed_value("-1.5", calls)[1]  # refused: not whole, and negative on a counter
    assert typed_value("-1.5", Meter(name="other"))[1][0][1].endswith("'other'")  # worded with its own name
    problems = typed_value("abc", calls)[1]
    problems.append(("x", "y"))  # a caller's list is its own: the next answer is unchanged
    assert typed_value("abc", calls)[1] == [("value", "must be a number for INT meter 'calls'")]


def test_the_remembered_texts_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resolution, "_TYPED_TEXTS", {})
    for n in range(resolution._TYPED_TEXTS_KEPT * 2 + 3):
        typed_value(str(n), METERS[0])
    assert len(resolution._TYPED_TEXTS) <= resolution._TYPED_TEXTS_KEPT
