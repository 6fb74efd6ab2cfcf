"""When an ingest group gives up on a worker (services/ingest/worker_liveness.py)."""

from __future__ import annotations

from services.ingest.worker_liveness import STARTUP_SECONDS, UNRESPONSIVE_SECONDS, Liveness


def test_a_starting_worker_has_the_startup_deadline_for_its_first_answer() -> None:
    liveness = Liveness(startup=60, unresponsive=5)
    liveness.pinged(now=100.0)
    assert liveness.overdue(now=159.0) is None  # far past the 5 s a running worker gets
    assert liveness.overdue(now=161.0) == 61.0


def test_after_its_first_answer_a_worker_has_the_shorter_deadline() -> None:
    liveness = Liveness(startup=60, unresponsive=5)
    liveness.pinged(now=100.0)
    liveness.answered()
    liveness.pinged(now=101.0)
    assert liveness.overdue(now=105.5) is None
    assert liveness.overdue(now=107.0) == 6.0


def test_the_deadline_runs_from_the_unanswered_ping_not_from_the_last_answer() -> None:
    # A parent that was itself starved sends its next ping late: the worker is not to blame.
    liveness = Liveness(startup=60, unresponsive=5)
    liveness.pinged(now=100.0)
    liveness.answered()
    assert liveness.overdue(now=140.0) is None
    liveness.pinged(now=140.0)
    assert liveness.overdue(now=144.0) is None


def test_one_ping_at_a_time() -> None:
    liveness = Liveness()
    assert liveness.ping_due
    liveness.pinged(now=1.0)
    assert not liveness.ping_due  # a late answer must not count for a newer ping
    liveness.answered()
    assert liveness.ping_due and liveness.overdue(now=1e9) is None


def test_the_defaults_leave_a_loaded_host_room() -> None:
    # uvicorn's 5 s killed replacement after replacement on a loaded 2-core machine.
    assert UNRESPONSIVE_SECONDS >= 30 and STARTUP_SECONDS >= UNRESPONSIVE_SECONDS
    assert Liveness().startup == STARTUP_SECONDS and Liveness().unresponsive == UNRESPONSIVE_SECONDS
