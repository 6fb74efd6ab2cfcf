"""services.aggregator.dedup: the id filter and the recent ids (the store side is in
tests/integration/test_clickhouse_store.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from services.aggregator.dedup import IdFilter, LogDedup, StoreDedup, _halves
from services.aggregator.state_log import StateLog
from services.aggregator.worker import dedup_for
from services.settings import ClickHouseSettings, LimitSettings, Settings


def test_a_filter_never_forgets_a_key_it_was_given() -> None:
    ids = IdFilter(4096)
    keys = [f"acme\x1fcalls\x1fid-{i}" for i in range(2000)]
    for key in keys:
        ids.add(key)
    assert all(ids.might_contain(key) for key in keys)
    strangers = sum(ids.might_contain(f"other-{i}") for i in range(10_000))
    assert strangers < 100  # 16 bits per key, 10 hashes: well under 1% false positives


def test_keys_added_from_their_hashes_set_the_same_bits_as_keys_added_one_by_one() -> None:
    keys = [f"c\x1fm\x1f{i}" for i in range(500)]
    one_by_one, at_once = IdFilter(2048), IdFilter(2048)
    for key in keys:
        one_by_one.add(key)
    halves = [_halves(key) for key in keys]
    at_once.add_hashes(
        np.array([h[0] for h in halves], dtype=np.uint64), np.array([h[1] for h in halves], dtype=np.uint64),
    )
    assert bytes(one_by_one._array) == bytes(at_once._array)
    assert at_once.added == one_by_one.added == 500


def test_keys_in_bulk_set_and_find_the_same_bits_as_one_by_one() -> None:
    # The batch paths StoreDedup takes (suspects() and end_batch()) against the single-key ones.
    keys = [f"c\x1fm\x1f{i}\u00e9" for i in range(700)]
    one_by_one, in_bulk = IdFilter(1024), IdFilter(1024)
    for key in keys[:300]:
        one_by_one.add(key)
    in_bulk.add_many(keys[:300])
    assert bytes(one_by_one._array) == bytes(in_bulk._array) and in_bulk.added == 300
    assert in_bulk.might_contain_each(keys) == [one_by_one.might_contain(key) for key in keys]
    assert all(in_bulk.might_contain_each(keys[:300])) and in_bulk.might_contain_each([]) == []


def test_ids_of_a_batch_reach_the_filter_at_its_end() -> None:
    dedup = StoreDedup(filter_bytes=1024, recent_capacity=0)
    dedup.load(0, IdFilter(1024))
    dedup.remember("c\x1fm\x1fa", 7, 0)
    dedup.remember("c\x1fm\x1fb", 8, 1)  # a partition without a filter: nothing to add
    dedup.end_batch()
    assert dedup.recent == {} and dedup.filters[0].might_contain("c\x1fm\x1fa")
    # Gone from `recent`, still maybe-seen by the filter: a suspect for the store to answer.
    assert dedup.suspects({"c\x1fm\x1fa", "c\x1fm\x1fnew"}, lambda key: 0) == ["c\x1fm\x1fa"]


def test_a_filter_says_when_it_is_full() -> None:
    ids = IdFilter(100)  # 800 bits
    for i in range(40):
        ids.add(str(i))
    assert not ids.full
    ids.add("one more")
    assert ids.full


def test_recent_ids_are_bounded_oldest_out() -> None:
    dedup = StoreDedup(filter_bytes=64, recent_capacity=2)
    for position, key in enumerate("abc"):
        dedup.remember(key, position, partition=0)
    assert len(dedup.recent) == 3  # a batch keeps all its ids: none of them is stored yet
    dedup.end_batch()
    assert dedup.recent == {"b": (1, 0), "c": (2, 0)}
    assert (dedup.first("c", 0), dedup.first("a", 0)) == (2, None)
    dedup.answers = {"a": 0}
    assert dedup.first("a", 0) == 0


def test_suspects_are_the_keys_only_the_store_can_answer() -> None:
    dedup = StoreDedup(filter_bytes=1024, recent_capacity=10)
    dedup.load(0, IdFilter(1024))
    dedup.remember("recent", 1, partition=0)  # also in the filter now
    dedup.filters[0].add("old")
    partition = {"recent": 0, "old": 0, "new": 0, "unloaded": 1}.__getitem__
    # "unloaded": its partition has no filter yet, so only the store can say
    assert sorted(dedup.suspects({"recent", "old", "new", "unloaded"}, partition)) == ["old", "unloaded"]


def test_forgetting_a_partition_drops_its_filter_and_its_recent_ids() -> None:
    dedup = StoreDedup(filter_bytes=64, recent_capacity=10)
    for partition in (0, 1):
        dedup.load(partition, IdFilter(64))
        dedup.remember(f"k{partition}", 5, partition)
    dedup.forget({1})
    assert (set(dedup.filters), set(dedup.recent)) == ({0}, {"k0"})


def test_the_state_log_keeps_every_id_with_its_first_carrier_in_its_partition() -> None:
    state = StateLog(partitions=2, partition_of=lambda customer: 0)
    dedup = LogDedup(state)
    dedup.remember("k", 7, partition=1, at=datetime(2026, 3, 1, tzinfo=UTC))
    assert (dedup.first("k", 1), dedup.first("other", 1), dedup.first("k", 0)) == (7, None, None)
    assert state.expire_ids(datetime(2026, 3, 1, 0, 0, 1, tzinfo=UTC), {1}) == 1  # with its event time
    assert state.pending()
    assert dedup.suspects({"k", "other"}, lambda key: 0) == []  # nothing is ever looked up


@pytest.mark.parametrize("mode,url,expected", [
    ("auto", None, LogDedup), ("auto", "http://clickhouse:8123", StoreDedup),
    ("store", None, StoreDedup), ("state-log", "http://clickhouse:8123", LogDedup),
])
def test_where_the_ids_live(mode: str, url: str | None, expected: type) -> None:
    settings = Settings(clickhouse=ClickHouseSettings(url=url), limits=LimitSettings(dedup_ids=mode))
    state = StateLog(partitions=1, partition_of=lambda customer: 0)
    assert type(dedup_for(settings, state)) is expected
