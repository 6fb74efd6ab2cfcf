"""A measurement's fields as `shared.models.Measurement` would hold them, without the model.

Why: validating a Measurement model costs several µs per measurement, and both hot paths
(the ingest service's batch fast path and the aggregator's decoding of envelopes) see
almost only valid measurements. `check` decides the common case from what `json.loads`
returns; for anything the model might refuse, or might hold differently (a rare but
valid spelling of a time, say), it returns None and the caller asks the model, which
alone words errors. tests/unit/test_ingest_fast_path.py holds `check` to the model.

The checks are the model's rules, spelled as plain type, length and pattern tests. The
time goes through the model's own date-time validator.

`check_json` is `check` applied to a record's JSON bytes, in a quarter of the time of
`json.loads` and `check`: msgspec decodes into `_Sent`, applying the type and length
rules in C, and `_check_sent` applies the rest. Whatever msgspec refuses, the caller
hands to `json.loads` and `check` as before, so msgspec only ever narrows what this
fast path accepts. tests/unit/test_measurement_check_json.py holds the two to the same
answers.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, NamedTuple, TypeVar

import msgspec

from shared.models.json_types import utc_datetime
from shared.models.limits import MAX_ID_LENGTH, MAX_LABEL_LENGTH, MAX_LABELS, MAX_NAME_LENGTH, MAX_VALUE_LENGTH

T = TypeVar("T")
_FIELDS = frozenset({"id", "meter_name", "event_name", "customer_name", "value", "time", "labels", "reset_total"})
_NO_LABELS: dict[str, str] = {}
# The model refuses control characters in names and labels (measurement._CONTROL_CHARACTER), and
# pydantic refuses a surrogate code point in any string ("unable to parse raw data as a
# unicode string"): one search finds either. Both are unprintable, so text that
# str.isprintable() passes (nearly all, and a cheaper test than a search) has neither.
_find_refused = re.compile("[\x00-\x1f\x7f\ud800-\udfff]").search
_find_surrogate = re.compile("[\ud800-\udfff]").search
_RECORD_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]{6})?Z")
_INFINITIES = (float("inf"), float("-inf"))
# Record-shaped times already read, and what they read as: the items of one envelope or
# request often share their time (one producer's clock tick, or the time ingest stamped
# on a whole batch), and a look-up costs a tenth of matching and parsing. Only texts of
# _RECORD_TIME's fixed shape are kept (at most 27 characters); full, it starts over.
_TIMES: dict[str, tuple[datetime, str | None]] = {}
_TIMES_KEPT = 4096


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
    # Spelled for speed (it runs once per measurement on both hot paths): a bound `get`,
    # the three names unrolled, the usual types tested first, no call that the common
    # shape does not need.
    if type(raw) is not dict or not _FIELDS.issuperset(raw):
        return None
    get = raw.get
    id_ = get("id")
    if type(id_) is not str or not 0 < len(id_) <= MAX_ID_LENGTH:
        return None
    text = id_  # every name and label, searched for refused characters at once
    meter_name = get("meter_name")
    if meter_name is not None:
        if type(meter_name) is not str or not 0 < len(meter_name) <= MAX_NAME_LENGTH:
            return None
        text += meter_name
    event_name = get("event_name")
    if event_name is not None:
        if type(event_name) is not str or not 0 < len(event_name) <= MAX_NAME_LENGTH:
            return None
        text += event_name
    elif meter_name is None:
        return None
    customer_name = get("customer_name")
    if customer_name is not None:
        if type(customer_name) is not str or not 0 < len(customer_name) <= MAX_NAME_LENGTH:
            return None
        text += customer_name
    value: Any = get("value")
    kind = type(value)
    if kind is str:
        # An ASCII string (a flag CPython keeps: no scan) holds no surrogate.
        if len(value) > MAX_VALUE_LENGTH or (not value.isascii() and _find_surrogate(value) is not None):
            return None
    elif kind is float:
        if value != value or value in _INFINITIES:
            return None
        value = Decimal(repr(value))  # what the model holds (_number_or_string)
    elif kind is not int:  # None (absent), bool, list, dict
        return None
    sent_time = get("time")
    if sent_time is None:
        time = time_text = None
    elif type(sent_time) is not str:
        return None
    else:
        known = _TIMES.get(sent_time) or _read_time(sent_time)
        if known is None:
            return None
        time, time_text = known
    labels = get("labels", _NO_LABELS)
    if type(labels) is not dict:
        return None
    if labels:
        if len(labels) > MAX_LABELS:
            return None
        for key, label in labels.items():
            if (type(key) is not str or not 0 < len(key) <= MAX_LABEL_LENGTH
                    or type(label) is not str or len(label) > MAX_LABEL_LENGTH):
                return None
            text += key + label
    if not text.isprintable() and _find_refused(text) is not None:
        return None
    reset_total = get("reset_total", False)
    if type(reset_total) is not bool:
        return None
    return _new_checked(Checked, (id_, meter_name, event_name, customer_name, value, time, time_text, labels,
                                  reset_total))


_new_checked = tuple.__new__  # Checked's own __new__ is a Python function: one call more per measurement


def _read_time(sent: str) -> tuple[datetime, str | None] | None:
    """A sent time as (the instant, the record's time text when `sent` is exactly that),
    or None when the model refuses it."""
    try:
        if _RECORD_TIME.fullmatch(sent) is None:
            return utc_datetime(sent), None  # the model's own validator
        # The usual spelling, which is also the record's (".000000" excepted: the record
        # writes no fraction then). For it the model's validator comes down to
        # fromisoformat, which refuses what it refuses.
        read = datetime.fromisoformat(sent), None if sent.endswith(".000000Z") else sent
    except ValueError:
        return None
    if len(_TIMES) >= _TIMES_KEPT:
        _TIMES.clear()
    _TIMES[sent] = read
    return read


_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
_LabelKey = Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_LABEL_LENGTH)]
_LabelValue = Annotated[str, msgspec.Meta(max_length=MAX_LABEL_LENGTH)]


class _Sent(msgspec.Struct, forbid_unknown_fields=True, gc=False):
    """A measurement object with `check`'s type and length rules (None: absent or null,
    as `check` reads them through `dict.get`; labels and reset_total may only be absent)."""

    id: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_ID_LENGTH)]
    value: int | float | Annotated[str, msgspec.Meta(max_length=MAX_VALUE_LENGTH)]
    meter_name: _Name | None = None
    event_name: _Name | None = None
    customer_name: _Name | None = None
    time: str | None = None
    labels: Annotated[dict[_LabelKey, _LabelValue], msgspec.Meta(max_length=MAX_LABELS)] | msgspec.UnsetType = (
        msgspec.UNSET)
    reset_total: bool = False


_READ = msgspec.json.Decoder(_Sent | list[_Sent])


def check_json(value: bytes) -> Checked | list[Checked] | None:
    """`check` of a record's one measurement object, or of each item of its array; None
    when msgspec refuses the bytes or `check` would refuse any item (the caller then
    reads the record with `json.loads` and `check`, which decide as they always have)."""
    try:
        sent = _READ.decode(value)
    except msgspec.MsgspecError:  # DecodeError and ValidationError
        return None
    if not isinstance(sent, list):
        return _check_sent(sent)
    return each_checked(sent, _check_sent)


def each_checked(items: Sequence[T], check_one: Callable[[T], Checked | None]) -> list[Checked] | None:
    """`check_one` of every item, or None at the first it refuses."""
    checked = []
    for each in items:
        item = check_one(each)
        if item is None:
            return None
        checked.append(item)
    return checked


def _check_sent(sent: _Sent) -> Checked | None:
    """The rules of `check` that `_Sent`'s types and lengths do not already hold."""
    meter_name = sent.meter_name
    event_name = sent.event_name
    text = sent.id  # every name and label, searched for refused characters at once
    if meter_name is not None:
        text += meter_name
    if event_name is not None:
        text += event_name
    elif meter_name is None:
        return None
    customer_name = sent.customer_name
    if customer_name is not None:
        text += customer_name
    value: Any = sent.value
    kind = type(value)
    if kind is str:
        if not value.isascii() and _find_surrogate(value) is not None:
            return None
    elif kind is float:
        if value != value or value in _INFINITIES:  # msgspec refuses both; as check() does
            return None
        value = Decimal(repr(value))
    sent_time = sent.time
    if sent_time is None:
        time = time_text = None
    else:
        known = _TIMES.get(sent_time) or _read_time(sent_time)
        if known is None:
            return None
        time, time_text = known
    labels = sent.labels
    if labels is msgspec.UNSET:
        labels = _NO_LABELS
    else:
        for key, label in labels.items():
            text += key + label
    if not text.isprintable() and _find_refused(text) is not None:
        return None
    return _new_checked(Checked, (sent.id, meter_name, event_name, customer_name, value, time, time_text, labels,
                                  sent.reset_total))
