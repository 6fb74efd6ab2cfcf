"""Fault injection for the crash-safety tests: SIGKILL this process at a named step.

Off unless METERING_FAULT_FILE names a control file. A test arms a step by writing its
name into the file; the worker kills itself (SIGKILL, no clean-up, exactly a crash) the
next time it reaches that step with work to do, after writing "fired <step>" into the
file, so the restarted worker runs on. One stack can thus be crashed at every step in turn.
"<step> <n>" arms a crash loop: the step kills n times, each restarted worker included
(the file counts down: "<step> <n-1>", ..., "fired <step>").
The steps are those of the numbered flush orders in batches.py and ticks.py, and the two
steps of a partition handover in worker.py (tests/e2e/test_handover_crashes.py): a worker
told its partitions are revoked, and a worker that has just read the state of partitions
assigned to it, before it folds anything of theirs.
"""

from __future__ import annotations

import logging
import os
import signal
from pathlib import Path

log = logging.getLogger(__name__)

POINTS = ("after_forward", "after_store", "after_state", "after_period_totals", "after_close_state")
HANDOVER_POINTS = ("on_revoke", "after_load")


class Faults:
    def __init__(self, control: Path | None) -> None:
        self._control = control

    @classmethod
    def from_environment(cls) -> Faults:
        control = os.environ.get("METERING_FAULT_FILE")
        return cls(Path(control) if control else None)

    def reached(self, point: str, work: int = 1) -> None:
        """Kill the process here when the control file arms `point` and the step had work."""
        if self._control is None or work == 0:
            return
        try:
            armed, _, times = self._control.read_text().strip().partition(" ")
        except OSError:
            return
        if armed != point:
            return
        left = int(times or 1) - 1
        self._control.write_text(f"{point} {left}" if left > 0 else f"fired {point}")
        log.warning("fault injection: SIGKILL at %s", point)
        os.kill(os.getpid(), signal.SIGKILL)
