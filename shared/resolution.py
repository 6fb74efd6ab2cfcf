"""From a raw measurement to the (customer, meter, series, value, time) facts it asserts.

Both the ingest service and the aggregator run these same rules, so a measurement
that reaches Kafka by any path is judged identically. Errors name the field.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import quote

from shared.catalog import Catalog
from shared.models import Measurement, Meter, Subscription
from shared.money import decimal_text

Problem = tuple[str, str]
NO_SUBSCRIPTION = "has no subscription covering"
# A value has at most 26 integer and 12 fractional digits: what the store's
# Decimal(38, 12) holds exactly. More places would be cut in the store while the rater
# bills the exact total, so they are refused, not rounded. Period totals are
# Decimal(76, 12) (deploy/clickhouse/006): no sum of accepted values overflows.
MAX_INTEGER_DIGITS = 26
MAX_FRACTION_DIGITS = 12


@dataclass(frozen=True)
class Limits:
    max_future: timedelta
    dedup_window: timedelta


@dataclass(frozen=True)
class Fact:
    """One measurement's contribution to one meter's series."""

    customer_name: str
    meter: Meter
    series: str
    value: Decimal | str
    time: datetime
    measurement: Measurement


_INTEGER_BOUND = 10**MAX_INTEGER_DIGITS  # an int is within magnitude_problems' bound below it


@dataclass(frozen=True)
class _MeterRule:
    """What `resolve` asks of one meter, read once per catalog version."""

    meter: Meter
    meters: tuple[Meter]  # (meter,): what `accepted` returns for a measurement naming it
    counts_text: bool  # a STRING meter: every value counts as it is
    expected_labels: tuple[str, ...]
    event_label_filter: tuple[tuple[str, str], ...]


class CatalogIndex:
    """The catalog as `resolve` reads it, compiled once per catalog version.

    `accepted_customer` answers the one question of a hot path that only needs the
    verdict: would `resolve` accept this measurement, and for which customer? It
    returns None whenever `resolve` would report a problem, and never says why: a
    caller that gets None asks `resolve`, which alone words the problems. So the rules
    stay here, in one module, and tests/unit/test_ingest_fast_path.py holds the two
    to the same verdicts. Customers, mappings and each customer's subscriptions are
    looked up in the live catalog (plain dict lookups already); meters by event and
    their rules are built here, once per catalog revision (a few meters: a rebuild costs
    nothing like the catalog's size).
    """

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.revision = catalog.revision  # read before the snapshot: a later change rebuilds
        meters = list(catalog.meters.values())  # one step: the view's thread may be applying
        rules = {meter.name: _rule(meter) for meter in meters}
        self._by_name: Mapping[str, _MeterRule] = rules
        by_event: dict[str, list[_MeterRule]] = {}
        for meter in meters:  # Catalog._reindex_events' order
            if meter.event_name is not None:
                by_event.setdefault(meter.event_name, []).append(rules[meter.name])
        self._by_event = by_event

    def accepted_customer(
        self, customer_name: str | None, meter_name: str | None, event_name: str | None,
        labels: Mapping[str, str], value: int | Decimal | str, at: datetime, earliest: datetime, latest: datetime,
    ) -> str | None:
        """The customer `resolve` would credit, or None where it would find a problem.

        `earliest` and `latest` are `received_at - dedup_window` and `received_at +
        max_future`; an int `value` stands for Decimal(value), as the model holds it.
        """
        accepted = self.accepted(customer_name, meter_name, event_name, labels, value, at, earliest, latest)
        return None if accepted is None else accepted[0]

    def accepted(
        self, customer_name: str | None, meter_name: str | None, event_name: str | None,
        labels: Mapping[str, str], value: int | Decimal | str, at: datetime, earliest: datetime, latest: datetime,
    ) -> tuple[str, tuple[Meter, ...], Subscription] | None:
        """`accepted_customer`, with the meters `resolve` would make facts for, in its
        order, and the subscription covering `at` (`Catalog.subscription_at`'s answer)."""
        if at > latest or at < earliest:
            return None
        if customer_name is not None:
            customer = customer_name if customer_name in self.catalog.customers else None
        else:
            customer = None
            for label, label_value in labels.items():
                customer = self.catalog.mapping_owner(label, label_value)
                if customer is not None:
                    break
        if customer is None:
            return None
        rules: tuple[_MeterRule, ...]
        if meter_name is not None:
            rule = self._by_name.get(meter_name)
            rules = () if rule is None else (rule,)
        else:
            rules = tuple(
                r for r in self._by_event.get(event_name or "", ())
                if all(labels.get(k) == v for k, v in r.event_label_filter)
            )
        if not rules:
            return None
        for rule in rules:
            if not rule.counts_text:
                # An int (never a bool: the model refuses those) from 0 to 10^26 - 1 is what
                # typed_value accepts on any numeric meter; anything else it judges itself.
                if isinstance(value, int):
                    if not 0 <= value < _INTEGER_BOUND and typed_value(Decimal(value), rule.meter)[1]:
                        return None
                elif typed_value(value, rule.meter)[1]:
                    return None
            for label in rule.expected_labels:
                if label not in labels:
                    return None
        for sub in self.catalog.subscriptions_by_customer.get(customer, ()):
            if sub.start_time <= at and (sub.end_time is None or at < sub.end_time):
                return customer, rules[0].meters if len(rules) == 1 else tuple(rule.meter for rule in rules), sub
        return None


def _rule(meter: Meter) -> _MeterRule:
    return _MeterRule(
        meter, (meter,), meter.data_type == "STRING", tuple(meter.expected_labels),
        tuple(meter.event_label_filter.items()),
    )


class CatalogIndexes:
    """The CatalogIndex of the catalog `catalog()` returns now, rebuilt when it changed.

    A change is another catalog object or a new `Catalog.revision` (it grows with
    every put and delete).
    """

    def __init__(self, catalog: Callable[[], Catalog]) -> None:
        self._catalog = catalog
        self._built: CatalogIndex | None = None

    def current(self) -> CatalogIndex:
        catalog = self._catalog()
        built = self._built
        if built is None or built.catalog is not catalog or built.revision != catalog.revision:
            built = CatalogIndex(catalog)
            self._built = built
        return built


def series_key(meter: Meter, labels: dict[str, str]) -> str:
    """Primary-label series as 'label=value' pairs joined by '&' ('' when unsplit).

    Labels and values are percent-encoded, so a value containing '&' or '=' can never
    make two different label sets read as one series.
    """
    if not meter.primary_labels:
        return ""
    return "&".join(
        f"{quote(label, safe='')}={quote(labels.get(label, ''), safe='')}" for label in meter.primary_labels
    )


def resolve(
    measurement: Measurement, catalog: Catalog, received_at: datetime, limits: Limits,
) -> tuple[list[Fact], list[Problem]]:
    at = measurement.time or received_at
    problems = _time_problems(at, received_at, limits)
    customer = catalog.customer_for(measurement)
    if customer is None:
        if measurement.customer_name is not None:
            problems.append(("customer_name", f"unknown customer {measurement.customer_name!r}"))
        else:
            problems.append(("customer_name", "missing, and no customer's measurement_mappings match the labels"))
    meters = catalog.meters_for(measurement)
    if not meters:
        if measurement.meter_name is not None:
            problems.append(("meter_name", f"unknown meter {measurement.meter_name!r}"))
        else:
            problems.append(("event_name", f"no meter takes event_name {measurement.event_name!r} with these labels"))
    facts = []
    for meter in meters:
        value, value_problems = typed_value(measurement.value, meter)
        problems.extend(value_problems)
        missing = [label for label in meter.expected_labels if label not in measurement.labels]
        for label in missing:
            problems.append((f"labels.{label}", f"required by meter {meter.name!r}"))
        if customer is not None and value is not None and not value_problems and not missing:
            facts.append(Fact(customer, meter, series_key(meter, measurement.labels), value, at, measurement))
    if customer is not None and not problems and catalog.subscription_at(customer, at) is None:
        problems.append(("time", f"customer {customer!r} {NO_SUBSCRIPTION} {at.isoformat()}"))
    if problems:
        return [], problems
    return facts, []


def catalog_may_lag(problems: list[Problem]) -> bool:
    """Whether a catalog that has caught up might accept what these problems refuse: an
    unknown customer, meter or event, or a customer without a subscription covering the
    instant yet (another service may have just added it)."""
    return any(
        field in ("customer_name", "meter_name", "event_name") or NO_SUBSCRIPTION in reason
        for field, reason in problems
    )


def _time_problems(at: datetime, received_at: datetime, limits: Limits) -> list[Problem]:
    if at > received_at + limits.max_future:
        return [("time", f"is more than {int(limits.max_future.total_seconds())} s in the future")]
    if at < received_at - limits.dedup_window:
        return [("time", f"is older than the {limits.dedup_window.days}-day dedup window")]
    return []


# Text values already judged, per meter: usage repeats its values ("12.5", "0.75"), and
# judging one took 0.8 µs, twice per measurement on the aggregator's hot path (the judge's
# verdict, then the fold's value). The key holds everything typed_value reads of the
# meter. Full, it starts over.
_TYPED_TEXTS: dict[tuple[str, str, str, str, str], tuple[Decimal | str | None, tuple[Problem, ...]]] = {}
_TYPED_TEXTS_KEPT = 4096


def typed_value(raw: Decimal | str, meter: Meter) -> tuple[Decimal | str | None, list[Problem]]:
    """A measurement's value as `meter` counts it, or the problems that refuse it."""
    if meter.data_type == "STRING":
        # A JSON number on a STRING meter counts by its value: 7 and 7.0 are one value.
        return (raw if isinstance(raw, str) else decimal_text(raw)), []
    if type(raw) is not str:
        return _number(raw, meter)
    key = (raw, meter.data_type, meter.meter_type, meter.aggregation, meter.name)
    known = _TYPED_TEXTS.get(key)
    if known is None:
        if len(_TYPED_TEXTS) >= _TYPED_TEXTS_KEPT:
            _TYPED_TEXTS.clear()
        value, problems = _number(raw, meter)
        known = _TYPED_TEXTS[key] = (value, tuple(problems))
    return known[0], list(known[1])


def _number(raw: Decimal | str, meter: Meter) -> tuple[Decimal | None, list[Problem]]:
    """typed_value on a numeric meter."""
    within_bounds = False
    if isinstance(raw, str):
        within_bounds = _PLAIN_NUMBER.fullmatch(raw) is not None
        try:
            number = Decimal(raw)
        except InvalidOperation:
            return None, [("value", f"must be a number for {meter.data_type} meter {meter.name!r}")]
        if not number.is_finite():
            return None, [("value", "must be a finite number")]
    else:
        number = raw
    if number.is_zero():
        number = Decimal(0)  # 0E-999999999 is 0, but format() would spell out its zeros
    magnitude = [] if within_bounds else magnitude_problems(number)
    if magnitude:
        return None, magnitude
    if meter.data_type == "INT" and number != number.to_integral_value():
        return None, [("value", f"must be a whole number for INT meter {meter.name!r}")]
    if number < 0 and meter.meter_type == "COUNTER" and meter.aggregation != "UNIQUE_COUNT":
        # A counter measures usage, which never runs backwards: a negative value is a
        # producer's bug that would silently lower a bill (docs/decisions.md). Distinct
        # values are identities, not amounts, so -1 is as good a value as 1 there.
        return None, [("value", f"must not be negative for COUNTER meter {meter.name!r}")]
    return number, []


# Decimal text that is within magnitude_problems' bounds by its shape alone (at most
# MAX_INTEGER_DIGITS digits before the point, MAX_FRACTION_DIGITS after it, no exponent):
# the usual spelling of a value sent as text, spared the digit-by-digit reading.
_PLAIN_NUMBER = re.compile(rf"-?[0-9]{{1,{MAX_INTEGER_DIGITS}}}(?:\.[0-9]{{1,{MAX_FRACTION_DIGITS}}})?")


def magnitude_problems(number: Decimal) -> list[Problem]:
    """Bounds checked on the exponent alone, before any arithmetic.

    "1E+999999999" is a short string, but to_integral_value() of it overflows the decimal
    context (an exception, not an answer) and "1E-999999999" spelled out is a gigabyte of
    zeros; adjusted() and the exponent are exact without a context.
    """
    if number.is_zero():
        return []  # typed_value writes any zero as 0, whatever its exponent
    if number.adjusted() >= MAX_INTEGER_DIGITS:
        return [("value", f"is too large (at most {MAX_INTEGER_DIGITS} integer digits)")]
    _sign, digits, exponent = number.as_tuple()
    # Trailing zeros are not places: "1.50000000000000" is 1.5.
    zeros = len(digits) - len(bytes(digits).rstrip(b"\x00")) if isinstance(exponent, int) else 0
    if isinstance(exponent, int) and exponent + zeros < -MAX_FRACTION_DIGITS:
        return [("value", f"has too many decimal places (at most {MAX_FRACTION_DIGITS})")]
    return []
