"""services.aggregator.state_log: what a flush writes is exactly what a replay rebuilds."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from services.aggregator import state_log
from services.aggregator.state_log import RECORD_BYTES, StateLog
from services.infra.partitioning import partition_key
from shared.folding import PeriodState, fold
from shared.models import Meter
from shared.timeline import Point, Timeline

SEP = "\x1f"
MARCH, APRIL = datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC)


def period_state(value: int | str, events: int, applied: int, uniques: dict[str, None] | None = None) -> PeriodState:
    return PeriodState(APRIL, Decimal(value), events, applied, uniques)


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
    return (series, *(json.loads(json.dumps(v.data)) for v in (state.seen, state.marks, state.clock)))


def test_a_replay_rebuilds_exactly_what_was_flushed() -> None:
    log, state = Changelog(), fresh()
    state.series[f"acme{SEP}calls{SEP}{SEP}2026-03-01T00:00:00Z"] = period_state(5, 2, 9)
    state.series[f"bob{SEP}calls{SEP}{SEP}*"] = Timeline([Point(MARCH, Decimal(1), False)], None, 3)
    state.seen[f"acme{SEP}calls{SEP}id-1"] = [9, "2026-03-01T00:00:00Z"]
    state.marks["bob"] = {"closed": {"s": 1}, "late": []}
    state.clock[partition_key(1)] = {"max_event_time": "2026-03-01T00:00:00Z"}
    asyncio.run(state.flush(log.send))
    assert not state.pending()
    assert views(replayed(log)) == views(state)
    # Each partition's records hold only its own keys.
    only_bob = replayed(log, (1,))
    assert list(only_bob.series) == [f"bob{SEP}calls{SEP}{SEP}*"] and list(only_bob.seen) == []


def test_later_records_win_and_forgotten_ids_stay_forgotten() -> None:
    log, state = Changelog(), fresh()
    key = f"acme{SEP}calls{SEP}id-1"
    state.seen[key] = [1, "2026-03-01T00:00:00Z"]
    state.series["acme" + SEP + "c" + SEP + SEP + "p"] = period_state(1, 1, 1)
    asyncio.run(state.flush(log.send))
    del state.seen[key]
    state.series["acme" + SEP + "c" + SEP + SEP + "p"] = period_state(2, 2, 2)
    asyncio.run(state.flush(log.send))
    again = replayed(log)
    assert (dict(again.seen.data), again.series["acme" + SEP + "c" + SEP + SEP + "p"].value) == ({}, 2)


def test_ids_added_in_bulk_replay_in_order_with_their_removals() -> None:
    log, state = Changelog(), fresh()
    keep, drop, again = (f"acme{SEP}calls{SEP}{name}" for name in ("keep", "drop", "again"))
    state.add_id(drop, 1, "2026-03-01T00:00:00Z", 0)
    state.add_id(again, 2, "2026-03-01T00:00:00Z", 0)
    asyncio.run(state.flush(log.send))
    # In one flush: a new id, then an old one removed; an id removed, then carried anew.
    state.add_id(keep, 3, "2026-03-02T00:00:00Z", 0)
    del state.seen[drop]
    del state.seen[again]
    state.add_id(again, 4, "2026-03-02T00:00:00Z", 0)
    state.add_id(drop, 5, "2026-03-02T00:00:00Z", 0)
    del state.seen[drop]
    asyncio.run(state.flush(log.send))
    assert views(replayed(log)) == views(state)
    assert replayed(log).seen.data == {keep: [3, "2026-03-02T00:00:00Z"], again: [4, "2026-03-02T00:00:00Z"]}


def test_many_long_ids_in_one_flush_stay_under_the_record_limit() -> None:
    log, state = Changelog(), fresh()
    long = "\u00e9" * 256  # escaped JSON: 6 bytes a character
    for i in range(2_000):
        state.add_id(f"{'a' * 256}{SEP}{'m' * 256}{SEP}{long}{i}", i, "2026-03-01T00:00:00.123456Z", 0)
    asyncio.run(state.flush(log.send))
    assert max(log.sizes) <= RECORD_BYTES and len(replayed(log).seen.data) == 2_000


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
        state.seen[f"acme{SEP}c{SEP}id-{i}"] = [i, "2026-03-01T00:00:00Z"]
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
        asyncio.run(state.checkpoint(crashing.send, 0))
    assert views(replayed(crashing)) == views(state)


def test_a_failed_write_raises_so_the_batch_is_not_acknowledged() -> None:
    state = fresh()
    state.seen[f"acme{SEP}c{SEP}id"] = [1, "t"]
    with pytest.raises(RuntimeError):
        asyncio.run(state.flush(Changelog(fail_after=0).send))


def test_forget_drops_only_the_revoked_partitions() -> None:
    state = fresh()
    state.series[f"acme{SEP}c{SEP}{SEP}p"] = period_state(1, 1, 1)
    state.series[f"bob{SEP}c{SEP}{SEP}p"] = period_state(1, 1, 1)
    state.clock[partition_key(1)] = {"max_event_time": "t"}
    state.loaded = {0, 1}
    state.forget({1})
    assert (list(state.series), list(state.clock), state.loaded) == ([f"acme{SEP}c{SEP}{SEP}p"], [], {0})


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
