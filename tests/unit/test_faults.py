"""services.aggregator.faults: which step kills, how often, and what the control file says."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from services.aggregator import faults
from services.aggregator.faults import Faults


@pytest.fixture
def kills(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    sent: list[int] = []
    monkeypatch.setattr(faults.os, "kill", lambda pid, sig: sent.append(sig))
    return sent


def test_an_armed_step_kills_once_and_says_so(tmp_path: Path, kills: list[int]) -> None:
    control = tmp_path / "control"
    control.write_text("after_store\n")
    armed = Faults(control)
    armed.reached("after_state")  # another step
    armed.reached("after_store", work=0)  # the step, with nothing to do
    assert kills == []
    armed.reached("after_store")
    assert kills == [signal.SIGKILL] and control.read_text() == "fired after_store"
    armed.reached("after_store")  # the restarted worker runs on
    assert kills == [signal.SIGKILL]


def test_a_crash_loop_counts_down_across_restarts(tmp_path: Path, kills: list[int]) -> None:
    control = tmp_path / "control"
    control.write_text("after_store 3")
    texts = []
    for _ in range(4):
        Faults(control).reached("after_store")  # each restarted worker reads the file anew
        texts.append(control.read_text())
    assert kills == [signal.SIGKILL] * 3
    assert texts == ["after_store 2", "after_store 1", "fired after_store", "fired after_store"]


def test_without_a_control_file_nothing_is_killed(tmp_path: Path, kills: list[int]) -> None:
    Faults(None).reached("after_store")
    Faults(tmp_path / "missing").reached("after_store")
    assert kills == []
