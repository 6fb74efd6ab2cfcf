"""When an ingest process group gives up on a worker that does not answer its pings.

The group's parent pings each worker over a pipe every half second; a thread of the
worker answers. uvicorn's own supervisor waits 5 s for each answer, counting the first
from the worker's spawn. But a spawned worker can answer only once its interpreter has
started and imported what it needs to read its orders: 0.3 s on an idle 2-core machine,
2.5 s beside ten busy processes, more than 5 s during a full test run. The replacement
of a killed worker was then itself killed, every 5.6 s, for as long as the load lasted,
each restart adding its own start-up to that load.

So a worker has STARTUP_SECONDS for its first answer, then UNRESPONSIVE_SECONDS for each
later one: long enough that only a worker frozen for real (stopped, its answering thread
starved of the GIL by a stuck call) is killed. The deadline runs from when the ping was
sent, so a parent that was itself starved for a while blames no worker for it.

Pure (no clock, no pipes) so the policy can be tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field

STARTUP_SECONDS = 60.0
UNRESPONSIVE_SECONDS = 30.0


@dataclass
class Liveness:
    startup: float = STARTUP_SECONDS
    unresponsive: float = UNRESPONSIVE_SECONDS
    _waiting_since: float | None = field(default=None, repr=False)  # the unanswered ping's
    _has_answered: bool = field(default=False, repr=False)

    @property
    def ping_due(self) -> bool:
        """One ping at a time: a late answer is never taken for the answer to a newer ping."""
        return self._waiting_since is None

    def pinged(self, now: float) -> None:
        self._waiting_since = now

    def answered(self) -> None:
        self._waiting_since = None
        self._has_answered = True

    def overdue(self, now: float) -> float | None:
        """Seconds the worker has left a ping unanswered, once past its deadline; else None."""
        if self._waiting_since is None:
            return None
        waited = now - self._waiting_since
        return waited if waited > (self.unresponsive if self._has_answered else self.startup) else None
