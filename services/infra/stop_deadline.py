"""A bound on how long a worker may take to stop once it has been told to.

Why: aiokafka (0.14) can loop for ever while it stops. When its group coordinator has been
marked dead, `GroupCoordinator.ensure_coordinator_known` returns at once during close
(so that a close with every broker down does not block, aiokafka issue #659), and the
final offset commit then retries `GroupCoordinatorNotAvailableError` every 100 ms with no
end, while the heartbeat task logs the same error. A worker stuck like that never exits:
seen in CI, where the second worker of a handover test ignored its SIGTERM for minutes.

Exiting without that commit is safe: the flush order (services/aggregator/batches.py)
persists a batch's store rows and state before its offsets, so the partitions' next
owner replays the uncommitted records and recognises what was already folded. The
deadline is a daemon thread, not an event-loop task, because the loop is the thing that
may be stuck.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)

# A stop that ran out of time still ends the process as a stop: the work it could not
# commit is replayed exactly by the next owner, so it is not a failure to restart from.
EXIT_AFTER_DEADLINE = 0


class StopDeadline:
    """Armed when a stop begins; ends the process if the stop has not ended it in time."""

    def __init__(self, seconds: float, exit_process: Callable[[int], object] = os._exit) -> None:
        self.seconds = seconds
        self._exit_process = exit_process
        self._timer: threading.Timer | None = None
        self._armed_at = 0.0
        self._lock = threading.Lock()

    @property
    def armed(self) -> bool:
        return self._timer is not None

    def arm(self) -> None:
        """Start the clock; a second call (SIGTERM after SIGINT, say) keeps the first deadline."""
        with self._lock:
            if self._timer is not None:
                return
            self._armed_at = time.monotonic()
            self._timer = threading.Timer(self.seconds, self._expire)
            self._timer.daemon = True  # a stop that ends in time is not held up by it
            self._timer.name = "stop-deadline"
            self._timer.start()

    def _expire(self) -> None:
        log.error(
            "the worker did not stop within %.0f s of being told to (METERING_STOP_GRACE_SECONDS); "
            "exiting now without the last offset commit: the partitions' next owner replays "
            "the uncommitted records exactly", time.monotonic() - self._armed_at,
        )
        logging.shutdown()
        self._exit_process(EXIT_AFTER_DEADLINE)
