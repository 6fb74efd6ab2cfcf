"""When to restart a service that exited: exponential backoff that forgets healthy runs.

Pure (no clock, no processes) so the supervisor's policy can be tested on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class RestartBackoff:
    """Doubling delay for a crash loop; back to `initial` after a run of `healthy_after` s.

    Without the reset, a service that crashed a few times early on would wait `maximum`
    seconds after every later, unrelated exit, days apart, for the rest of the stack's life.
    """

    initial: float = 1.0
    maximum: float = 30.0
    healthy_after: float = 60.0
    _next: float = field(default=-1.0, repr=False)

    def delay(self, ran_for: float) -> float:
        """Seconds to wait before restarting a child that exited after `ran_for` seconds."""
        if self._next < 0 or ran_for >= self.healthy_after:
            self._next = self.initial
        delay = self._next
        self._next = min(delay * 2, self.maximum)
        return delay
