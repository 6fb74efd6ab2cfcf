"""A measurement's fields as `shared.models.Measurement` would hold them, without the model.

Why: validating a Measurement model costs several µs per measurement, and both hot paths
(the ingest service's batch fast path and the aggregator's decoding of envelopes) see
almost only valid measurements. `check` decides the common case from what `json.loads`
returns; for anything the model might refuse, or might hold differently (a rare but
valid spelling of a time, say), it returns None and the caller asks the model, which
alone words errors. tests/unit/test_ingest_fast_path.py holds `check` to the model.

The checks are the model's rules, spelled as plain type, length and pattern tests. The
time goes through the model's own date-time validator.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any, NamedTuple

from shared.models.json_types import utc_datetime
from shared.models.limits import MAX_ID_LENGTH, MAX_LABEL_LENGTH, MAX_LABELS, MAX_NAME_LENGTH, MAX_VALUE_LENGTH

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
