"""The aggregator's state, kept in plain dicts and persisted per batch as a log of changes.

Why not one Faust table write per key: a table write costs ~245 µs of CPU (see
docs/benchmarks.md) and goes through Faust's producer buffer, whose flush gives up after
0.1 s, so an offset commit could overtake it (the cause of the usage lost after SIGKILL).
Instead, every flush appends a few records to one compacted changelog partition per
input partition, each a JSON list of operations, and *awaits their delivery* (acks=all)
before the batch is acknowledged. Recovery replays a partition's records in sequence.

Record: key b"<partition>/<seq, 12 digits>", value: a JSON list of operations
    ["s", series_key, state]        set a series state, as its to_json() writes it (a
                                    PeriodState's values of UNIQUE_COUNT travel apart)
    ["u", series_key, [value, ...]] add distinct values to a UNIQUE_COUNT series
    ["I", [dedup_key, position, event_time, ...]]  first carriers of up to IDS_PER_OP ids
                                    (a batch adds one per measurement: one flat op for
                                    many costs a fraction of an op each); event_time in
                                    µs since the epoch (UTC text in logs of earlier versions)
    ["X", [dedup_key, ...]]         forget up to IDS_PER_OP ids (they left the dedup window)
    ["i", dedup_key, [position, event_time]]  and ["x", dedup_key]: one id at a time, as
                                    earlier versions wrote them (still replayed)
    ["m", customer, mark]           close marks of a customer
    ["c", clock_key, clock]         the partition's greatest event time
Ids are kept per partition (`ids`), so a checkpoint or a revocation touches only that
partition's ids, and each as one int (see pack_id).
No record exceeds RECORD_BYTES, so no state, however large (a million distinct values),
ever needs a record larger than the broker accepts. When a partition's log has grown
to twice its last checkpoint, a checkpoint writes its live state as new records and then
deletes (tombstones) the older ones, so replay time and the topic stay bounded.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Awaitable, Callable, Collection, Iterable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from mypy_extensions import mypyc_attr

from services.infra.partitioning import PARTITION_PREFIX, SEPARATOR
from shared.folding import PeriodState, SeriesState, series_state_from_json

SEP = SEPARATOR.decode()
RECORD_BYTES = 512 * 1024  # half the broker's default message.max.bytes
UNIQUES_PER_OP = 1000  # values are at most 256 characters: an op stays under RECORD_BYTES
# A dedup key is at most 770 characters, under 5 KB as escaped JSON: an op stays under RECORD_BYTES.
IDS_PER_OP = 100
MIN_CHECKPOINT_BYTES = 8 * 1024 * 1024
_NO_END = datetime.min.replace(tzinfo=UTC)  # a placeholder's; a load never keeps a placeholder

# (key, value, partition) -> a future that resolves when the broker has the record.
Send = Callable[[bytes, bytes | None, int], Awaitable[Awaitable[Any]]]


def customer_of(key: str) -> str:
    return key.split(SEP, 1)[0]


# An id's first carrier and event time in one int: the event time (µs since the epoch) in
# the high bits, the position in the low POSITION_BITS (a position is offset * 2**20 +
# index, so an offset would have to pass 2**44 to spill over). One int of ~44 bytes
# instead of a list of an int and a text (~180 bytes), and the ints order by event time,
# so housekeeping finds the ids that left the window without decoding any.
POSITION_BITS = 64
POSITION_MASK = (1 << POSITION_BITS) - 1
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def micros(at: datetime | None) -> int:
    """µs since the epoch; 0 for an id without an event time (it leaves at the next trim)."""
    return 0 if at is None else (at - EPOCH) // MICROSECOND


def _text_micros(text: str) -> int:
    """The µs of an event time as earlier versions logged it (UTC text, "" for none)."""
    return micros(datetime.fromisoformat(text)) if text else 0


def pack_id(position: int, at_micros: int) -> int:
    return (at_micros << POSITION_BITS) | position


class Tracked(MutableMapping[str, Any]):
    """A dict that remembers which keys changed since the last flush."""

    def __init__(self) -> None:
        self.data: dict[str, Any] = {}
        self.changed: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.data.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.data[key] = value
        self.changed.add(key)

    def __delitem__(self, key: str) -> None:
        del self.data[key]
        self.changed.add(key)

    def mark_changed(self, keys: Iterable[str]) -> None:
        """These keys' values were changed in place (the value objects are mutable)."""
        self.changed.update(keys)

    def __contains__(self, key: object) -> bool:
        return key in self.data

    def __iter__(self) -> Iterator[str]:
        return iter(list(self.data))

    def __len__(self) -> int:
        return len(self.data)


@dataclass
class _PartitionLog:
    seq: int = 0
    keys: list[bytes] = field(default_factory=list)  # live record keys, in sequence
    bytes: int = 0  # size of the live records
    checkpoint_bytes: int = 0  # size of the live state at the last checkpoint


# Compiled (services/infra/native.py); bench/state_log_ids.py subclasses it to time its checkpoints.
@mypyc_attr(allow_interpreted_subclasses=True)
@dataclass
class StateLog:
    """series / seen / marks / clock of the partitions this worker owns, and their log."""

    partitions: int
    partition_of: Callable[[str], int]  # customer -> partition
    series: Tracked = field(default_factory=Tracked)
    # partition -> dedup key -> pack_id(first carrier's position, event time)
    ids: dict[int, dict[str, int]] = field(default_factory=dict)
    marks: Tracked = field(default_factory=Tracked)
    clock: Tracked = field(default_factory=Tracked)
    loaded: set[int] = field(default_factory=set)
    _logs: dict[int, _PartitionLog] = field(default_factory=dict)
    # UNIQUE_COUNT series key -> how many of its values are already in the log.
    _uniques_logged: dict[str, int] = field(default_factory=dict)
    # UNIQUE_COUNT series whose values a load read without a state after them (see load).
    _unpositioned: set[str] = field(default_factory=set)
    # partition -> ids first carried since the last flush, flat: [key, position, µs, ...]
    _new_ids: dict[int, list[Any]] = field(default_factory=dict)
    # partition -> ids forgotten since the last flush (a dict: the log keeps their order)
    _removed_ids: dict[int, dict[str, None]] = field(default_factory=dict)
    # The event time add_id() saw last, and its micros() (a datetime is immutable).
    _last_micros: tuple[datetime | None, int] = (None, 0)

    # -- ids (dedup.LogDedup) ----------------------------------------------------------
    def first_carrier(self, key: str, partition: int) -> int | None:
        """The position of the id's first carrier, None for an id new in the window."""
        ids = self.ids.get(partition)
        packed = None if ids is None else ids.get(key)
        return None if packed is None else packed & POSITION_MASK

    def add_id(self, key: str, position: int, at: datetime | None, partition: int) -> None:
        """An id's first carrier, logged in bulk at the next flush (op "I")."""
        last_at, at_micros = self._last_micros
        if at is not last_at:  # the items of an envelope mostly share one time object
            at_micros = micros(at)
            self._last_micros = (at, at_micros)
        ids = self.ids.get(partition)
        if ids is None:
            ids = self.ids[partition] = {}
        ids[key] = (at_micros << POSITION_BITS) | position  # pack_id, inlined: once per measurement
        removed = self._removed_ids.get(partition)
        if removed:
            removed.pop(key, None)  # an earlier removal in this flush is overtaken
        new = self._new_ids.get(partition)
        if new is None:
            new = self._new_ids[partition] = []
        new += (key, position, at_micros)

    def expire_ids(self, before: datetime, partitions: Collection[int]) -> int:
        """Forget the ids of these partitions whose event time is before `before`; returns
        how many (logged as removals at the next flush)."""
        limit = micros(before) << POSITION_BITS  # every id of an earlier µs packs below it
        expired = 0
        for partition in partitions:
            ids = self.ids.get(partition)
            if not ids:
                continue
            gone = [key for key, packed in ids.items() if packed < limit]
            removed = self._removed_ids.setdefault(partition, {})
            for key in gone:
                del ids[key]
                removed[key] = None
            expired += len(gone)
        return expired

    def id_count(self) -> int:
        return sum(len(ids) for ids in self.ids.values())

    # -- which partition a key belongs to ------------------------------------------
    def _partition(self, view: str, key: str) -> int:
        if view == "c":
            return int(key[len(PARTITION_PREFIX.decode()):])
        return self.partition_of(customer_of(key))

    def _views(self) -> list[tuple[str, Tracked]]:
        return [("s", self.series), ("m", self.marks), ("c", self.clock)]

    # -- recovery --------------------------------------------------------------------
    def load(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> None:
        """Replay one partition's log records (as recovered by Faust) into the dicts."""
        self.forget({partition})
        log = _PartitionLog()
        ids = self.ids[partition] = {}
        prefix = f"{partition}/".encode()
        for key, value in sorted(r for r in records if r[0].startswith(prefix)):
            log.seq = max(log.seq, int(key[len(prefix):]) + 1)
            if not value:
                continue  # a tombstone that compaction has not removed yet
            log.keys.append(key)
            log.bytes += len(value)
            for op in json.loads(value):
                self._apply(op, ids)
        # Values logged before a crash that came before their series' state: the replay
        # folds their measurements again (see _series_ops).
        for series_key in self._unpositioned:
            del self.series.data[series_key]
            self._uniques_logged.pop(series_key, None)
        self._unpositioned.clear()
        log.checkpoint_bytes = log.bytes
        self._logs[partition] = log
        self.loaded.add(partition)

    def _apply(self, op: list[Any], ids: dict[str, int]) -> None:
        """Replay one op; `ids` are those of the partition whose log it is in."""
        kind, key = op[0], op[1]
        if kind == "s":
            state = series_state_from_json(key, op[2])
            existing = self.series.data.get(key)
            if isinstance(state, PeriodState) and isinstance(existing, PeriodState) and existing.uniques is not None:
                state.uniques = existing.uniques  # logged apart, before the state (_series_ops)
                self._uniques_logged[key] = len(state.uniques)
            self.series.data[key] = state
            self._unpositioned.discard(key)
        elif kind == "u":
            held = self.series.data.get(key)
            if not isinstance(held, PeriodState):
                # Values ahead of their series' first state: held apart until it comes (load).
                held = self.series.data[key] = PeriodState(_NO_END)
                self._unpositioned.add(key)
            uniques = held.uniques if held.uniques is not None else {}
            uniques.update(dict.fromkeys(op[2]))
            held.uniques = uniques
            self._uniques_logged[key] = len(uniques)
        elif kind == "i":
            ids[key] = pack_id(op[2][0], _text_micros(op[2][1]))
        elif kind == "I":
            flat = op[1]
            for at in range(0, len(flat), 3):
                at_micros = flat[at + 2]
                if type(at_micros) is str:
                    at_micros = _text_micros(at_micros)
                ids[flat[at]] = pack_id(flat[at + 1], at_micros)
        elif kind == "x":
            ids.pop(key, None)
        elif kind == "X":
            for gone in key:
                ids.pop(gone, None)
        elif kind == "m":
            self.marks.data[key] = op[2]
        elif kind == "c":
            self.clock.data[key] = op[2]

    def forget(self, partitions: set[int]) -> None:
        """Drop the state of partitions this worker no longer owns."""
        if not partitions:
            return
        for view_name, view in self._views():
            gone = [k for k in view.data if self._partition(view_name, k) in partitions]
            for key in gone:
                del view.data[key]
                view.changed.discard(key)
                self._uniques_logged.pop(key, None)
        for partition in partitions:
            self._logs.pop(partition, None)
            self.ids.pop(partition, None)
            self._new_ids.pop(partition, None)
            self._removed_ids.pop(partition, None)
        self.loaded -= partitions

    # -- persistence -----------------------------------------------------------------
    def pending(self) -> bool:
        return (
            any(view.changed for _, view in self._views())
            or any(self._new_ids.values()) or any(self._removed_ids.values())
        )

    async def flush(self, send: Send) -> int:
        """Write every change since the last flush; returns once the broker has all of it.

        Returns the number of records written. Raises if any write failed: the caller must
        then not acknowledge the batch (the records are read again after a restart).
        """
        ops_by_partition: dict[int, list[list[Any]]] = {}
        # New ids first: a removal recorded after them must come after them (and one that
        # came before them was dropped by add_id).
        step = 3 * IDS_PER_OP
        for partition, flat in self._new_ids.items():
            ops = ops_by_partition.setdefault(partition, [])
            ops.extend(["I", flat[start:start + step]] for start in range(0, len(flat), step))
        self._new_ids = {}
        for partition, removed in self._removed_ids.items():
            gone = list(removed)
            ops = ops_by_partition.setdefault(partition, [])
            ops.extend(["X", gone[start:start + IDS_PER_OP]] for start in range(0, len(gone), IDS_PER_OP))
        self._removed_ids = {}
        for view_name, view in self._views():
            for key in view.changed:
                partition = self._partition(view_name, key)
                ops = ops_by_partition.setdefault(partition, [])
                value = view.data.get(key)
                if view_name == "s":
                    ops.extend(self._series_ops(key, value))
                elif value is None:
                    continue  # series, marks and clock entries are never deleted, only replaced
                else:
                    ops.append([view_name, key, value])
            view.changed.clear()
        futures: list[Awaitable[Any]] = []
        for partition, ops in ops_by_partition.items():
            futures.extend(await self._append(send, partition, ops))
        checkpoints = [
            p for p, log in self._logs.items() if log.bytes > max(2 * log.checkpoint_bytes, MIN_CHECKPOINT_BYTES)
        ]
        await asyncio.gather(*futures)
        written = len(futures)
        if checkpoints:
            written += await self.checkpoint(send, checkpoints)
        return written

    def _series_ops(self, key: str, state: SeriesState | None) -> Iterator[list[Any]]:
        if state is None:
            return
        uniques = state.uniques if isinstance(state, PeriodState) else None
        if uniques is None:
            yield ["s", key, state.to_json()]
            return
        # The values first, the state with its `applied` position last: the values may
        # span several records, and a crash between them must not leave a position in
        # the log that covers values which are not (their measurements would be skipped
        # as applied on replay and never counted). Values without their position are
        # harmless: the replay folds those measurements again into the same set.
        logged = self._uniques_logged.get(key, 0)
        values = list(uniques)[logged:] if logged else list(uniques)
        for start in range(0, len(values), UNIQUES_PER_OP):
            yield ["u", key, values[start:start + UNIQUES_PER_OP]]
        yield ["s", key, state.to_json()]
        self._uniques_logged[key] = len(uniques)

    async def _append(self, send: Send, partition: int, ops: Iterable[list[Any]]) -> list[Awaitable[Any]]:
        log = self._logs.setdefault(partition, _PartitionLog())
        futures = []
        for value in _encode_chunks(ops):
            key = f"{partition}/{log.seq:012d}".encode()
            log.seq += 1
            log.keys.append(key)
            log.bytes += len(value)
            futures.append(await send(key, value, partition))
        return futures

    async def checkpoint(self, send: Send, partitions: Collection[int]) -> int:
        """Rewrite these partitions' live state, then delete the records it replaces.

        Crash-safe in either step: until the deletions land, a replay reads the old
        records and then the new ones, which set the same values again. The keys of the
        series, marks and clock are bucketed in one pass for all the partitions (their
        logs grow at the same pace, so a flush often checkpoints several); the ids are per
        partition already. Everything streams into records without a copy of it all.
        """
        # Keys only: the ops of a partition are made while its records are encoded, and a
        # partition's records are delivered before the next one's are made, so a
        # checkpoint never holds more than one partition's state twice (as ops of all
        # of them it held ~100 MB at once with 500,000 series).
        keys: dict[int, list[tuple[str, Tracked, str]]] = {partition: [] for partition in partitions}
        for view_name, view in self._views():
            for key in view.data:
                bucket = keys.get(self._partition(view_name, key))
                if bucket is not None:
                    bucket.append((view_name, view, key))
        replaced: dict[int, list[bytes]] = {}
        written = 0
        for partition, live in keys.items():
            log = self._logs.setdefault(partition, _PartitionLog())
            replaced[partition] = log.keys
            log.keys, log.bytes = [], 0
            ops = itertools.chain(self._id_ops(partition), self._live_ops(live))
            futures = await self._append(send, partition, ops)
            await asyncio.gather(*futures)
            written += len(futures)
        tombstones: list[Awaitable[Any]] = []
        for partition, old in replaced.items():
            log = self._logs[partition]
            log.checkpoint_bytes = log.bytes
            tombstones.extend([await send(key, None, partition) for key in old])
        await asyncio.gather(*tombstones)
        return written + len(tombstones)

    def _live_ops(self, live: list[tuple[str, Tracked, str]]) -> Iterator[list[Any]]:
        """The ops that set these keys' current values, made as they are encoded."""
        for view_name, view, key in live:
            value = view.data.get(key)
            if view_name == "s":
                self._uniques_logged.pop(key, None)
                yield from self._series_ops(key, value)
            elif value is not None:
                yield [view_name, key, value]

    def _id_ops(self, partition: int) -> Iterator[list[Any]]:
        """A partition's live ids as "I" ops, made as they are encoded (the worker's lock
        keeps the ids unchanged meanwhile)."""
        flat: list[Any] = []
        for key, packed in self.ids.get(partition, {}).items():
            flat += (key, packed & POSITION_MASK, packed >> POSITION_BITS)
            if len(flat) == 3 * IDS_PER_OP:
                yield ["I", flat]
                flat = []
        if flat:
            yield ["I", flat]


# Ops are encoded in runs of about this many bytes, one encoder call a run: a call per op
# costs more than its share of a longer one, and one call for all the ops of a flush makes
# a text that must be encoded again, in parts, when it passes RECORD_BYTES. A record fills
# up to within about a run of RECORD_BYTES.
RUN_BYTES = 32 * 1024
_ENCODER = json.JSONEncoder(separators=(",", ":"))


def _dumps(value: Any) -> bytes:
    """Compact JSON bytes. orjson encodes the ops about ten times faster than the standard
    encoder (which took 5 % of the fold's CPU); what orjson refuses, the standard encoder
    writes: an int past 64 bits (a quantity's 10^-12 units pass that at about 18 million)
    and a string with a lone surrogate. Readers use json.loads, which reads both alike."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError
        if type(value) is list and len(value) > 1:
            return b"[" + b",".join(map(_dumps, value)) + b"]"  # only the ops it refuses go slowly
        return _ENCODER.encode(value).encode()


def _encode_chunks(ops: Iterable[list[Any]]) -> Iterator[bytes]:
    """The ops as JSON lists of at most RECORD_BYTES each, in order (an op larger than
    that alone in a record of its own)."""
    record: list[bytes] = []  # encoded runs of ops, without their brackets
    size = 2  # the record's brackets
    for run in _encoded_runs(ops):
        if record and size + 1 + len(run) > RECORD_BYTES:
            yield b"[" + b",".join(record) + b"]"
            record, size = [], 2
        size += len(run) + (1 if record else 0)
        record.append(run)
    if record:
        yield b"[" + b",".join(record) + b"]"


def _encoded_runs(ops: Iterable[list[Any]]) -> Iterator[bytes]:
    """Consecutive ops encoded together, without the list's brackets, in runs of about
    RUN_BYTES (sized by the ops before them)."""
    count = 16
    run: list[list[Any]] = []
    for op in ops:
        run.append(op)
        if len(run) == count:
            text = _dumps(run)
            yield from _unbracketed(text, run)
            count = max(1, min(4096, count * RUN_BYTES // len(text)))
            run = []
    if run:
        yield from _unbracketed(_dumps(run), run)


def _unbracketed(text: bytes, run: list[list[Any]]) -> list[bytes]:
    # A run over RECORD_BYTES (ops much larger than the ones before them): an op at a time.
    if len(text) > RECORD_BYTES and len(run) > 1:
        return [_dumps(op) for op in run]
    return [text[1:-1]]
