"""Folding facts into per-series period state (semantics.md, Aggregation).

A `PeriodState` is one series' fold over one billing period, for the meters whose
quantity does not depend on event-time order (order-dependent ones keep a
`shared.timeline.Timeline`). `applied` makes folding idempotent under replay: a fact
whose source position is not beyond it is already inside `value` and is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Context, Decimal
from typing import Any

from shared.models import Meter
from shared.models.measurement import utc_text
from shared.money import decimal_text
from shared.series_keys import SEP, TIMELINE
from shared.timeline import Timeline

# Measurement values carry up to 26 integer and 12 fractional digits (the store's
# Decimal(38, 12); shared.resolution refuses more places): every one is a whole number of
# UNIT, so a state keeps its quantity as an int of units. Exact like a Decimal, at a
# third of its size (500,000 series held 35 MB less) and with integer arithmetic.
FRACTION_DIGITS = 12
UNIT = 10**FRACTION_DIGITS
# Wide enough for any sum of units as a Decimal (the default 28 digits are not).
PRECISION = 80
_EXACT = Context(prec=PRECISION)
TIMELINE_SUFFIX = SEP + TIMELINE


def to_units(number: Decimal) -> int:
    """`number` in units of 10**-12; raises for a value with more decimal places."""
    scaled = number.scaleb(FRACTION_DIGITS, _EXACT)
    units = int(scaled)
    if units != scaled:
        raise ValueError(f"{number} has more than {FRACTION_DIGITS} decimal places")
    return units


# Values already converted to units: usage repeats its values (1, 3, 12.5), and to_units
# cost 0.3 µs a measurement. Equal values are one key whatever their spelling (12.5 and
# 12.50), and they have the same units. Full, it starts over.
_UNITS: dict[Decimal | str, int] = {}
_UNITS_KEPT = 4096


def from_units(units: int) -> Decimal:
    return Decimal(units).scaleb(-FRACTION_DIGITS, _EXACT)


# The texts of period ends already written: every series of a plan's period shares its
# end, and the state log writes a series' state at each batch that changes it (formatting
# the end each time was 1.5 % of the fold's CPU). Full, it starts over.
_END_TEXTS: dict[datetime, str] = {}
_END_TEXTS_KEPT = 4096


def _end_text(end: datetime) -> str:
    # Equal aware instants hash alike whatever their zone, and utc_text writes an instant,
    # not its zone: one text per key is right.
    text = _END_TEXTS.get(end)
    if text is None:
        if len(_END_TEXTS) >= _END_TEXTS_KEPT:
            _END_TEXTS.clear()
        text = _END_TEXTS[end] = utc_text(end)
    return text


@dataclass(slots=True)
class PeriodState:
    """One series over one period: its quantity so far and what is folded into it."""

    end: datetime  # the period's end: the store row carries it, and housekeeping reads it
    units: int = 0  # the quantity so far, in UNITs
    events: int = 0
    applied: int = -1  # the position of the last item folded in
    # UNIQUE_COUNT only: the distinct values, as an insertion-ordered set, so the state log
    # can persist just the values added since its last flush.
    uniques: dict[str, None] | None = None

    @property
    def value(self) -> Decimal:
        """The quantity so far (12 decimal places, like the store's column)."""
        return from_units(self.units)

    def to_json(self) -> list[Any]:
        """The state without its distinct values (the state log writes those apart)."""
        return [self.units, self.events, self.applied, _end_text(self.end)]

    @classmethod
    def from_json(cls, data: list[Any] | dict[str, Any]) -> PeriodState:
        """Read `to_json`, or the dict written before states were typed (logs of earlier releases)."""
        if isinstance(data, dict):
            data = [data["value"], data["events"], data["applied"], data["end"]]
        quantity, events, applied, end = data
        # A quantity as decimal text: a log of an earlier release.
        units = to_units(Decimal(quantity)) if isinstance(quantity, str) else quantity
        return cls(datetime.fromisoformat(end), units, events, applied)


def fold(state: PeriodState, meter: Meter, value: Decimal | str, position: int) -> bool:
    """Apply one fact in place; returns False when its position was already applied.

    Everything that can raise comes before the first change: an item that fails leaves
    the state as it was.
    """
    if position <= state.applied:
        return False
    aggregation = meter.aggregation
    if aggregation == "UNIQUE_COUNT":
        # Numbers are compared by value, not spelling: 5, 5.0 and 5E+0 are one value.
        text = value if isinstance(value, str) else decimal_text(value)
        uniques = state.uniques
        if uniques is None:
            uniques = state.uniques = {}
        uniques[text] = None
        new = len(uniques) * UNIT
    elif aggregation == "COUNT":
        new = (state.events + 1) * UNIT
    else:
        units = _UNITS.get(value)
        if units is None:
            units = to_units(value if isinstance(value, Decimal) else Decimal(value))
            if len(_UNITS) >= _UNITS_KEPT:
                _UNITS.clear()
            _UNITS[value] = units
        if aggregation == "SUM":
            new = state.units + units
        elif state.events == 0:
            new = units
        elif aggregation == "MAX":
            new = max(state.units, units)
        else:  # MIN
            new = min(state.units, units)
    state.units = new
    state.events += 1
    state.applied = position
    return True


SeriesState = PeriodState | Timeline


def series_state_from_json(key: str, data: list[Any] | dict[str, Any]) -> SeriesState:
    """A state as the state log wrote it: a timeline under a TIMELINE key, else a period state."""
    if key.endswith(TIMELINE_SUFFIX):
        return Timeline.from_json(data)
    return PeriodState.from_json(data)
