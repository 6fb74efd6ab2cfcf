"""Folding facts into per-series period state (semantics.md, Aggregation).

State is a plain JSON-able dict so it can live in a Faust table and its changelog:
    {"value": "<decimal text>", "events": int, "applied": <last source offset>,
     "uniques": {value: None, ...} (UNIQUE_COUNT only: an insertion-ordered set, so the
                 aggregator's state log can persist just the values added since its last flush)}
`applied` makes folding idempotent under replay: a fact whose source offset is not
beyond `applied` is already inside `value` and is skipped.
"""

from __future__ import annotations

from decimal import Decimal, localcontext
from typing import Any

from shared.models import Meter
from shared.money import decimal_text

# Measurement values carry up to 26 integer and 12 fractional digits (the store's
# Decimal(38, 12)); sums must keep every one of them, beyond the default 28 digits.
PRECISION = 80

State = dict[str, Any]


def empty_state() -> State:
    return {"value": "0", "events": 0, "applied": -1}


def quantity(state: State) -> Decimal:
    return Decimal(state["value"])


def fold(state: State, meter: Meter, value: Decimal | str, offset: int) -> bool:
    """Apply one fact in place; returns False when the offset was already applied."""
    if offset <= state["applied"]:
        return False
    state["applied"] = offset
    first = state["events"] == 0
    state["events"] += 1
    aggregation = meter.aggregation
    if aggregation == "UNIQUE_COUNT":
        uniques = state.get("uniques")
        if uniques is None:
            uniques = state["uniques"] = {}
        # Numbers are compared by value, not spelling: 5, 5.0 and 5E+0 are one value.
        uniques[value if isinstance(value, str) else decimal_text(value)] = None
        state["value"] = str(len(uniques))
        return True
    if aggregation == "COUNT":
        state["value"] = str(state["events"])
        return True
    number = Decimal(value)
    current = Decimal(state["value"])
    if aggregation == "SUM":
        with localcontext() as ctx:
            ctx.prec = PRECISION
            current += number
    elif aggregation == "MAX":
        current = number if first else max(current, number)
    else:  # MIN
        current = number if first else min(current, number)
    state["value"] = str(current)
    return True
