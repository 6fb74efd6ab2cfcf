"""What a process costs: CPU seconds and resident memory, read from /proc (Linux)."""

from __future__ import annotations

import os
import platform
import resource
import threading
import time
from dataclasses import dataclass
from pathlib import Path

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) and its children so far; 0 if it is gone.

    Children count while they run and, once waited for, in the process's own cutime and
    cstime: an ingest process group (parent and workers) is measured whole, even across a
    worker's restart.
    """
    fields = _stat(pid)
    if fields is None:
        return 0.0
    # After the command: state is field 3, utime 14, stime 15, cutime 16, cstime 17 (1-based).
    own = sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS
    return own + sum(cpu_seconds(child) for child in children(pid))


def python_thread_cpu_seconds(pid: int) -> float:
    """User + system CPU so far of a Python process's interpreter threads: those the OS
    still names after the executable ("python"). The rest of a process's CPU is its
    native libraries' own threads (the embedded engine's pools, librdkafka's); CPython
    does not name its threads, so every thread it starts keeps that name."""
    try:
        name = Path(f"/proc/{pid}/comm").read_text().strip()
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:  # the process is gone
        return 0.0
    total = 0.0
    for task in tasks:
        read = _read_stat(task / "stat")
        if read is not None and read[0] == name:  # None: the thread ended meanwhile
            total += (int(read[1][11]) + int(read[1][12])) / TICKS
    return total


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and int(fields[1]) == pid:  # ppid: field 4
                found.append(int(entry.name))
    return found


def _stat(pid: int) -> list[str] | None:
    read = _read_stat(Path(f"/proc/{pid}/stat"))
    return None if read is None else read[1]


def _read_stat(path: Path) -> tuple[str, list[str]] | None:
    """A process's or thread's stat file: its command name and the fields after it."""
    try:
        text = path.read_text()
    except OSError:
        return None
    return text[text.index("(") + 1:text.rindex(")")], text.rsplit(")", 1)[1].split()


def memory_kib(pid: int) -> dict[str, int]:
    """VmRSS (now) and VmHWM (peak resident set) of a process, in KiB, with the resident
    set split into RssAnon (the heap) and RssFile (mapped files, such as the embedded
    engine's library, whose pages depend on what else the machine has read)."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[name] = int(value.split()[0])
    except OSError:
        pass
    return out


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass
class CpuMeter:
    """CPU used by named processes over a window, as cores (CPU seconds / wall seconds)."""

    pids: dict[str, int]

    def __post_init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._start = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._wall = time.monotonic()

    def reset_at(self, wall_clock: float) -> threading.Timer:
        """Start the window at `wall_clock` (time.time()), e.g. when the clients start."""
        timer = threading.Timer(max(wall_clock - time.time(), 0.0), self.reset)
        timer.daemon = True
        timer.start()
        return timer

    def cores(self) -> dict[str, float]:
        wall = max(time.monotonic() - self._wall, 1e-9)
        return {name: round((cpu_seconds(pid) - self._start[name]) / wall, 2) for name, pid in self.pids.items()}


def machine() -> dict[str, object]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "ram_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
