"""One batch of measurement records -> table updates, ClickHouse rows, dead letters.

The state lives in mutable mappings (Faust tables in production, dicts in unit tests).
Order of checks per record, and why:
1. decode and validate; anything that can never succeed goes to the dead-letter list;
2. dedup by (customer, meter, id): the first offset that carried an id owns it, so a
   replay of that very record is not mistaken for a duplicate;
3. fold into the series state unless its `applied` offset shows it is already in.
Every series touched (even by a replay) is marked dirty, so its absolute total is
rewritten to ClickHouse after a crash that happened between the table and the store.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Callable, Iterator, MutableMapping

from pydantic import ValidationError

from services.infra.partitioning import SEPARATOR
from shared.catalog import Catalog
from shared.errors import field_errors
from shared.folding import empty_state, fold
from shared.timeline import empty_timeline, insert, is_order_dependent
from shared.trial import trial_end
from shared.models import Measurement, Subscription
from shared.models.measurement import utc_text
from shared.models.json_types import format_utc
from shared.periods import Period, period_containing
from shared.resolution import Fact, Limits, SubscriptionAt, resolve

SEP = SEPARATOR.decode()
PERIOD_MEMO_SIZE = 10_000  # distinct (anchor, frequency, end) triples remembered by a Processor


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: datetime


@dataclass(frozen=True)
class DeadLetter:
    record: Record
    reason: str


@dataclass
class BatchResult:
    raw_rows: list[list[Any]] = field(default_factory=list)
    dirty_series: set[str] = field(default_factory=set)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    duplicates: int = 0
    folded: int = 0
    late_periods: set[tuple[str, str, int]] = field(default_factory=set)  # customer, sub key, index
    max_event_time: dict[int, datetime] = field(default_factory=dict)


TIMELINE = "*"
# Usage before a trial's end, in the period the trial ends in, is kept apart so the
# rater can bill only what came after it (see quantities.totals_with_trial).
TRIAL_SUFFIX = "~trial"


def series_table_key(customer: str, meter: str, series: str, period_start: datetime | None) -> str:
    """Period state key; `period_start=None` keys the series' whole timeline instead."""
    period = TIMELINE if period_start is None else format_utc(period_start)
    return SEP.join([customer, meter, series, period])


def parse_series_table_key(key: str) -> tuple[str, str, str, str]:
    # The series part is built from producers' label values, which may themselves
    # contain the separator; customer and meter come first, the period start last.
    customer, meter, rest = key.split(SEP, 2)
    series, start = rest.rsplit(SEP, 1)
    return customer, meter, series, start


def dedup_key(customer: str, meter: str, measurement_id: str) -> str:
    return SEP.join([customer, meter, measurement_id])


@dataclass
class Processor:
    catalog: Callable[[], Catalog]
    refresh_catalog: Callable[[], object]  # catch up with the catalog topic
    limits: Limits
    series: MutableMapping[str, Any]  # series table key -> folding state (+ period bounds)
    seen: MutableMapping[str, Any]  # dedup key -> [first offset, event time iso]
    closed_through: Callable[[str, str], int]  # (customer, subscription key) -> next unclosed index
    # Answers like catalog().subscription_at (e.g. shared.resolution.SubscriptionIndex); None: ask the catalog.
    subscription_at: SubscriptionAt | None = None
    _periods: dict[Any, tuple[Period, str, str]] = field(default_factory=dict, init=False, repr=False, compare=False)

    def process(self, records: list[Record]) -> BatchResult:
        result = BatchResult()
        # Table writes of the batch are collected and written once per key at the end: a
        # series hit by many records of the batch costs one table write (one changelog
        # record) instead of one per record. Reads see the batch's own writes.
        tables = (self.series, self.seen)
        self.series, self.seen = _WriteBack(self.series), _WriteBack(self.seen)
        try:
            for record in records:
                facts_or_reason = self._facts(record)
                if isinstance(facts_or_reason, str):
                    result.dead_letters.append(DeadLetter(record, facts_or_reason))
                    continue
                for fact in facts_or_reason:
                    self._apply(record, fact, result)
            for table in (self.series, self.seen):
                assert isinstance(table, _WriteBack)
                table.flush()
        finally:
            self.series, self.seen = tables
        return result

    def _period(self, subscription: Subscription, kind: str, at: datetime) -> tuple[Period, str, str]:
        """period_containing(...) and its bounds as format_utc text, remembered per subscription.

        A period found for the same anchor, frequency and end that contains `at` is the
        one period_containing would compute (periods of one anchor do not overlap).
        """
        start = subscription.start_time
        memo_key = (start, start.tzinfo, kind, subscription.end_time)
        hit = self._periods.get(memo_key)
        if hit is not None and hit[0].start <= at < hit[0].end:
            return hit
        period = period_containing(start, kind, at, subscription.end_time)
        if len(self._periods) >= PERIOD_MEMO_SIZE:
            self._periods.clear()
        hit = (period, utc_text(period.start), utc_text(period.end))
        self._periods[memo_key] = hit
        return hit

    def _covering(self, catalog: Catalog, customer: str, at: datetime) -> Any:
        return catalog.subscription_at(customer, at) if self.subscription_at is None else self.subscription_at(customer, at)

    def _facts(self, record: Record) -> list[Fact] | str:
        if record.value is None:
            return "value: empty record (a measurement JSON object is required)"
        try:
            measurement = Measurement.model_validate_json(record.value)
        except ValidationError as error:
            return "; ".join(f"{field}: {reason}" for field, reason in field_errors(error))
        facts, problems = resolve(measurement, self.catalog(), record.timestamp, self.limits, self.subscription_at)
        if problems and any(f in ("customer_name", "meter_name", "event_name") for f, _ in problems):
            # Another service may have just added the entity: catch up once, then judge.
            self.refresh_catalog()
            facts, problems = resolve(measurement, self.catalog(), record.timestamp, self.limits, self.subscription_at)
        if problems:
            return "; ".join(f"{f}: {r}" for f, r in problems)
        customer = facts[0].customer_name
        if record.key is None or record.key.decode(errors="replace") != customer:
            return f"key: must be the customer name {customer!r} (records of a customer share a partition)"
        return facts

    def _apply(self, record: Record, fact: Fact, result: BatchResult) -> None:
        catalog = self.catalog()
        subscription = self._covering(catalog, fact.customer_name, fact.time)
        assert subscription is not None  # resolve() refuses a fact no subscription covers
        plan = catalog.price_plans[subscription.price_plan_name]
        period, period_start_text, period_end_text = self._period(subscription, plan.period, fact.time)
        meter = fact.meter
        seen_key = dedup_key(fact.customer_name, meter.name, fact.measurement.id)
        first = self.seen.get(seen_key)
        if first is not None and first[0] != record.offset:
            result.duplicates += 1
            return
        if first is None:
            self.seen[seen_key] = [record.offset, utc_text(fact.time)]
        closed = self.closed_through(fact.customer_name, subscription.key)
        if is_order_dependent(meter):
            key = series_table_key(fact.customer_name, meter.name, fact.series, None)
            timeline = self.series.get(key)
            timeline = copy_timeline(timeline) if timeline is not None else empty_timeline()
            value = fact.value if isinstance(fact.value, Decimal) else Decimal(0)
            applied = insert(timeline, fact.time, value, fact.measurement.reset_total, record.offset)
            if applied:
                self.series[key] = timeline
            # A point changes its own period and, through the carried level or the
            # next increment, the later ones too.
            late = range(period.index, closed)
        else:
            key = SEP.join([fact.customer_name, meter.name, fact.series, period_start_text])  # series_table_key
            ends = trial_end(subscription.start_time, plan.trial)
            if ends is not None and fact.time < ends:
                key += TRIAL_SUFFIX
            state = self.series.get(key)
            state = dict(state) if state is not None else {**empty_state(), "end": period_end_text}
            applied = fold(state, meter, fact.value, record.offset)
            if applied:
                self.series[key] = state
            late = range(period.index, min(period.index + 1, closed))
        if applied:
            result.folded += 1
            for index in late:
                result.late_periods.add((fact.customer_name, subscription.key, index))
        result.dirty_series.add(key)
        value = fact.value if isinstance(fact.value, Decimal) else Decimal(0)
        result.raw_rows.append(
            [
                fact.customer_name, meter.name, fact.measurement.id, fact.series, value,
                fact.value if isinstance(fact.value, str) else "", fact.time,
                dict(fact.measurement.labels), fact.measurement.reset_total,
                record.topic, record.partition, record.offset,
            ]
        )
        current = result.max_event_time.get(record.partition)
        if current is None or fact.time > current:
            result.max_event_time[record.partition] = fact.time


_DELETED = object()  # a deletion waiting for flush()


class _WriteBack(MutableMapping[str, Any]):
    """A table seen through a batch: writes are kept here until `flush`, reads see them."""

    def __init__(self, table: MutableMapping[str, Any]) -> None:
        self.table = table
        self.written: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        if key in self.written:
            value = self.written[key]
            return default if value is _DELETED else value
        return self.table.get(key, default)

    def __getitem__(self, key: str) -> Any:
        if key in self.written:
            value = self.written[key]
            if value is _DELETED:
                raise KeyError(key)
            return value
        return self.table[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.written[key] = value

    def __delitem__(self, key: str) -> None:
        if key not in self:
            raise KeyError(key)
        self.written[key] = _DELETED

    def __contains__(self, key: object) -> bool:
        if key in self.written:
            return self.written[key] is not _DELETED
        return key in self.table

    def __iter__(self) -> Iterator[str]:
        for key in self.table:
            if self.written.get(key) is not _DELETED:
                yield key
        for key, value in self.written.items():
            if key not in self.table and value is not _DELETED:
                yield key

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def flush(self) -> None:
        for key, value in self.written.items():
            if value is _DELETED:
                self.table.pop(key, None)
            else:
                self.table[key] = value
        self.written.clear()


def copy_timeline(timeline: Any) -> dict[str, Any]:
    return {"points": [list(p) for p in timeline["points"]], "base": timeline["base"], "applied": timeline["applied"]}


RAW_COLUMNS = [
    "customer_name", "meter_name", "id", "series", "value", "string_value", "event_time",
    "labels", "reset_total", "topic", "partition", "offset",
]


def expire_before(now: datetime, window: timedelta) -> str:
    return format_utc(now.astimezone(timezone.utc) - window)


def dead_letter_headers(letter: DeadLetter) -> list[tuple[str, bytes]]:
    r = letter.record
    return [
        ("reason", letter.reason.encode()),
        ("original_topic", r.topic.encode()),
        ("original_partition", str(r.partition).encode()),
        ("original_offset", str(r.offset).encode()),
    ]


def dump_json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
