"""The fast path of a measurement batch: the verdict of the usual rules, without models.

Why: `Measurement.model_validate`, `resolve` and a record per measurement cost about 30 µs
of Python per measurement; the ingest service answers most batches with "all accepted".
This path decides that case from the decoded JSON alone, in three passes over the batch
(check, judge, encode), and returns the records to produce, byte for byte what the usual
path writes. It never words an error: for anything it does not accept (an invalid
measurement, an unknown name, a record over the limit, a rare but valid spelling such as
a lower-case 't' in a time) it returns None, and the caller runs the usual path, which
alone says why. So every error response stays exactly what it was, and
tests/unit/test_ingest_fast_path.py holds the two paths to the same verdict and bytes.

The checks below are `shared.models.Measurement`'s rules, spelled as plain type, length
and pattern tests on what `json.loads` returns (the same decoder the usual path uses, so
no difference in JSON reading can creep in). The time goes through the model's own
date-time validator.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from shared.catalog import Catalog
from shared.models.json_types import utc_datetime
from shared.models.limits import MAX_ID_LENGTH, MAX_LABEL_LENGTH, MAX_LABELS, MAX_NAME_LENGTH, MAX_VALUE_LENGTH
from shared.models.measurement import record_json, record_time_text, value_text
from shared.resolution import CatalogIndex, CatalogIndexes, Limits

Record = tuple[bytes, bytes]  # key, value

_FIELDS = frozenset({"id", "meter_name", "event_name", "customer_name", "value", "time", "labels", "reset_total"})
_NO_LABELS: dict[str, str] = {}
# The model refuses control characters in names and labels (measurement._CONTROL_CHARACTER), and
# pydantic refuses a surrogate code point in any string ("unable to parse raw data as a
# unicode string"): one search finds either.
_find_refused = re.compile("[\x00-\x1f\x7f\ud800-\udfff]").search
_find_surrogate = re.compile("[\ud800-\udfff]").search
_RECORD_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?Z")


class Checked(NamedTuple):  # a tuple: made a thousand times per request
    """A measurement the model would accept, as the model would hold it.

    `value` is an int where the model holds Decimal(int): the judge and the encoder
    treat it as that Decimal, and an int is cheaper to bound and to write.
    """

    id: str
    meter_name: str | None
    event_name: str | None
    customer_name: str | None
    value: int | Decimal | str
    time: datetime | None
    time_text: str | None  # the record's time text, when the producer sent exactly that
    labels: dict[str, str]
    reset_total: bool


def check(raw: Any) -> Checked | None:
    """`raw` as the model would hold it, or None if the model might refuse it."""
    if type(raw) is not dict or not raw.keys() <= _FIELDS:
        return None
    id_ = raw.get("id")
    if type(id_) is not str or not 0 < len(id_) <= MAX_ID_LENGTH:
        return None
    meter_name = raw.get("meter_name")
    event_name = raw.get("event_name")
    customer_name = raw.get("customer_name")
    if meter_name is None and event_name is None:
        return None
    text = id_  # every name and label, searched for refused characters at once
    for name in (meter_name, event_name, customer_name):
        if name is not None:
            if type(name) is not str or not 0 < len(name) <= MAX_NAME_LENGTH:
                return None
            text += name
    value: Any = raw.get("value")
    kind = type(value)
    if kind is float:
        if value != value or value in (float("inf"), float("-inf")):
            return None
        value = Decimal(repr(value))  # what the model holds (_number_or_string)
    elif kind is str:
        if len(value) > MAX_VALUE_LENGTH or _find_surrogate(value) is not None:
            return None
    elif kind is not int:  # None (absent), bool, list, dict
        return None
    sent_time = raw.get("time")
    time = time_text = None
    if sent_time is not None:
        if type(sent_time) is not str:
            return None
        try:
            if _RECORD_TIME.fullmatch(sent_time) is not None:
                # The usual spelling, which is also the record's (".000000" excepted:
                # the record writes no fraction then). For it the model's validator
                # comes down to fromisoformat, which refuses what it refuses.
                time = datetime.fromisoformat(sent_time)
                if not sent_time.endswith(".000000Z"):
                    time_text = sent_time
            else:
                time = utc_datetime(sent_time)  # the model's own validator
        except ValueError:
            return None
    labels = raw.get("labels", _NO_LABELS)
    if type(labels) is not dict or len(labels) > MAX_LABELS:
        return None
    for key, label in labels.items():
        if (type(key) is not str or not 0 < len(key) <= MAX_LABEL_LENGTH
                or type(label) is not str or len(label) > MAX_LABEL_LENGTH):
            return None
        text += key + label
    if _find_refused(text) is not None:
        return None
    reset_total = raw.get("reset_total", False)
    if type(reset_total) is not bool:
        return None
    return Checked(id_, meter_name, event_name, customer_name, value, time, time_text, labels, reset_total)


def check_all(raw_items: Sequence[Any]) -> list[Checked] | None:
    checked = []
    for raw in raw_items:
        item = check(raw)
        if item is None:
            return None
        checked.append(item)
    return checked


def judge_all(checked: list[Checked], index: CatalogIndex, received_at: datetime, limits: Limits) -> list[str] | None:
    """The customer of each measurement, or None unless `resolve` accepts every one."""
    earliest = received_at - limits.dedup_window
    latest = received_at + limits.max_future
    customers = []
    accepted_customer = index.accepted_customer
    for m in checked:
        customer = accepted_customer(
            m.customer_name, m.meter_name, m.event_name, m.labels, m.value, m.time or received_at, earliest, latest,
        )
        if customer is None:
            return None
        customers.append(customer)
    return customers


def encode_all(
    checked: list[Checked], customers: list[str], received_at: datetime, max_record_bytes: int,
) -> list[Record] | None:
    """Each measurement's record, as services.ingest.measurement_routes.record_of writes it; None if one
    is over `max_record_bytes` (the usual path words the 413)."""
    received_text = record_time_text(received_at)
    records = []
    try:
        for m, customer in zip(checked, customers, strict=True):
            value = m.value
            text = str(value) if isinstance(value, int) else value_text(value)
            if m.time is None:
                time = received_text
            else:
                time = m.time_text if m.time_text is not None else record_time_text(m.time)
            key = customer.encode()
            record = record_json(m.id, m.meter_name, m.event_name, customer, text, time, m.labels, m.reset_total)
            if len(key) + len(record) > max_record_bytes:
                return None
            records.append((key, record))
    except ValueError:  # UnicodeEncodeError, which the checks make impossible: the usual path decides
        return None
    return records


class FastPath:
    """The records of a batch every measurement of which is accepted, or None."""

    def __init__(self, catalog: Callable[[], Catalog], limits: Limits, max_record_bytes: int) -> None:
        self.indexes = CatalogIndexes(catalog)
        self.limits = limits
        self.max_record_bytes = max_record_bytes

    def records(self, raw_items: Sequence[Any], received_at: datetime) -> list[Record] | None:
        checked = check_all(raw_items)
        if checked is None:
            return None
        customers = judge_all(checked, self.indexes.current(), received_at, self.limits)
        if customers is None:
            return None
        return encode_all(checked, customers, received_at, self.max_record_bytes)
