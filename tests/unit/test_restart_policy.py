"""The supervisor's restart backoff: doubles in a crash loop, resets after a healthy run."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from services.infra import stack as stack_module
from services.infra.restart_policy import RestartBackoff
from services.infra.stack import Stack
from services.settings import Settings


def test_delay_doubles_while_the_child_keeps_crashing_and_is_capped() -> None:
    backoff = RestartBackoff(initial=1.0, maximum=30.0, healthy_after=60.0)
    assert [backoff.delay(ran_for=2.0) for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]


def test_delay_resets_after_a_healthy_run() -> None:
    backoff = RestartBackoff(initial=1.0, maximum=30.0, healthy_after=60.0)
    assert [backoff.delay(ran_for=1.0) for _ in range(4)] == [1, 2, 4, 8]
    assert backoff.delay(ran_for=60.0) == 1  # ran long enough: a new incident, not the same crash loop
    assert backoff.delay(ran_for=3.0) == 2  # and a crash loop after it doubles again from there
    assert backoff.delay(ran_for=59.9) == 4  # just short of healthy: still the same loop


TICK = 0.25  # the watcher's poll interval here, apart from every restart delay


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class Child:
    """A service process that exits with code 1 after `lives` seconds."""

    def __init__(self, clock: Clock, lives: float) -> None:
        self.clock, self.exits_at = clock, clock.now + lives

    def poll(self) -> int | None:
        return 1 if self.clock.now >= self.exits_at else None


class Stopping:
    """The supervisor's stop event on the fake clock: wait() lets time pass, and the
    event sets itself once every planned run has been started."""

    def __init__(self, clock: Clock, planned: list[float]) -> None:
        self.clock, self.planned = clock, planned
        self.waits: list[float] = []

    def is_set(self) -> bool:
        return not self.planned

    def wait(self, timeout: float) -> bool:
        if timeout != TICK:
            self.waits.append(timeout)  # a restart delay, not the watcher's poll tick
        self.clock.now += timeout
        return self.is_set()


def test_the_supervisor_restarts_with_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    # How long each run of the rater lasts: three quick crashes, a healthy day, one more crash.
    runs = [5.0, 5.0, 5.0, 86400.0, 5.0, 5.0]
    stopping = Stopping(clock, runs[1:])
    monkeypatch.setattr(stack_module, "time", SimpleNamespace(monotonic=clock.monotonic))
    monkeypatch.setattr(stack_module, "WATCH_SECONDS", TICK)
    stack = Stack(Settings())

    def spawn(name: str) -> Any:
        lives = stopping.planned.pop(0) if name in stack.children else runs[0]
        return Child(clock, lives)

    monkeypatch.setattr(stack, "_spawn", spawn)
    stack._stopping = stopping  # type: ignore[assignment]
    stack._launch("rater")
    stack._watch()
    assert stopping.waits == [1, 2, 4, 1, 2]
