"""Child processes that die with their parent and stop in a controlled order."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from collections.abc import Sequence

_PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Linux: the kernel sends this process SIGTERM when the parent thread that started it
    exits, so even a SIGKILLed supervisor leaves no orphan broker or service behind."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except OSError:
        pass


def _die_with_parent_in_own_group() -> None:
    die_with_parent()
    # Its own process group: terminate() signals the service and every process it started.
    os.setsid()


def spawn(
    argv: Sequence[str], env: dict[str, str] | None = None, stdout: int | None = None, stderr: int | None = None
) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        list(argv), env=env, stdout=stdout, stderr=stderr, preexec_fn=_die_with_parent_in_own_group
    )


def terminate(process: subprocess.Popen[bytes], timeout: float = 20.0) -> int | None:
    """SIGTERM the child's process group, then SIGKILL if it has not exited in time."""
    if process.poll() is not None:
        return process.returncode
    try:
        os.killpg(process.pid, signal.SIGTERM)
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        return process.wait(timeout=10)
    except ProcessLookupError:
        return process.poll()
