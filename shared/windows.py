"""Calendar windows (hour, day, month) in UTC, for usage reads."""

from __future__ import annotations

from datetime import datetime, timedelta

from shared.periods import add_months

WINDOWS = ("hour", "day", "month")


def window_start(at: datetime, window: str) -> datetime:
    if window == "hour":
        return at.replace(minute=0, second=0, microsecond=0)
    if window == "day":
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    return at.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_window(start: datetime, window: str) -> datetime:
    if window == "hour":
        return start + timedelta(hours=1)
    if window == "day":
        return start + timedelta(days=1)
    return add_months(start, 1)


def windows(start: datetime, end: datetime, window: str, limit: int) -> list[tuple[datetime, datetime]]:
    """Aligned windows covering [start, end), at most `limit` (ValueError beyond)."""
    out = []
    cursor = window_start(start, window)
    while cursor < end:
        following = next_window(cursor, window)
        out.append((cursor, following))
        if len(out) > limit:
            raise ValueError(f"more than {limit} {window} windows; narrow the time range or widen the window")
        cursor = following
    return out
