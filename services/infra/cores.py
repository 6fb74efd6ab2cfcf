"""How many CPUs this process can use: the default number of ingest processes."""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP = Path("/sys/fs/cgroup")


def available_cores(cgroup: Path | None = None) -> int:
    """The CPUs this process may run on, lowered to its cgroup's CPU quota when one is set.

    A container limited to two CPUs (`docker run --cpus 2`, a Kubernetes CPU limit) still
    has every core of the host in its affinity mask; running a process per host core there
    would only make them queue for the quota.
    """
    cores = len(os.sched_getaffinity(0))
    quota = cpu_quota(cgroup or CGROUP)
    return max(1, min(cores, math.ceil(quota))) if quota is not None else cores


def cpu_quota(cgroup: Path) -> float | None:
    """CPUs' worth of time per period the cgroup allows (1.5 = one and a half), or None."""
    try:  # cgroup v2: "<quota> <period>" or "max <period>"
        quota, period = (cgroup / "cpu.max").read_text().split()
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:  # cgroup v1: the quota is -1 when there is none
        quota_us = int((cgroup / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((cgroup / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None
