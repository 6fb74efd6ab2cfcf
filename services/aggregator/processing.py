"""One batch of measurement records -> state updates, ClickHouse rows, dead letters.

The state lives in mutable mappings (the StateLog's dicts in production, plain dicts in
unit tests). Order of checks per item, and why:
1. decode (a record is one measurement or an envelope of them) and validate; anything
   that can never succeed is dead-lettered alone, with its index in the envelope;
2. a measurement read from a partition that is not its customer's is forwarded to the
   right one and folded there: a series is only ever folded by one partition, so the
   positions below are comparable;
3. dedup by (customer, meter, id): the first position (offset, index in the record) that
   carried an id owns it, so a replay of that very record is not mistaken for a duplicate;
4. fold into the series state unless its `applied` position shows it is already in.
Every series touched (even by a replay) is marked dirty, so its absolute total is
rewritten to ClickHouse after a crash that happened between the state and the store.
An item whose folding raises is dead-lettered with the error: it would raise again on
every replay, and a poison item must not stop the partition.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from mypy_extensions import mypyc_attr

from services.aggregator.dedup import Dedup
from services.aggregator.envelopes import Item, decode, item_values
from services.aggregator.state_log import Tracked
from services.infra import dead_letters
from shared.catalog import Catalog
from shared.folding import PeriodState, SeriesState, fold
from shared.measurement_check import Checked
from shared.models import Measurement, Meter, PricePlan, Subscription
from shared.models.measurement import measurement_json, utc_text
from shared.periods import Period, period_containing
from shared.resolution import (
    MAX_INTEGER_DIGITS,
    CatalogIndexes,
    Fact,
    Limits,
    catalog_may_lag,
    resolve,
    series_key,
    typed_value,
)
from shared.series_keys import SEP, TRIAL_SUFFIX, dedup_key, series_table_key
from shared.timeline import Timeline, insert, is_order_dependent
from shared.trial import trial_end

log = logging.getLogger(__name__)

PERIOD_MEMO_SIZE = 10_000  # distinct (anchor, frequency, end) triples remembered by a Processor
# Positions order the items of a partition: offset, then index inside an envelope (a
# record under the broker's 1 MB limit cannot hold 2**20 items).
ITEMS_PER_RECORD = 2**20


def position(offset: int, index: int | None = None) -> int:
    return offset * ITEMS_PER_RECORD + (index or 0)


@dataclass(slots=True)
class FoldFact:
    """A `Fact` as the fold reads it, made once per measurement: a plain class, which mypyc
    builds in C (a NamedTuple's constructor stays a Python function). For a measurement
    the fast path checked, `measurement` is its Checked fields (id, labels, reset_total
    are all the fold reads of it)."""

    customer_name: str
    meter: Meter
    series: str
    value: Decimal | str
    time: datetime
    measurement: Checked | Measurement
    subscription: Subscription | None  # the one covering `time`, when the judge found it already



class Terms(NamedTuple):
    """A subscription's terms around one instant, as the fold reads them."""

    subscription: Subscription  # kept: the memo checks identity, so the id cannot be reused
    plan: PricePlan
    subscription_key: str
    trial_end: datetime | None
    period: Period
    start_text: str


_ZERO = Decimal(0)
_INTEGER_BOUND = 10**MAX_INTEGER_DIGITS  # a non-negative int below it is its own Decimal on any numeric meter


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
    index: int | None = None  # the item's index in an envelope
    value: bytes | None = None  # the item's own JSON (the record's value when None)

    @property
    def payload(self) -> bytes | None:
        return self.value if self.index is not None else self.record.value

    def as_letter(self) -> dead_letters.Letter:
        r = self.record
        return dead_letters.letter(self.reason, r.topic, r.partition, r.offset, r.key, self.payload, self.index)


@dataclass(frozen=True)
class Forward:
    """A measurement read from another customer's partition, to re-send to its own."""

    customer: str
    value: bytes


@dataclass
class BatchResult:
    raw_rows: list[list[Any]] = field(default_factory=list)
    dirty_series: set[str] = field(default_factory=set)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)
    duplicates: int = 0
    folded: int = 0
    late_periods: set[tuple[str, str, int]] = field(default_factory=set)  # customer, sub key, index
    max_event_time: dict[int, datetime] = field(default_factory=dict)


# Compiled (services/infra/native.py); tests subclass it to watch its steps.
@mypyc_attr(allow_interpreted_subclasses=True)
@dataclass
class Processor:
    catalog: Callable[[], Catalog]
    refresh_catalog: Callable[[], object]  # catch up with the catalog topic
    limits: Limits
    series: MutableMapping[str, SeriesState]  # series table key -> its state
    dedup: Dedup  # who carried an id first (recent ids, filters, the store's answers)
    closed_through: Callable[[str, str], int]  # (customer, subscription key) -> next unclosed index
    # customer -> its partition; None: every partition is right (one-partition unit tests).
    partition_of: Callable[[str], int] | None = None
    _periods: dict[Any, tuple[Period, str]] = field(default_factory=dict, init=False, repr=False, compare=False)
    _subscription_terms: dict[int, Terms] = field(default_factory=dict, init=False, repr=False, compare=False)
    _refreshed: bool = field(init=False, repr=False, compare=False)
    # What prepare() decoded and judged, for process() to use instead of doing it twice.
    _decoded: dict[tuple[int, int], list[Item] | str] = field(default_factory=dict, init=False, repr=False)
    # (partition, offset) -> per item of the record: its facts, why it is refused, or None
    # (not judged: process() judges it).
    _judged: dict[tuple[int, int], list[list[FoldFact] | str | None]] = field(
        default_factory=dict, init=False, repr=False)
    # The catalog _judged was judged against: process() judges again after any change.
    _judged_against: tuple[Catalog | None, int] = field(init=False, repr=False, compare=False)
    _indexes: CatalogIndexes = field(init=False, repr=False, compare=False)
    # This batch's closed_through answers, by (customer, subscription key).
    _closed: dict[tuple[str, str], int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._indexes = CatalogIndexes(self.catalog)
        # Set here, not as field defaults: mypyc's dataclasses leave init=False defaults unset.
        self._refreshed = False
        self._judged_against = (None, -1)

    def prepare(self, records: list[Record]) -> list[str]:
        """Decode and judge a batch ahead of process(); returns the dedup keys only the
        store can answer (see dedup.py), for the caller to look up off the event loop.

        It changes no state, so it may run while the previous batch is being stored
        (batches.py). What an earlier prepare() left unused is dropped first; a catalog
        change before process() makes it judge again (decoding does not depend on it).
        """
        self._decoded.clear()
        self._judged.clear()
        self._refreshed = False
        keys: set[str] = set()
        gather = self.dedup.asks_store
        for record in records:
            where = (record.partition, record.offset)
            items = self._decoded[where] = decode(record.value)
            if isinstance(items, str):
                continue
            judged: list[list[FoldFact] | str | None] = [None] * len(items)
            self._judged[where] = judged
            for at, item in enumerate(items):
                if item.problem is not None:
                    continue
                try:
                    facts = self._item_facts(item, record.timestamp)
                except Exception:  # noqa: BLE001 - process() judges it again, and dead-letters what it raises
                    continue
                judged[at] = facts
                if not gather or isinstance(facts, str) or (
                    self.partition_of is not None and self.partition_of(facts[0].customer_name) != record.partition
                ):
                    continue  # dead-lettered, or forwarded to be folded (and deduplicated) there
                keys.update(dedup_key(f.customer_name, f.meter.name, f.measurement.id) for f in facts)
        self._judged_against = self._catalog_version()
        return self.dedup.suspects(keys, self._partition_of_key)

    def _catalog_version(self) -> tuple[Catalog, int]:
        catalog = self.catalog()
        return catalog, catalog.revision

    def _partition_of_key(self, key: str) -> int:
        return self.partition_of(key.split(SEP, 1)[0]) if self.partition_of is not None else 0

    def process(self, records: list[Record]) -> BatchResult:
        result = BatchResult()
        judged_against, revision = self._judged_against
        catalog = self.catalog()
        if self._judged and (judged_against is not catalog or revision != catalog.revision):
            self._judged.clear()
        self._judged_against = (None, -1)
        try:
            for record in records:
                self._process_record(record, result)
            if isinstance(self.series, Tracked):
                # Every series the batch changed is among those it touched: marked in one
                # set operation instead of a Python-level __setitem__ per measurement.
                self.series.mark_changed(result.dirty_series)
        finally:
            self._decoded.clear()
            self._judged.clear()
            self._closed.clear()
            self.dedup.end_batch()
            self._refreshed = False
        return result

    def _process_record(self, record: Record, result: BatchResult) -> None:
        where = (record.partition, record.offset)
        items = self._decoded.pop(where, None)
        if items is None:
            items = decode(record.value)
        if isinstance(items, str):
            result.dead_letters.append(DeadLetter(record, items))
            return
        judged = self._judged.pop(where, None)
        if judged is None or len(judged) != len(items):
            judged = [None] * len(items)
        raw: list[bytes] | None = None
        for item, facts in zip(items, judged, strict=True):
            problem = self._take(record, item, facts, result)
            if problem is not None:
                if item.index is not None and raw is None:
                    raw = item_values(record.value or b"") or []
                value: bytes | None = None
                if raw is not None and item.index is not None and item.index < len(raw):
                    value = raw[item.index]
                result.dead_letters.append(DeadLetter(record, problem, item.index, value))

    def _take(self, record: Record, item: Item, facts: list[FoldFact] | str | None, result: BatchResult) -> str | None:
        """Judge (unless prepare() did: `facts`) and fold one item; returns why it is
        dead-lettered, or None."""
        if item.problem is not None:
            return item.problem
        try:
            if facts is None:
                facts = self._item_facts(item, record.timestamp)
            if isinstance(facts, str):
                return facts
            customer = facts[0].customer_name
            if self.partition_of is not None and self.partition_of(customer) != record.partition:
                measurement = item.measurement or _as_measurement(item.checked)
                at = measurement.time or record.timestamp
                result.forwards.append(Forward(customer, measurement_json(measurement, customer, at)))
                return None
            pos = record.offset * ITEMS_PER_RECORD + (item.index or 0)  # position(), inlined
            for fact in facts:
                self._apply(record, pos, fact, result)
        except Exception as error:  # a bug or an input no rule foresaw: never a crash loop
            log.exception("could not fold %s[%d]@%d item %s", record.topic, record.partition, record.offset, item.index)
            return f"unprocessable: {type(error).__name__}: {str(error)[:200]}"
        return None

    def _terms(self, subscription: Subscription, plan: PricePlan, at: datetime) -> Terms:
        """What _apply needs of a subscription and its plan for an instant, remembered
        per subscription object (the catalog replaces the object when it changes)."""
        hit = self._subscription_terms.get(id(subscription))
        if hit is not None and hit.subscription is subscription and hit.plan is plan and (
                hit.period.start <= at < hit.period.end):
            return hit
        period, start_text = self._period(subscription, plan.period, at)
        if len(self._subscription_terms) >= PERIOD_MEMO_SIZE:
            self._subscription_terms.clear()
        hit = Terms(subscription, plan, subscription.key, trial_end(subscription.start_time, plan.trial),
                    period, start_text)
        self._subscription_terms[id(subscription)] = hit
        return hit

    def _period(self, subscription: Subscription, kind: str, at: datetime) -> tuple[Period, str]:
        """period_containing(...) and its start as format_utc text, remembered per subscription.

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
        hit = (period, utc_text(period.start))
        self._periods[memo_key] = hit
        return hit

    def _item_facts(self, item: Item, received_at: datetime) -> list[FoldFact] | str:
        if item.checked is not None:
            facts = self._checked_facts(item.checked, received_at)
            if facts is not None:
                return facts
            # Refused, or not surely accepted: the model and resolve() decide, and word why.
            return _as_fold_facts(self._facts(_as_measurement(item.checked), received_at))
        assert item.measurement is not None  # an item without a problem holds one or the other
        return _as_fold_facts(self._facts(item.measurement, received_at))

    def _checked_facts(self, m: Checked, received_at: datetime) -> list[FoldFact] | None:
        """resolve()'s facts for a checked measurement it surely accepts, else None
        (shared.resolution.CatalogIndex.accepted holds the rules)."""
        at = m.time or received_at
        limits = self.limits
        accepted = self._indexes.current().accepted(
            m.customer_name, m.meter_name, m.event_name, m.labels, m.value, at,
            received_at - limits.dedup_window, received_at + limits.max_future,
        )
        if accepted is None:
            return None
        customer, meters, subscription = accepted
        facts: list[FoldFact] = []
        raw = m.value
        for meter in meters:
            value: Decimal | str | None
            if isinstance(raw, int):
                number = Decimal(raw)
                value = number if meter.data_type != "STRING" and 0 <= raw < _INTEGER_BOUND else (
                    typed_value(number, meter)[0])
            else:
                value = typed_value(raw, meter)[0]
            assert value is not None  # accepted() refuses what typed_value refuses
            series = series_key(meter, m.labels) if meter.primary_labels else ""
            facts.append(FoldFact(customer, meter, series, value, at, m, subscription))
        return facts

    def _facts(self, measurement: Measurement, received_at: datetime) -> list[Fact] | str:
        facts, problems = resolve(measurement, self.catalog(), received_at, self.limits)
        if problems and not self._refreshed and catalog_may_lag(problems):
            # Another service may have just added the entity or the subscription: catch up,
            # once per batch (a catch-up can take seconds; a stream of unknown names must
            # not stall).
            self._refreshed = True
            self.refresh_catalog()
            facts, problems = resolve(measurement, self.catalog(), received_at, self.limits)
        if problems:
            return "; ".join(f"{f}: {r}" for f, r in problems)
        return facts

    def _apply(self, record: Record, pos: int, fact: FoldFact, result: BatchResult) -> None:
        customer, meter, series, value = fact.customer_name, fact.meter, fact.series, fact.value
        at, measurement, subscription = fact.time, fact.measurement, fact.subscription
        catalog = self.catalog()  # per fact: judging it may have caught up with a newer catalog
        if subscription is None:
            subscription = catalog.subscription_at(customer, at)
            assert subscription is not None  # resolve() refuses a fact no subscription covers
        plan = catalog.price_plans[subscription.price_plan_name]
        terms = self._terms(subscription, plan, at)
        period = terms.period
        meter_name = meter.name
        seen_key = customer + SEP + meter_name + SEP + measurement.id  # dedup_key
        first = self.dedup.first(seen_key, record.partition)
        if first is not None and first != pos:
            result.duplicates += 1
            return
        closed_key = (customer, terms.subscription_key)
        closed = self._closed.get(closed_key)
        if closed is None:  # asked once per batch: periods close between batches, not during one
            closed = self._closed[closed_key] = self.closed_through(*closed_key)
        number = value if isinstance(value, Decimal) else _ZERO  # a STRING meter's value is text
        # Changed in place: insert() and fold() raise, if at all, before they change anything.
        changed: SeriesState | None  # what the series holds, if anything, until replaced below
        if is_order_dependent(meter):
            key = series_table_key(customer, meter_name, series, None)
            existing = changed = self.series.get(key)
            if not isinstance(changed, Timeline):
                changed = Timeline()
            applied = insert(changed, at, number, measurement.reset_total, pos)
            # A point changes its own period and, through the carried level or the
            # next increment, the later ones too.
            late = range(period.index, closed)
        else:
            key = SEP.join([customer, meter_name, series, terms.start_text])  # series_table_key
            ends = terms.trial_end
            if ends is not None and at < ends:
                key += TRIAL_SUFFIX
            existing = changed = self.series.get(key)
            if not isinstance(changed, PeriodState):
                changed = PeriodState(period.end)
            applied = fold(changed, meter, value, pos)
            late = range(period.index, min(period.index + 1, closed))
        # Written only now: an item that raised above left no trace in the state.
        if first is None:
            self.dedup.remember(seen_key, pos, record.partition, at)
        if applied:
            if changed is not existing:  # one changed in place is marked by process(), with the batch's others
                self.series[key] = changed
            result.folded += 1
            for index in late:
                result.late_periods.add((customer, terms.subscription_key, index))
        result.dirty_series.add(key)
        partition = record.partition
        result.raw_rows.append([
            customer, meter_name, measurement.id, series, number, "" if value is number else value, at,
            measurement.labels, measurement.reset_total, record.topic, partition, record.offset, pos,
        ])
        latest = result.max_event_time
        if partition not in latest or at > latest[partition]:
            latest[partition] = at


def _as_fold_facts(facts: list[Fact] | str) -> list[FoldFact] | str:
    if isinstance(facts, str):
        return facts
    return [FoldFact(f.customer_name, f.meter, f.series, f.value, f.time, f.measurement, None) for f in facts]


def _as_measurement(checked: Checked | None) -> Measurement:
    """The model of a checked measurement (for resolve()'s wording and for forwarding)."""
    assert checked is not None
    value = Decimal(checked.value) if type(checked.value) is int else checked.value
    return Measurement.model_validate({
        "id": checked.id, "meter_name": checked.meter_name, "event_name": checked.event_name,
        "customer_name": checked.customer_name, "value": value, "time": checked.time,
        "labels": checked.labels, "reset_total": checked.reset_total,
    })


RAW_COLUMNS = [
    "customer_name", "meter_name", "id", "series", "value", "string_value", "event_time",
    "labels", "reset_total", "topic", "partition", "offset", "position",
]
