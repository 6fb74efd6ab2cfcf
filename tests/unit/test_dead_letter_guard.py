from services.aggregator.guard import DeadLetterGuard


def test_stops_only_when_enough_records_are_mostly_dead_lettered() -> None:
    guard = DeadLetterGuard(max_ratio=0.5, min_records=100, window_seconds=60)
    assert guard.record(50, 50, now=0.0) is None  # too few records to judge
    assert guard.record(40, 0, now=1.0) is None  # 50 of 90
    reason = guard.record(20, 20, now=2.0)  # 70 of 110
    assert reason == "70 of the last 110 records were dead-lettered (more than 50% within 60s)"


def test_old_batches_leave_the_window() -> None:
    guard = DeadLetterGuard(max_ratio=0.5, min_records=100, window_seconds=60)
    assert guard.record(100, 60, now=0.0) is not None
    assert guard.record(100, 10, now=100.0) is None  # the bad minute has passed
