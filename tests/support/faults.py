"""The aggregator's fault control file (services/aggregator/faults.py) for e2e tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def fault_control(path: Path) -> Iterator[Path]:
    """An empty control file at `path`, named in METERING_FAULT_FILE for the services the
    tests start meanwhile (they inherit the environment); the variable is restored after."""
    path.write_text("")
    previous = os.environ.get("METERING_FAULT_FILE")
    os.environ["METERING_FAULT_FILE"] = str(path)
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop("METERING_FAULT_FILE", None)
        else:
            os.environ["METERING_FAULT_FILE"] = previous
