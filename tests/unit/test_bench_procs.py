"""bench.procs: a process's CPU split into its interpreter's threads and the rest."""

from __future__ import annotations

import ctypes
import os
import threading
import time

from bench.procs import cpu_seconds, python_thread_cpu_seconds

PR_SET_NAME = 15  # prctl's option number (linux/prctl.h)


def _spin(seconds: float) -> None:
    deadline = time.thread_time() + seconds
    while time.thread_time() < deadline:
        pass


def _named_spinner(name: bytes, seconds: float, spun: threading.Event, measured: threading.Event) -> None:
    """Burn CPU in a thread the OS knows by another name, as a native library's threads are,
    and stay alive until measured (an ended thread is no longer listed)."""
    ctypes.CDLL(None).prctl(PR_SET_NAME, ctypes.c_char_p(name), 0, 0, 0)
    _spin(seconds)
    spun.set()
    measured.wait(30)


def test_cpu_of_threads_a_native_library_named_is_not_counted_as_python() -> None:
    pid = os.getpid()
    total_before, python_before = cpu_seconds(pid), python_thread_cpu_seconds(pid)
    _spin(0.3)  # this thread: the interpreter's
    spun, measured = threading.Event(), threading.Event()
    native = threading.Thread(target=_named_spinner, args=(b"EnginePool", 0.3, spun, measured))
    native.start()
    assert spun.wait(30)
    total_spent = cpu_seconds(pid) - total_before
    python_spent = python_thread_cpu_seconds(pid) - python_before
    measured.set()
    native.join()
    assert python_spent >= 0.25, python_spent
    assert total_spent - python_spent >= 0.25, (total_spent, python_spent)  # the named thread's share


def test_a_process_that_is_gone_has_no_python_cpu() -> None:
    assert python_thread_cpu_seconds(2**22 + 12345) == 0.0
