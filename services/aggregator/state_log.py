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
    ["i", dedup_key, [position, event_time]]  an id's first carrier
    ["I", [dedup_key, position, event_time, ...]]  first carriers of up to IDS_PER_OP ids
                                    (a batch adds one per measurement: one flat op for
                                    many costs a fraction of an op each)
    ["x", dedup_key]                forget an id (left the dedup window)
    ["m", customer, mark]           close marks of a customer
    ["c", clock_key, clock]         the partition's greatest event time
No record exceeds RECORD_BYTES, so no state, however large (a million distinct values),
ever needs a record larger than the broker accepts. When a partition's log has grown
to twice its last checkpoint, a checkpoint writes its live state as new records and then
deletes (tombstones) the older ones, so replay time and the topic stay bounded.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

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


@dataclass
class StateLog:
    """series / seen / marks / clock of the partitions this worker owns, and their log."""

    partitions: int
    partition_of: Callable[[str], int]  # customer -> partition
    series: Tracked = field(default_factory=Tracked)
    seen: Tracked = field(default_factory=Tracked)
    marks: Tracked = field(default_factory=Tracked)
    clock: Tracked = field(default_factory=Tracked)
    loaded: set[int] = field(default_factory=set)
    _logs: dict[int, _PartitionLog] = field(default_factory=dict)
    # UNIQUE_COUNT series key -> how many of its values are already in the log.
    _uniques_logged: dict[str, int] = field(default_factory=dict)
    # UNIQUE_COUNT series whose values a load read without a state after them (see load).
    _unpositioned: set[str] = field(default_factory=set)
    # partition -> ids first carried since the last flush, flat: [key, position, event time, ...]
    _new_ids: dict[int, list[Any]] = field(default_factory=dict)

    def add_id(self, key: str, position: int, at: str, partition: int) -> None:
        """An id's first carrier, logged in bulk at the next flush (op "I")."""
        self.seen.data[key] = [position, at]
        self.seen.changed.discard(key)  # an earlier removal in this flush is overtaken
        self._new_ids.setdefault(partition, []).extend((key, position, at))

    # -- which partition a key belongs to ------------------------------------------
    def _partition(self, view: str, key: str) -> int:
        if view == "c":
            return int(key[len(PARTITION_PREFIX.decode()):])
        return self.partition_of(customer_of(key))

    def _views(self) -> list[tuple[str, Tracked]]:
        return [("s", self.series), ("i", self.seen), ("m", self.marks), ("c", self.clock)]

    # -- recovery --------------------------------------------------------------------
    def load(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> None:
        """Replay one partition's log records (as recovered by Faust) into the dicts."""
        self.forget({partition})
        log = _PartitionLog()
        prefix = f"{partition}/".encode()
        for key, value in sorted(r for r in records if r[0].startswith(prefix)):
            log.seq = max(log.seq, int(key[len(prefix):]) + 1)
            if not value:
                continue  # a tombstone that compaction has not removed yet
            log.keys.append(key)
            log.bytes += len(value)
            for op in json.loads(value):
                self._apply(op)
        # Values logged before a crash that came before their series' state: the replay
        # folds their measurements again (see _series_ops).
        for series_key in self._unpositioned:
            del self.series.data[series_key]
            self._uniques_logged.pop(series_key, None)
        self._unpositioned.clear()
        log.checkpoint_bytes = log.bytes
        self._logs[partition] = log
        self.loaded.add(partition)

    def _apply(self, op: list[Any]) -> None:
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
            self.seen.data[key] = op[2]
        elif kind == "I":
            flat = op[1]
            seen = self.seen.data
            for at in range(0, len(flat), 3):
                seen[flat[at]] = [flat[at + 1], flat[at + 2]]
        elif kind == "x":
            self.seen.data.pop(key, None)
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
            self._new_ids.pop(partition, None)
        self.loaded -= partitions

    # -- persistence -----------------------------------------------------------------
    def pending(self) -> bool:
        return any(view.changed for _, view in self._views()) or any(self._new_ids.values())

    async def flush(self, send: Send) -> int:
        """Write every change since the last flush; returns once the broker has all of it.

        Returns the number of records written. Raises if any write failed: the caller must
        then not acknowledge the batch (the records are read again after a restart).
        """
        ops_by_partition: dict[int, list[list[Any]]] = {}
        # New ids first: a removal recorded in `changed` after them must come after them.
        step = 3 * IDS_PER_OP
        for partition, flat in self._new_ids.items():
            ops = ops_by_partition.setdefault(partition, [])
            ops.extend(["I", flat[start:start + step]] for start in range(0, len(flat), step))
        self._new_ids = {}
        for view_name, view in self._views():
            for key in view.changed:
                partition = self._partition(view_name, key)
                ops = ops_by_partition.setdefault(partition, [])
                value = view.data.get(key)
                if view_name == "s":
                    ops.extend(self._series_ops(key, value))
                elif value is None:
                    if view_name == "i":
                        ops.append(["x", key])
                    # series, marks and clock entries are never deleted, only replaced
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
        for partition in checkpoints:
            written += await self.checkpoint(send, partition)
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

    async def _append(self, send: Send, partition: int, ops: list[list[Any]]) -> list[Awaitable[Any]]:
        log = self._logs.setdefault(partition, _PartitionLog())
        futures = []
        for value in _encode_chunks(ops):
            key = f"{partition}/{log.seq:012d}".encode()
            log.seq += 1
            log.keys.append(key)
            log.bytes += len(value)
            futures.append(await send(key, value, partition))
        return futures

    async def checkpoint(self, send: Send, partition: int) -> int:
        """Rewrite the partition's live state, then delete the records it replaces.

        Crash-safe in either step: until the deletions land, a replay reads the old
        records and then the new ones, which set the same values again.
        """
        log = self._logs.setdefault(partition, _PartitionLog())
        old = list(log.keys)
        ops: list[list[Any]] = []
        for view_name, view in self._views():
            for key, value in view.data.items():
                if self._partition(view_name, key) != partition:
                    continue
                if view_name == "s":
                    self._uniques_logged.pop(key, None)
                    ops.extend(self._series_ops(key, value))
                else:
                    ops.append([view_name, key, value])
        log.keys, log.bytes = [], 0
        futures = await self._append(send, partition, ops)
        await asyncio.gather(*futures)
        log.checkpoint_bytes = log.bytes
        tombstones = [await send(key, None, partition) for key in old]
        await asyncio.gather(*tombstones)
        return len(futures) + len(tombstones)


def _encode_chunks(ops: list[list[Any]]) -> Iterator[bytes]:
    """The ops as JSON lists of at most RECORD_BYTES each, in order."""
    if not ops:
        return
    encoded = json.dumps(ops, separators=(",", ":")).encode()
    if len(encoded) <= RECORD_BYTES or len(ops) == 1:
        yield encoded
        return
    middle = len(ops) // 2
    yield from _encode_chunks(ops[:middle])
    yield from _encode_chunks(ops[middle:])
