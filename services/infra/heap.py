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

The embedded engine is a 555 MB shared library. The kernel maps its pages in around
each page the process touches, so after start-up (migrations, the first queries) 200 to
380 MB of it were resident, although a running aggregator uses far less of it: which
part was resident depended on what the machine had read before, and the peak RSS of
the same run varied by 130 MB (docs/benchmarks.md). `page_out_mapped` asks the kernel to
reclaim those pages once start-up is over (MADV_PAGEOUT); the ones still in use fault
back in. Measured with chdb alone: 203 MB resident after a first insert, 35 MB after
the page-out, 89 MB after the next insert and query.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

M_ARENA_MAX = -8  # mallopt's parameter number, from glibc's malloc.h
MADV_PAGEOUT = 21  # madvise's advice number, from the kernel's mman-common.h (Linux 5.4 and later)


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
_MADVISE = _glibc("madvise")
if _MADVISE is not None:
    _MADVISE.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]  # type: ignore[attr-defined]


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


def page_out_mapped(path_part: str, maps: str = "/proc/self/maps") -> int:
    """Ask the kernel to reclaim the resident pages of every file mapping whose path
    contains `path_part`; returns the bytes of mappings it accepted the advice for (0
    where the C library or the kernel cannot). The pages are only advised: the process
    reads them back from the file on its next touch, so this is safe at any time, and
    worth it once the pages touched at start-up are cold."""
    if _MADVISE is None:
        return 0
    try:
        with Path(maps).open(encoding="utf-8") as lines:
            spans = [_span(line) for line in lines if path_part in line.partition("/")[2]]
    except OSError:  # no /proc (not Linux)
        return 0
    advised = 0
    for low, high in spans:
        if _MADVISE(low, high - low, MADV_PAGEOUT) == 0:  # EINVAL before Linux 5.4: nothing to do
            advised += high - low
    return advised


def _span(line: str) -> tuple[int, int]:
    low, _, high = line.split(maxsplit=1)[0].partition("-")
    return int(low, 16), int(high, 16)


@contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off for the block (as it was, after it).

    A slice of measurements keeps its items, facts and rows alive until it is stored, so
    each young-generation collection during it walked tens of thousands of objects that
    were all still in use: 0.8 of the 4.7 µs that decoding and judging took per
    measurement (bench.breakdown's stages with the collector off). Nearly all of them
    are freed by reference counting once the slice is done, before the collector runs
    again; the few cycles a slice makes wait for the next collection.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
