"""shared.resolution.typed_value: plain decimal text skips the digit-by-digit bounds check
(magnitude_problems) only where that check could not refuse it."""

from __future__ import annotations

import random
import re

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
    full = [typed_value(text, meter) for text in texts]
    assert fast == full
    assert any(problems for _, problems in full) and any(not problems for _, problems in full)
