"""Stops the worker when dead letters stop looking like bad input and start looking
like a bad deploy (a schema change, a catalog outage): better to halt loudly, with the
records unacked, than to route a whole stream into the dead-letter topic."""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field


@dataclass
class DeadLetterGuard:
    max_ratio: float
    min_records: int
    window_seconds: float
    _samples: deque[tuple[float, int, int]] = field(default_factory=deque)

    def admit(self, processed: int, dead: int, now: float | None = None) -> str | None:
        """Why a batch with these counts must stop the worker, or None (then it is counted).

        A batch that trips the guard is not counted: it is not lettered, and the same
        records come again after the restart."""
        at = time.monotonic() if now is None else now
        reason = self.record(processed, dead, at)
        if reason is not None:
            self._samples.pop()
        return reason

    def record(self, processed: int, dead: int, now: float | None = None) -> str | None:
        """Count one batch; returns why the worker must stop, or None."""
        at = time.monotonic() if now is None else now
        self._samples.append((at, processed, dead))
        while self._samples and self._samples[0][0] < at - self.window_seconds:
            self._samples.popleft()
        total = sum(s[1] for s in self._samples)
        dead_total = sum(s[2] for s in self._samples)
        if total >= self.min_records and dead_total > self.max_ratio * total:
            return (
                f"{dead_total} of the last {total} records were dead-lettered "
                f"(more than {self.max_ratio:.0%} within {self.window_seconds:.0f}s)"
            )
        return None
