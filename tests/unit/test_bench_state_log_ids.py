"""bench/state_log_ids.py: the figures come from a run that kept every id and checkpointed."""

from __future__ import annotations

import pytest

from bench import state_log_ids
from services.aggregator import state_log


def test_a_small_run_keeps_every_id_once_and_checkpoints(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(state_log, "MIN_CHECKPOINT_BYTES", 64 * 1024)
    figures, state = state_log_ids.run(ids=6_000, partitions=3, batch=500)
    assert (figures.ids, state.id_count(), state.pending()) == (6_000, 6_000, False)
    assert figures.checkpoints > 0 and figures.checkpoint_s > 0 and figures.records > figures.checkpoints
    assert state_log_ids.memory_per_id(ids=2_000, partitions=3, batch=500) > 50  # a key alone is more
