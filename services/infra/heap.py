"""Keep glibc's malloc from holding memory the process no longer uses.

glibc keeps freed memory for reuse, and a long-lived process whose big allocations came
and went (the catalog read from its topic at start, batches of envelopes) can hold tens
of megabytes it no longer uses. `malloc_trim` gives back every free page. Measured: a
view of 100,000 customers and subscriptions held 279 MB after its load and 235 MB after
a trim. It takes a few milliseconds, so it runs after the catalog load and from the
aggregator's timer, never per batch.

glibc also gives each thread that allocates an arena of its own (up to 8 per core), and
memory freed in one arena cannot serve another's allocations. The aggregator allocates
from several threads (the consumer, the catalog view, the store writes): with two arenas
its peak RSS holding 500,000 series was 998 MB instead of 1,022 MB.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from collections.abc import Callable

M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h


def _glibc(function: str) -> Callable[..., int] | None:
    """A glibc malloc function, or None on a C library without it (musl, macOS)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        found: Callable[..., int] = getattr(ctypes.CDLL(name), function)
    except (OSError, AttributeError):
        return None
    return found


_TRIM = _glibc("malloc_trim")
_MALLOPT = _glibc("mallopt")


def limit_arenas(arenas: int) -> bool:
    """At most `arenas` malloc arenas from now on (call before starting threads);
    False where the C library cannot. MALLOC_ARENA_MAX in the environment wins."""
    if _MALLOPT is None or os.environ.get("MALLOC_ARENA_MAX"):
        return False
    return bool(_MALLOPT(M_ARENA_MAX, arenas))


def release_free_memory() -> bool:
    """Give free heap pages back to the OS; False where the C library cannot."""
    if _TRIM is None:
        return False
    _TRIM(0)
    return True
