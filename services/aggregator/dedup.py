"""Exact deduplication over the whole dedup window: in bounded memory (StoreDedup) or
through the state log (LogDedup).

Which one a worker uses (METERING_DEDUP_IDS, services/settings.py): StoreDedup needs the
store to hold every first carrier of the partitions a worker may take over, i.e. one
store shared by every worker: a ClickHouse server, or the embedded engine with one
worker. With the embedded engine each worker has a store of its own, so a worker taking
over a partition would not find the ids its previous owner stored; LogDedup keeps every
id of the window in memory and in the state log (shared through Kafka), exact with any
number of workers, at about 180 bytes of memory per id (`python -m bench.state_log_ids`).

StoreDedup:

An id's *first carrier* is the position (offset, index in the envelope) of the first
item that brought (customer, meter, id); a later carrier is a duplicate, and a replay of
the first carrier itself is not. Three tiers answer "who carried this id first?":

1. `recent`: the last `recent_capacity` ids folded by this worker, in memory (retries
   arrive soon after the original, so most duplicates stop here);
2. a Bloom filter per owned partition over every id in the window: no false negatives,
   so an id it has never seen is new without asking anyone (nearly every id);
3. the store: the raw `measurements` table holds one row per first carrier, with its
   position, written in step 1 of the flush order, before the state and the offsets.
   Only ids the filter might have seen and `recent` does not know are looked up, in one
   query per batch.

Why the store is the truth: an id reaches the persisted state only after its raw row is
in the store, and a duplicate never writes a row. After a crash the filter is rebuilt
from the store (hashes computed by ClickHouse), so a replayed first carrier finds its own
row (same position: not a duplicate) and a duplicate finds its original's.

Memory: the filters (`filter_bytes` per owned partition) and `recent`, whatever the number
of ids in the window. More ids than a filter was sized for only raise its false-positive
rate, i.e. store lookups; housekeeping rebuilds a filter that has filled up.
"""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np

from services.aggregator.state_log import StateLog
from services.infra.partitioning import SEPARATOR

SEP = SEPARATOR.decode()

HASHES = 10
_MASK = (1 << 64) - 1


def _halves(key: str) -> tuple[int, int]:
    """Two 64-bit hashes of a key, as ClickHouse's reinterpretAsUInt64 reads MD5 halves."""
    digest = hashlib.md5(key.encode()).digest()
    return int.from_bytes(digest[:8], "little"), int.from_bytes(digest[8:], "little")


def _halves_of(keys: list[str]) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """_halves() of many keys, as two arrays."""
    digests = b"".join([hashlib.md5(key.encode()).digest() for key in keys])
    halves = np.frombuffer(digests, dtype="<u8").reshape(-1, 2)
    return halves[:, 0], halves[:, 1]


class IdFilter:
    """A Bloom filter over dedup keys (double hashing of MD5 halves).

    The bits live in a bytearray: one key at a time (once per measurement) its item
    access costs a fraction of a numpy scalar's; a numpy view of the same bytes takes
    the store's hashes in bulk (add_hashes).
    """

    def __init__(self, size_bytes: int) -> None:
        self.bits = size_bytes * 8
        self._array = bytearray(size_bytes)
        self.added = 0

    def _positions(self, key: str) -> list[int]:
        h1, h2 = _halves(key)
        bits = self.bits
        return [((h1 + i * h2) & _MASK) % bits for i in range(HASHES)]

    def add(self, key: str) -> None:
        array = self._array
        for position in self._positions(key):
            array[position >> 3] |= 1 << (position & 7)
        self.added += 1

    def might_contain(self, key: str) -> bool:
        array = self._array
        return all(array[p >> 3] & (1 << (p & 7)) for p in self._positions(key))

    def add_many(self, keys: list[str]) -> None:
        """add() for each key, in one pass of array operations."""
        self.add_hashes(*_halves_of(keys))

    def might_contain_each(self, keys: list[str]) -> list[bool]:
        """might_contain() of each key, in one pass of array operations."""
        if not keys:
            return []
        h1, h2 = _halves_of(keys)
        array = np.frombuffer(self._array, dtype=np.uint8)
        found = np.ones(len(keys), dtype=bool)
        for i in range(HASHES):
            positions = (h1 + np.uint64(i) * h2) % np.uint64(self.bits)  # uint64 wraps like _MASK
            found &= ((array[(positions >> np.uint64(3)).astype(np.int64)] >> (positions & np.uint64(7))) & 1) == 1
        return [bool(hit) for hit in found]

    def add_hashes(self, h1: np.ndarray[Any, Any], h2: np.ndarray[Any, Any]) -> None:
        """Add many keys at once from their hash halves (as the store computes them)."""
        h1 = h1.astype(np.uint64)
        h2 = h2.astype(np.uint64)
        for i in range(HASHES):
            positions = (h1 + np.uint64(i) * h2) % np.uint64(self.bits)  # uint64 wraps like _MASK
            np.bitwise_or.at(np.frombuffer(self._array, dtype=np.uint8), (positions >> np.uint64(3)).astype(np.int64),
                             (np.uint8(1) << (positions & np.uint64(7)).astype(np.uint8)))
        self.added += len(h1)

    @property
    def full(self) -> bool:
        """Past about 20 bits per key: false positives (store lookups) start to add up."""
        return self.added * 20 > self.bits


@dataclass
class StoreDedup:
    filter_bytes: int
    recent_capacity: int
    filters: dict[int, IdFilter] = field(default_factory=dict)
    recent: dict[str, tuple[int, int]] = field(default_factory=dict)  # key -> (position, partition)
    answers: dict[str, int] = field(default_factory=dict)  # this batch's store lookups
    # partition -> ids remembered in this batch, added to its filter at the batch's end in
    # one pass (the filter is only asked in prepare(), before the next batch).
    _unfiltered: dict[int, list[str]] = field(default_factory=dict)

    @property
    def asks_store(self) -> bool:  # a property, not a ClassVar: mypyc's dataclasses take that for a field
        return True  # suspects() may name ids to look up

    def first(self, key: str, partition: int) -> int | None:
        """The first carrier's position, or None for an id new in the window (`partition`
        is the customer's: LogDedup keeps ids per partition, `recent` needs no such hint)."""
        hit = self.recent.get(key)
        if hit is not None:
            return hit[0]
        return self.answers.get(key)

    def suspects(self, keys: set[str], partition_of_key: Callable[[str], int]) -> list[str]:
        """Keys only the store can answer: not recent, and maybe seen by their filter."""
        found = []
        asked: dict[int, list[str]] = {}
        for key in keys:
            if key in self.recent:
                continue
            partition = partition_of_key(key)
            if partition in self.filters:
                asked.setdefault(partition, []).append(key)
            else:
                found.append(key)
        for partition, candidates in asked.items():
            hits = self.filters[partition].might_contain_each(candidates)
            found.extend(key for key, hit in zip(candidates, hits, strict=True) if hit)
        return found

    def remember(self, key: str, position: int, partition: int, at: datetime | None = None) -> None:
        # Not trimmed here: an id first carried earlier in this batch has no row in the
        # store yet, so `recent` must keep every id of the batch until it is stored.
        self.recent[key] = (position, partition)
        if partition in self.filters:
            self._unfiltered.setdefault(partition, []).append(key)

    def end_batch(self) -> None:
        """After a batch: forget its store answers, and the oldest ids beyond capacity
        (their rows are in the store by the time the next batch is judged)."""
        self.answers.clear()
        for partition, keys in self._unfiltered.items():
            self.filters[partition].add_many(keys)
        self._unfiltered.clear()
        excess = len(self.recent) - self.recent_capacity
        if excess > 0:
            for key in list(itertools.islice(self.recent, excess)):
                del self.recent[key]

    def load(self, partition: int, built: IdFilter) -> None:
        self.filters[partition] = built

    def forget(self, partitions: set[int]) -> None:
        for partition in partitions:
            self.filters.pop(partition, None)
            self._unfiltered.pop(partition, None)
        self.recent = {k: v for k, v in self.recent.items() if v[1] not in partitions}


@dataclass
class LogDedup:
    """Every id of the window in the state log's `ids` (per partition: dedup key -> first
    position and event time), which housekeeping trims to the window (ticks.py)."""

    state: StateLog
    answers: dict[str, int] = field(default_factory=dict)  # never filled: nothing to look up

    @property
    def asks_store(self) -> bool:
        return False  # every id it knows is in memory: no suspects to gather

    def first(self, key: str, partition: int) -> int | None:
        return self.state.first_carrier(key, partition)

    def suspects(self, keys: set[str], partition_of_key: Callable[[str], int]) -> list[str]:
        return []

    def end_batch(self) -> None:
        return None

    def remember(self, key: str, position: int, partition: int, at: datetime | None = None) -> None:
        # With the event time: housekeeping compares it with the window's start.
        self.state.add_id(key, position, at, partition)


Dedup = StoreDedup | LogDedup


# -- the store's side (blocking: run in a thread) -----------------------------------

_KEY = f"concat(customer_name, '{SEP}', meter_name, '{SEP}', id)"


_WHERE = "topic = {topic:String} AND partition = {partition:UInt32} AND event_time >= {since:DateTime64(6)}"
# Hashes are read in slices of about this many ids: memory while a filter is rebuilt
# stays a few megabytes, however many ids the window holds.
SLICE_IDS = 500_000


def id_hashes(
    client: Any, topic: str, partition: int, since: datetime, slices: int = 1, index: int = 0,
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """MD5 halves of the ids first carried in a partition since `since` (slice `index` of
    `slices`; a replayed row may appear twice, which a filter does not mind)."""
    result = client.query_np(
        f"SELECT reinterpretAsUInt64(substring(h, 1, 8)), reinterpretAsUInt64(substring(h, 9, 8)) "
        f"FROM (SELECT MD5({_KEY}) AS h FROM measurements WHERE {_WHERE} "
        f"AND sipHash64(id) % {{slices:UInt32}} = {{index:UInt32}})",
        parameters={"topic": topic, "partition": partition, "since": since, "slices": slices, "index": index},
    )
    if len(result) == 0:
        empty = np.zeros(0, dtype=np.uint64)
        return empty, empty
    return result[:, 0].astype(np.uint64), result[:, 1].astype(np.uint64)


def filter_from_store(
    read: Callable[[Callable[[Any], Any]], Any], topic: str, partition: int, since: datetime, size_bytes: int,
) -> IdFilter:
    """A partition's id filter, built slice by slice from the store (blocking)."""
    built = IdFilter(size_bytes)
    count = int(read(lambda client: client.query(
        f"SELECT count() FROM measurements WHERE {_WHERE}",
        parameters={"topic": topic, "partition": partition, "since": since},
    ).result_rows[0][0]))
    slices = max(1, -(-count // SLICE_IDS))
    for index in range(slices):
        # read() runs the lambda before the loop moves on, so the late binding is harmless.
        h1, h2 = read(lambda client: id_hashes(client, topic, partition, since, slices, index))  # noqa: B023
        built.add_hashes(h1, h2)
    return built


def first_carriers(client: Any, keys: list[str], since: datetime) -> dict[str, int]:
    """The first carrier's position of each key that has a row since `since`."""
    tuples = [tuple(key.split(SEP, 2)) for key in keys]
    rows = client.query(
        "SELECT customer_name, meter_name, id, min(position) FROM measurements "
        "WHERE (customer_name, meter_name, id) IN {keys:Array(Tuple(String, String, String))} "
        "AND event_time >= {since:DateTime64(6)} GROUP BY customer_name, meter_name, id",
        parameters={"keys": tuples, "since": since},
    ).result_rows
    return {
        SEP.join([customer, meter, measurement_id]): int(position) for customer, meter, measurement_id, position in rows
    }
