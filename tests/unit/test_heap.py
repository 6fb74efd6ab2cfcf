"""services.infra.heap: freed memory goes back to the operating system."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# A fresh process: heap freed in the middle (a few blocks still in use above it), which
# glibc keeps until asked, then the trim.
PROGRAM = """
import os
from services.infra.heap import release_free_memory
def rss(): return int([l for l in open("/proc/self/status") if l.startswith("VmRSS")][0].split()[1]) // 1024
blocks = [bytearray(b"x" * 60_000) for _ in range(3_000)]
kept = blocks[::100]
del blocks
before = rss()
assert release_free_memory()
print(before - rss())
"""


def test_freed_heap_is_given_back() -> None:
    done = subprocess.run([sys.executable, "-c", PROGRAM], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert int(done.stdout.strip()) > 100, "about 180 MB were freed; most of it must leave the process"


def test_arenas_are_limited_unless_the_environment_says_otherwise() -> None:
    program = "from services.infra.heap import limit_arenas; print(limit_arenas(2))"
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    for extra, expected in (({}, "True"), ({"MALLOC_ARENA_MAX": "4"}, "False")):
        done = subprocess.run([sys.executable, "-c", program], cwd=ROOT, env=env | extra, capture_output=True,
                              text=True, timeout=60, check=False)
        assert done.stdout.strip() == expected, done.stderr[-2000:]
