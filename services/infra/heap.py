"""Hand memory the process has freed back to the operating system.

glibc's malloc keeps freed memory for reuse, and a long-lived process whose big
allocations came and went (the catalog read from its topic at start, batches of
envelopes) can hold tens of megabytes it no longer uses. `malloc_trim` gives back every
free page. Measured: a view of 100,000 customers and subscriptions held 279 MB after
its load and 235 MB after a trim. It takes a few milliseconds, so it runs after the
catalog load and at housekeeping, never per batch.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

log = logging.getLogger(__name__)


def _trimmer() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None on a C library without it (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


_TRIM = _trimmer()


def release_free_memory() -> bool:
    """Give free heap pages back to the OS; False where the C library cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
