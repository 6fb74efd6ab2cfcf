"""Hostile records for the measurements and catalog topics, as a careless or malicious
Kafka-native producer would write them (issue 13): deep nesting, huge and tiny numbers,
invalid UTF-8, wrong types, oversized envelopes, names past their limits.

Each generated record says what the pipeline must do with it: how many of its parts are
dead letters (and at which envelope indexes), and which valid measurements it carries.
The fuzz test (tests/e2e/test_kafka_fuzz.py) and the hostile-load benchmark both use it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.aggregator.envelopes import MAX_ENVELOPE_ITEMS
from shared.models.limits import MAX_ID_LENGTH, MAX_LABELS, MAX_NAME_LENGTH

WHOLE = -1  # "the whole record is one dead letter" (no original_index header)


@dataclass
class Hostile:
    """One record to produce, and what must come of it."""

    kind: str
    key: bytes | None
    value: bytes | None
    dead: list[int] = field(default_factory=list)  # envelope indexes dead-lettered; [WHOLE] for the record
    valid: list[dict[str, Any]] = field(default_factory=list)  # measurements that must fold


@dataclass(frozen=True)
class Target:
    """The catalog the hostile records aim at: one customer with INT meters sum/max/uniq."""

    customer: str
    sum_meter: str
    max_meter: str
    unique_meter: str
    now: datetime


# json.dumps cannot write a 5,000-digit int (Python caps int/str conversion at 4,300
# digits), so the spoiler leaves this mark and _dump writes the digits in its place.
HUGE_NUMBER = "__5000_DIGITS__"


def _dump(document: Any) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode().replace(f'"{HUGE_NUMBER}"'.encode(), b"7" * 5000)


class HostileRecords:
    """A seeded stream of hostile (and, mixed in, valid) measurement records."""

    def __init__(self, rng: random.Random, target: Target, heavy: bool = True) -> None:
        """`heavy=False` leaves out the records of hundreds of kilobytes (deep nesting,
        oversized envelopes, 1 MB records): a flood of small bad measurements."""
        self.rng = rng
        self.target = target
        self._ids = 0
        self._weights = [0.0 if not heavy and maker in _HEAVY else w for maker, w in _RECORD_MAKERS_WEIGHTED]

    def valid_measurement(self) -> dict[str, Any]:
        t = self.target
        self._ids += 1
        meter = self.rng.choice([t.sum_meter, t.max_meter, t.unique_meter])
        at = t.now - timedelta(seconds=self.rng.randint(0, 3600), microseconds=self.rng.randint(0, 999_999))
        return {"id": f"ok-{self._ids}", "meter_name": meter, "customer_name": t.customer,
                "value": self.rng.randint(0, 1000), "time": at.isoformat(), "labels": {"region": "eu"}}

    # ---- bad measurements: each is refused by judging, with its reason -------------

    def bad_measurement(self) -> dict[str, Any]:
        good = self.valid_measurement()
        # Never the id of a valid one (dedup must not hide it), set before spoiling (the
        # id may be what is spoiled); on a counter where a negative value is refused.
        good.update(id=f"bad-{self._ids}", meter_name=self.rng.choice([self.target.sum_meter, self.target.max_meter]))
        spoil: Callable[[dict[str, Any]], None] = self.rng.choice(_SPOILERS)
        spoil(good)
        return good

    # ---- records ------------------------------------------------------------------

    def record(self) -> Hostile:
        maker = self.rng.choices(_RECORD_MAKERS, weights=self._weights)[0]
        return maker(self)

    def one_valid(self) -> Hostile:
        m = self.valid_measurement()
        return Hostile("valid object", self.target.customer.encode(), _dump(m), valid=[m])

    def valid_with_a_hostile_key(self) -> Hostile:
        m = self.valid_measurement()
        key = self.rng.choice([b"\xff\xfe\xfd", b"", None, b"x" * 100_000, b"\x00" * 10])
        return Hostile("valid, hostile key", key, _dump(m), valid=[m])

    def one_bad(self) -> Hostile:
        return Hostile("bad object", self.target.customer.encode(), _dump(self.bad_measurement()), dead=[WHOLE])

    def mixed_envelope(self) -> Hostile:
        items: list[Any] = []
        dead: list[int] = []
        valid: list[dict[str, Any]] = []
        for index in range(self.rng.randint(1, 60)):
            roll = self.rng.random()
            if roll < 0.5:
                m = self.valid_measurement()
                valid.append(m)
                items.append(m)
            elif roll < 0.85:
                items.append(self.bad_measurement())
                dead.append(index)
            else:
                items.append(self.rng.choice([None, 5, "x", [], [[[]]], {}, True, 1e308]))
                dead.append(index)
        return Hostile("mixed envelope", self.target.customer.encode(), _dump(items), dead=dead, valid=valid)

    def deep_nesting(self) -> Hostile:
        depth = self.rng.choice([1_000, 20_000, 100_000, 300_000])
        opener, closer = self.rng.choice([(b"[", b"]"), (b'{"a":', b"}")])
        depth = min(depth, 900_000 // (len(opener) + len(closer)))  # under the record limit
        return Hostile("deep nesting", b"k", opener * depth + b"1" + closer * depth, dead=[WHOLE])

    def not_json(self) -> Hostile:
        value = self.rng.choice([
            self.rng.randbytes(self.rng.randint(1, 2000)),
            b"\xff" + _dump(self.valid_measurement()),
            _dump(self.valid_measurement())[:-1],
            b'{"id": "\xc3\x28", "meter_name": "m", "value": 1}',  # invalid UTF-8 inside a string
            b"   ", b"NaN", b"1e999999", b"null", b"true", b'"text"', b"42",
        ])
        if value[:1] == b"[":
            value = b"?" + value  # a random array prefix would make it an envelope
        return Hostile("not a measurement", b"k", value, dead=[WHOLE])

    def empty_record(self) -> Hostile:
        return Hostile("empty record", b"k", None, dead=[WHOLE])

    def empty_envelope(self) -> Hostile:
        return Hostile("empty envelope", b"k", b"[]")

    def oversized_envelope(self) -> Hostile:
        item = self.rng.choice([{}, 1, {"id": "x", "meter_name": "m", "value": 1}])  # 10,001 fit in 1 MB
        return Hostile("oversized envelope", b"k", _dump([item] * (MAX_ENVELOPE_ITEMS + 1)), dead=[WHOLE])

    def near_the_record_limit(self) -> Hostile:
        """About 1 MB: its dead letter must be cut to fit the broker (dead_letters.letter)."""
        return Hostile("1 MB record", b"k" * 1000, b'{"id":"' + b"x" * 990_000 + b'"}', dead=[WHOLE])


def _spoil_value(m: dict[str, Any], value: Any) -> None:
    m["value"] = value


_SPOILERS: list[Callable[[dict[str, Any]], None]] = [
    lambda m: _spoil_value(m, "9" * 27),  # beyond 26 integer digits
    lambda m: _spoil_value(m, "1e-999999999999999999"),  # a tiny exponent
    lambda m: _spoil_value(m, "1E+999999999"),  # a huge one
    lambda m: _spoil_value(m, HUGE_NUMBER),  # a 5,000-digit JSON number
    lambda m: _spoil_value(m, -5),  # negative on a counter
    lambda m: _spoil_value(m, 1.5),  # a fraction on an INT meter
    lambda m: _spoil_value(m, "NaN"),
    lambda m: _spoil_value(m, {"nested": [1]}),
    lambda m: _spoil_value(m, [1, 2]),
    lambda m: _spoil_value(m, None),
    lambda m: _spoil_value(m, True),
    lambda m: m.update(id=5),
    lambda m: m.update(id="i" * (MAX_ID_LENGTH + 1)),
    lambda m: m.update(customer_name="nobody-" + "n" * 20),
    lambda m: m.update(customer_name="c" * (MAX_NAME_LENGTH + 1)),
    lambda m: m.update(meter_name="no-such-meter"),
    lambda m: m.update(meter_name=None, event_name=None),
    lambda m: m.update(time="yesterday"),
    lambda m: m.update(time=1e20),
    lambda m: m.update(time="9999-12-31T23:59:59Z"),  # far in the future
    lambda m: m.update(time="2001-01-01T00:00:00Z"),  # before the dedup window
    lambda m: m.update(time="2026-01-01T00:00:00"),  # no timezone
    lambda m: m.update(labels="region=eu"),
    lambda m: m.update(labels={f"k{i}": "v" for i in range(MAX_LABELS + 1)}),
    lambda m: m.update(labels={"region": {"x": 1}}),
    lambda m: m.update(reset_total="yes please"),
    lambda m: m.pop("value"),
]

_RECORD_MAKERS_WEIGHTED: list[tuple[Callable[[HostileRecords], Hostile], float]] = [
    (HostileRecords.one_valid, 10),
    (HostileRecords.valid_with_a_hostile_key, 4),
    (HostileRecords.one_bad, 30),
    (HostileRecords.mixed_envelope, 8),
    (HostileRecords.deep_nesting, 1),
    (HostileRecords.not_json, 10),
    (HostileRecords.empty_record, 2),
    (HostileRecords.empty_envelope, 1),
    (HostileRecords.oversized_envelope, 0.3),
    (HostileRecords.near_the_record_limit, 0.1),
]
_RECORD_MAKERS = [maker for maker, _ in _RECORD_MAKERS_WEIGHTED]
_HEAVY = {HostileRecords.deep_nesting, HostileRecords.oversized_envelope, HostileRecords.near_the_record_limit}


def hostile_catalog_records(rng: random.Random, count: int) -> list[tuple[bytes, bytes | None, str]]:
    """(key, value, part) catalog records every view must skip, by the part it counts."""
    makers: list[Callable[[int], tuple[bytes, bytes | None, str]]] = [
        lambda i: (b"customers/\xff" + str(i).encode(), b'{"name": "x"}', "key"),
        lambda i: (b"\xc3\x28meters/m" + str(i).encode(), None, "key"),
        lambda i: (f"widgets/w{i}".encode(), b"{}", "kind"),
        lambda i: (f"customers/fz-{i}".encode(), b"{not json", "value"),
        lambda i: (f"customers/fz-{i}".encode(), b"[" * 50_000 + b"]" * 50_000, "value"),
        lambda i: (f"meters/fz-{i}".encode(), b'{"name": 7}', "value"),
        lambda i: (f"customers/fz-{i}".encode(), b'{"name": "someone-else"}', "value"),
        lambda i: (f"price_plans/fz-{i}".encode(), b"\xff\xfe", "value"),
    ]
    return [rng.choice(makers)(i) for i in range(count)]
