"""services.aggregator.state_log: what a flush writes is exactly what a replay rebuilds."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from services.aggregator import state_log
from services.aggregator.state_log import RECORD_BYTES, StateLog, micros, pack_id
from services.infra.partitioning import partition_key
from shared.folding import PeriodState, fold, to_units
from shared.models import Meter
from shared.timeline import Point, Timeline

SEP = "\x1f"
MARCH, APRIL = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)


def period_state(value: int | str, events: int, applied: int, uniques: dict[str, None] | None = None) -> PeriodState:
    return PeriodState(APRIL, to_units(Decimal(value)), events, applied, uniques)
MARCH_2 = datetime(2026, 3, 2, tzinfo=UTC)


class Changelog:
    """A compacted topic in memory: the latest value per key, in arrival order."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.records: dict[bytes, bytes | None] = {}
        self.sizes: list[int] = []
        self.fail_after = fail_after

    async def send(self, key: bytes, value: bytes | None, partition: int) -> Any:
        if self.fail_after is not None and len(self.sizes) >= self.fail_after:
            raise RuntimeError("broker unavailable")
        assert key.startswith(f"{partition}/".encode())
        self.records[key] = value
        self.sizes.append(len(value or b""))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future

    def compacted(self) -> list[tuple[bytes, bytes | None]]:
        return [(k, v) for k, v in self.records.items() if v is not None]


def by_customer(customer: str) -> int:
    return 0 if customer.startswith("a") else 1


def fresh() -> StateLog:
    return StateLog(partitions=2, partition_of=by_customer)


def replayed(log: Changelog, partitions: tuple[int, ...] = (0, 1)) -> StateLog:
    state = fresh()
    for partition in partitions:
        state.load(partition, log.compacted())
    return state


def views(state: StateLog) -> tuple[dict[str, Any], ...]:
    series = {key: [value.to_json(), getattr(value, "uniques", None)] for key, value in state.series.data.items()}
    ids = {partition: ids for partition, ids in state.ids.items() if ids}  # a replay makes empty ones
    return (series, *(json.loads(json.dumps(v)) for v in (ids, state.marks.data, state.clock.data)))


def test_a_replay_rebuilds_exactly_what_was_flushed() -> None:
    log, state = Changelog(), fresh()
    state.series[f"acme{SEP}calls{SEP}{SEP}2026-03-01T00:00:00Z"] = period_state(5, 2, 9)
    state.series[f"bob{SEP}calls{SEP}{SEP}*"] = Timeline([Point(MARCH, Decimal(1), False)], None, 3)
    state.add_id(f"acme{SEP}calls{SEP}id-1", 9, MARCH, 0)
    state.marks["bob"] = {"closed": {"s": 1}, "late": []}
    state.clock[partition_key(1)] = {"max_event_time": "2026-03-01T00:00:00Z"}
    asyncio.run(state.flush(log.send))
    assert not state.pending()
    assert views(replayed(log)) == views(state)
    # Each partition's records hold only its own keys.
    only_bob = replayed(log, (1,))
    assert list(only_bob.series) == [f"bob{SEP}calls{SEP}{SEP}*"] and only_bob.id_count() == 0


def test_later_records_win_and_forgotten_ids_stay_forgotten() -> None:
    log, state = Changelog(), fresh()
    key = f"acme{SEP}calls{SEP}id-1"
    state.add_id(key, 1, MARCH, 0)
    state.series["acme" + SEP + "c" + SEP + SEP + "p"] = period_state(1, 1, 1)
    asyncio.run(state.flush(log.send))
    assert state.expire_ids(MARCH_2, {0, 1}) == 1
    state.series["acme" + SEP + "c" + SEP + SEP + "p"] = period_state(2, 2, 2)
    asyncio.run(state.flush(log.send))
    again = replayed(log)
    assert (again.id_count(), again.series["acme" + SEP + "c" + SEP + SEP + "p"].value) == (0, 2)


def test_ids_added_in_bulk_replay_in_order_with_their_removals() -> None:
    log, state = Changelog(), fresh()
    keep, drop, again = (f"acme{SEP}calls{SEP}{name}" for name in ("keep", "drop", "again"))
    state.add_id(drop, 1, MARCH, 0)
    state.add_id(again, 2, MARCH, 0)
    asyncio.run(state.flush(log.send))
    # In one flush: a new id, then old ones removed; an id removed, then carried anew;
    # an id carried anew, then removed again.
    state.add_id(keep, 3, MARCH_2, 0)
    assert state.expire_ids(MARCH_2, {0}) == 2  # drop and again
    state.add_id(again, 4, MARCH_2, 0)
    state.add_id(drop, 5, MARCH, 0)
    assert state.expire_ids(MARCH_2, {0}) == 1  # drop
    asyncio.run(state.flush(log.send))
    assert views(replayed(log)) == views(state)
    assert replayed(log).ids == {0: {keep: pack_id(3, micros(MARCH_2)), again: pack_id(4, micros(MARCH_2))}, 1: {}}


def test_many_long_ids_in_one_flush_stay_under_the_record_limit() -> None:
    log, state = Changelog(), fresh()
    long = "\u00e9" * 256  # escaped JSON: 6 bytes a character
    for i in range(2_000):
        state.add_id(f"{'a' * 256}{SEP}{'m' * 256}{SEP}{long}{i}", i, MARCH + timedelta(microseconds=i), 0)
    asyncio.run(state.flush(log.send))
    assert max(log.sizes) <= RECORD_BYTES and replayed(log).id_count() == 2_000
    assert views(replayed(log)) == views(state)


def test_a_million_distinct_values_never_make_a_record_over_the_limit() -> None:
    log, state = Changelog(), fresh()
    key = f"acme{SEP}users{SEP}{SEP}2026-03-01T00:00:00Z"
    uniques = {f"user-{i:07d}-{'x' * 40}": None for i in range(300_000)}
    state.series[key] = period_state(len(uniques), len(uniques), 1, uniques)
    asyncio.run(state.flush(log.send))
    assert max(log.sizes) <= RECORD_BYTES
    # Only the values added since the last flush are written again.
    before = len(log.sizes)
    uniques["one-more"] = None
    state.series[key] = period_state(len(uniques), len(uniques), 2, uniques)
    asyncio.run(state.flush(log.send))
    assert len(log.sizes) == before + 1 and log.sizes[-1] < 1000
    again = replayed(log)
    replayed_state = again.series[key]
    assert isinstance(replayed_state, PeriodState) and replayed_state.uniques is not None
    assert (len(replayed_state.uniques), replayed_state.value) == (300_001, 300_001)


def test_a_checkpoint_replaces_the_log_and_a_crash_inside_it_changes_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_log, "MIN_CHECKPOINT_BYTES", 2000)
    log, state = Changelog(), fresh()
    key = "acme" + SEP + "c" + SEP + SEP + "p"
    for i in range(200):
        state.series[key] = period_state(i, i, i)
        state.add_id(f"acme{SEP}c{SEP}id-{i}", i, MARCH, 0)
        asyncio.run(state.flush(log.send))
    live = log.compacted()
    assert len(live) < 100, "old records were deleted after checkpoints"
    assert views(replayed(log)) == views(state)
    # A checkpoint interrupted before its deletions: old and new records both replay.
    crashing = Changelog()
    crashing.records = dict(log.records)
    state.series[key] = period_state(-1, 0, 999)
    asyncio.run(state.flush(crashing.send))
    crashing.fail_after = len(crashing.sizes) + 1
    with pytest.raises(RuntimeError):
        asyncio.run(state.checkpoint(crashing.send, {0}))
    assert views(replayed(crashing)) == views(state)


def test_a_failed_write_raises_so_the_batch_is_not_acknowledged() -> None:
    state = fresh()
    state.add_id(f"acme{SEP}c{SEP}id", 1, MARCH, 0)
    with pytest.raises(RuntimeError):
        asyncio.run(state.flush(Changelog(fail_after=0).send))


def test_forget_drops_only_the_revoked_partitions() -> None:
    state = fresh()
    state.series[f"acme{SEP}c{SEP}{SEP}p"] = period_state(1, 1, 1)
    state.series[f"bob{SEP}c{SEP}{SEP}p"] = period_state(1, 1, 1)
    state.clock[partition_key(1)] = {"max_event_time": "t"}
    state.add_id(f"acme{SEP}c{SEP}id", 1, MARCH, 0)
    state.add_id(f"bob{SEP}c{SEP}id", 2, MARCH, 1)
    state.loaded = {0, 1}
    state.forget({1})
    assert (list(state.series), list(state.clock), state.loaded) == ([f"acme{SEP}c{SEP}{SEP}p"], [], {0})
    assert (state.first_carrier(f"acme{SEP}c{SEP}id", 0), state.first_carrier(f"bob{SEP}c{SEP}id", 1)) == (1, None)
    # Nothing of partition 1 is written any more: its new owner writes its log now.
    log = Changelog()
    asyncio.run(state.flush(log.send))
    assert {key.split(b"/")[0] for key in log.records} == {b"0"}


def test_an_id_keeps_its_first_carrier_and_leaves_the_window_by_its_event_time() -> None:
    state = fresh()
    far = 10**12 * 2**20 + 999  # a position at offset 10^12 (processing.position)
    state.add_id("acme\x1fc\x1fold", far, MARCH_2 - timedelta(microseconds=1), 0)
    state.add_id("acme\x1fc\x1fedge", 7, MARCH_2, 0)  # at the window's start: still inside
    state.add_id("acme\x1fc\x1fnone", 8, None, 0)  # no event time: leaves at the next trim
    state.add_id("bob\x1fc\x1fold", 9, MARCH, 1)  # a partition not trimmed
    assert (state.first_carrier("acme\x1fc\x1fold", 0), state.first_carrier("acme\x1fc\x1fold", 1)) == (far, None)
    assert state.expire_ids(MARCH_2, {0}) == 2
    assert {key: state.first_carrier(key, p) for p, ids in state.ids.items() for key in ids} == {
        "acme\x1fc\x1fedge": 7, "bob\x1fc\x1fold": 9}


def test_a_checkpoint_of_one_partition_leaves_the_others_ids_and_records_alone() -> None:
    log, state = Changelog(), fresh()
    for i in range(250):
        state.add_id(f"acme{SEP}c{SEP}id-{i}", i, MARCH, 0)
        state.add_id(f"bob{SEP}c{SEP}id-{i}", 1000 + i, MARCH_2, 1)
    state.series[f"acme{SEP}c{SEP}{SEP}p"] = period_state(1, 1, 1)
    state.series[f"bob{SEP}c{SEP}{SEP}p"] = period_state(2, 2, 2)
    state.marks["acme"] = {"closed": {"s": 1}, "late": []}
    state.clock[partition_key(0)] = {"max_event_time": "2026-03-01T00:00:00Z"}
    asyncio.run(state.flush(log.send))
    assert state.expire_ids(MARCH + timedelta(seconds=1), {0}) == 250  # acme's ids left the window
    state.add_id(f"acme{SEP}c{SEP}late", 5000, MARCH_2, 0)
    asyncio.run(state.flush(log.send))
    bob_before = {k: v for k, v in log.records.items() if k.startswith(b"1/")}
    acme_before = [k for k, v in log.records.items() if k.startswith(b"0/") and v is not None]
    sent = len(log.sizes)
    asyncio.run(state.checkpoint(log.send, {0}))
    assert {k: v for k, v in log.records.items() if k.startswith(b"1/")} == bob_before
    assert all(log.records[k] is None for k in acme_before), "the records it replaces are deleted"
    assert len(log.sizes) - sent == 1 + len(acme_before), "one record holds acme's live state"
    assert views(replayed(log)) == views(state)
    assert replayed(log, (0,)).ids == {0: {f"acme{SEP}c{SEP}late": pack_id(5000, micros(MARCH_2))}}


def test_a_log_of_an_earlier_version_replays_and_its_checkpoint_replays_the_same() -> None:
    # Ids one op each with their event time as text ("i", "x"), or flat with text ("I").
    ops = [
        ["i", f"acme{SEP}c{SEP}a", [11, "2026-03-01T00:00:00.000001Z"]],
        ["i", f"acme{SEP}c{SEP}b", [12, "2026-03-01T00:00:00Z"]],
        ["I", [f"acme{SEP}c{SEP}c", 13, "2026-03-02T00:00:00Z", f"acme{SEP}c{SEP}d", 14, ""]],
        ["x", f"acme{SEP}c{SEP}b"],
        ["s", f"acme{SEP}c{SEP}{SEP}p", {"value": "3", "events": 3, "applied": 13, "end": "2026-04-01T00:00:00Z"}],
        ["m", "acme", {"closed": {"s": 1}, "late": []}],
        ["c", partition_key(0), {"max_event_time": "2026-03-02T00:00:00Z"}],
    ]
    old = Changelog()
    old.records = {b"0/000000000000": json.dumps(ops).encode()}
    state = replayed(old)
    assert state.ids[0] == {
        f"acme{SEP}c{SEP}a": pack_id(11, micros(MARCH) + 1), f"acme{SEP}c{SEP}c": pack_id(13, micros(MARCH_2)),
        f"acme{SEP}c{SEP}d": pack_id(14, 0),
    }
    asyncio.run(state.checkpoint(old.send, {0}))
    assert b'"i"' not in b"".join(old.records[k] or b"" for k in old.records)
    assert views(replayed(old)) == views(state)
    assert state.expire_ids(MARCH + timedelta(microseconds=1), {0}) == 1  # d: it had no event time


def test_records_fill_up_to_the_limit_and_keep_the_ops_in_order() -> None:
    small = [["m", f"c{i}", {"n": i}] for i in range(20_000)]
    large = [["u", "k", ["v" * 1000] * 300]]  # ~300 KB: its run exceeds a record with the next ops
    huge = [["u", "k", ["v" * 1000] * 700]]  # over RECORD_BYTES: a record of its own
    ops = [*small[:10_000], *large, *large, *small[10_000:11_000], *huge, *small[11_000:]]
    records = list(state_log._encode_chunks(ops))
    assert [op for record in records for op in json.loads(record)] == ops
    assert [len(r) > RECORD_BYTES for r in records].count(True) == 1
    total = sum(len(r) for r in records)
    assert len(records) <= total // (RECORD_BYTES * 3 // 4) + 3, [len(r) for r in records]


def test_ops_orjson_refuses_are_encoded_too_and_read_back_exactly() -> None:
    # orjson refuses ints past 64 bits (a sum of 20 million units of 10^-12 passes them)
    # and lone surrogates; those ops, and only those, go through the standard encoder.
    big = 20_000_000 * 10**12
    ops = [
        ["s", "acme\x1fbytes\x1f\x1f2026-03-01T00:00:00Z", [big, 7, 9, "2026-04-01T00:00:00Z"]],
        ["s", "caf\u00e9\x1fapi\x1f\x1f2026-03-01T00:00:00Z", [-(2**70), 1, 2, "2026-04-01T00:00:00Z"]],
        ["u", "k", ["\ud800 lone", "ok", "\u00e9"]],
        *[["m", f"c{i}", {"n": i}] for i in range(1_000)],
    ]
    records = list(state_log._encode_chunks(ops))
    assert [op for record in records for op in json.loads(record)] == ops
    assert all(len(r) <= RECORD_BYTES for r in records)


def _unique_counter() -> Meter:
    return Meter.model_validate({"name": "users", "aggregation": "UNIQUE_COUNT", "data_type": "INT"})


def _fold_into(state: StateLog, key: str, values: range, meter: Meter) -> None:
    """As the processor does: the series state folded in place at the values' positions."""
    current = state.series.get(key)
    series = current if isinstance(current, PeriodState) else PeriodState(APRIL)
    for value in values:
        fold(series, meter, Decimal(value), value)
    state.series[key] = series


@pytest.mark.parametrize("already", [0, 30_000])
def test_a_crash_inside_a_flush_of_many_distinct_values_loses_none_after_the_replay(already: int) -> None:
    # A series whose values need several records: a SIGKILL after some of them left the
    # series' `applied` position in the log while values it covers were not, so the
    # replayed measurements were skipped as applied and their values never counted
    # (the issue-11 UNIQUE_COUNT test lost them on a real broker).
    meter = _unique_counter()
    key = f"acme{SEP}users{SEP}{SEP}2026-03-01T00:00:00Z"
    total = already + 100_000
    flushed = Changelog()
    if already:
        first = fresh()
        _fold_into(first, key, range(already), meter)
        asyncio.run(first.flush(flushed.send))

    def worker_with_the_batch_folded() -> StateLog:
        state = replayed(flushed)
        _fold_into(state, key, range(already, total), meter)
        return state

    complete = Changelog()
    asyncio.run(worker_with_the_batch_folded().flush(complete.send))
    records = len(complete.sizes)
    assert records >= 2, "the values must need more than one record for this test"
    for delivered in range(records):
        crashed = Changelog(fail_after=delivered)
        crashed.records = dict(flushed.records)
        with pytest.raises(RuntimeError):
            asyncio.run(worker_with_the_batch_folded().flush(crashed.send))
        # The restarted worker: the log's state, then the batch read again.
        again = replayed(crashed)
        _fold_into(again, key, range(already, total), meter)
        series = again.series[key]
        assert isinstance(series, PeriodState) and series.uniques is not None
        assert (series.value, series.events, len(series.uniques)) == (total, total, total), delivered
