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

The checks (`shared.measurement_check`) are `shared.models.Measurement`'s rules, spelled
as plain type, length and pattern tests on what `json.loads` returns (the same decoder the
usual path uses, so no difference in JSON reading can creep in).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from shared.catalog import Catalog
from shared.measurement_check import Checked, check, each_checked
from shared.models.measurement import record_json, record_time_text, value_text
from shared.resolution import CatalogIndex, CatalogIndexes, Limits

Record = tuple[bytes, bytes]  # key, value
__all__ = ["Checked", "FastPath", "check", "check_all", "encode_all", "judge_all"]


def check_all(raw_items: Sequence[Any]) -> list[Checked] | None:
    return each_checked(raw_items, check)


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
