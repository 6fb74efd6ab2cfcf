"""services.infra.heap: freed memory goes back to the operating system."""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from pathlib import Path

from services.infra.heap import page_out_mapped
from tests.support.processes import resident_kib

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


def test_resident_pages_of_a_mapped_file_are_given_back(tmp_path: Path) -> None:
    data = tmp_path / "library.bin"
    data.write_bytes(os.urandom(32 * 1024 * 1024))
    with data.open("rb") as file, mmap.mmap(file.fileno(), 0, prot=mmap.PROT_READ) as mapped:
        sum(mapped[at] for at in range(0, len(mapped), 4096))  # every page touched: resident
        before = resident_kib(os.getpid(), str(data))
        assert page_out_mapped("other-library.bin") == 0  # no such mapping: nothing advised
        assert resident_kib(os.getpid(), str(data)) == before
        assert page_out_mapped("library.bin") >= len(mapped)
        after = resident_kib(os.getpid(), str(data))
        assert mapped[12345] == data.read_bytes()[12345]  # still readable: it comes back from the file
    assert before >= 30 * 1024, before
    assert after < before // 4, (before, after)


def test_page_out_without_proc_maps_advises_nothing(tmp_path: Path) -> None:
    assert page_out_mapped("_chdb", maps=str(tmp_path / "absent")) == 0
