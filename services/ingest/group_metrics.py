"""/metrics of the ingest service, one process or a group of them (process_group.py).

In a group, each process writes its metric values to files of its own in one directory
(prometheus_client's multiprocess mode, chosen by PROMETHEUS_MULTIPROC_DIR before the
first metric exists). Whichever process answers the scrape adds them all up, so the
totals are the group's, with the names, types and labels of a single process:
counters and histograms are summed (a dead process's counts stay in them), and the
queue-depth gauge sums the live processes only (its `multiprocess_mode`).

prometheus_client's own process collector would describe only the answering process, so
the group gets `process_*` series of its own, summed over its processes (below): the
dashboards' memory, CPU and file-descriptor panels then see the group as the one
service it is.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import resource
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, PlatformCollector, generate_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

METRICS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"

PROC = Path("/proc")
TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def exposition() -> bytes:
    """What /metrics answers: this process's metrics, or, in a group, the group's."""
    directory = os.environ.get(METRICS_VARIABLE)
    registry = REGISTRY if directory is None else group_registry(directory, _group_parent())
    return generate_latest(registry)


def _group_parent() -> int:
    # The process that started this worker, even once it is gone (os.getppid() would then
    # name whichever process adopted the orphan); outside a worker, this process.
    parent = multiprocessing.parent_process()
    return parent.pid if parent is not None and parent.pid is not None else os.getpid()


@functools.cache
def group_registry(directory: str, parent: int) -> CollectorRegistry:
    """The metric files under `directory` added up, and the process group under `parent`."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    GroupProcessCollector(parent, registry)
    PlatformCollector(registry=registry)  # python_info: the same in every process
    return registry


@dataclass(frozen=True)
class ProcessStat:
    """The fields of /proc/<pid>/stat the process_* series are made of."""

    pid: int
    parent: int
    cpu_seconds: float  # user + system, this process alone
    reaped_children_cpu_seconds: float  # of its children that exited and were waited for
    start_ticks: int  # since boot
    virtual_bytes: int
    resident_bytes: int

    @classmethod
    def read(cls, pid: int, proc: Path = PROC) -> ProcessStat | None:
        try:
            text = (proc / str(pid) / "stat").read_text()
        except OSError:
            return None  # exited meanwhile
        # After "pid (command)", whose command may hold spaces and parentheses: fields 3 on.
        fields = text.rsplit(")", 1)[1].split()
        return cls(
            pid=pid, parent=int(fields[1]),
            cpu_seconds=(int(fields[11]) + int(fields[12])) / TICKS,
            reaped_children_cpu_seconds=(int(fields[13]) + int(fields[14])) / TICKS,
            start_ticks=int(fields[19]), virtual_bytes=int(fields[20]), resident_bytes=int(fields[21]) * PAGE_BYTES,
        )


def group_members(parent: int, proc: Path = PROC) -> list[ProcessStat]:
    """The parent first, then its children (workers, and multiprocessing's resource tracker)."""
    stats = [ProcessStat.read(int(entry.name), proc) for entry in proc.iterdir() if entry.name.isdigit()]
    head = [s for s in stats if s is not None and s.pid == parent]
    return head + [s for s in stats if s is not None and s.parent == parent] if head else []


class GroupProcessCollector:
    """process_* of a process group, as prometheus_client's ProcessCollector gives them for one.

    CPU stays a counter that never goes down when a worker dies: a worker's CPU counts
    while it runs, and once the parent has waited for it, in the parent's reaped-children
    CPU instead. Memory and descriptors are the sums over the live members; the start
    time is the parent's, the descriptor limit this process's (all share it).
    """

    def __init__(self, parent: int, registry: CollectorRegistry | None = None, proc: Path = PROC) -> None:
        self._parent = parent
        self._proc = proc
        if registry is not None:
            registry.register(self)

    def collect(self) -> Iterator[Metric]:
        members = group_members(self._parent, self._proc)
        if not members:
            return
        head = members[0]
        yield _gauge("process_virtual_memory_bytes", "Virtual memory size in bytes.",
                     sum(m.virtual_bytes for m in members))
        yield _gauge("process_resident_memory_bytes", "Resident memory size in bytes.",
                     sum(m.resident_bytes for m in members))
        yield _gauge("process_start_time_seconds", "Start time of the process since unix epoch in seconds.",
                     _boot_time(self._proc) + head.start_ticks / TICKS)
        cpu = CounterMetricFamily("process_cpu_seconds", "Total user and system CPU time spent in seconds.")
        cpu.add_metric([], sum(m.cpu_seconds for m in members) + head.reaped_children_cpu_seconds)
        yield cpu
        yield _gauge("process_open_fds", "Number of open file descriptors.",
                     sum(_open_fds(m.pid, self._proc) for m in members))
        yield _gauge("process_max_fds", "Maximum number of open file descriptors.",
                     resource.getrlimit(resource.RLIMIT_NOFILE)[0])

    def describe(self) -> Iterable[Metric]:
        return []  # nothing to check at registration; collect() is read at every scrape


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _open_fds(pid: int, proc: Path) -> int:
    try:
        return sum(1 for _ in (proc / str(pid) / "fd").iterdir())
    except OSError:
        return 0


def _boot_time(proc: Path) -> float:
    for line in (proc / "stat").read_text().splitlines():
        if line.startswith("btime "):
            return float(line.split()[1])
    return 0.0
