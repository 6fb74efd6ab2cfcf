"""Repeat the SIGKILL exactness tests N times and print "K of N exact".

Not run by CI (it takes N times a few minutes). Usage:
    make stress N=25
    python scripts/stress.py --runs 25 [--tests tests/e2e/...::test_x ...]
Each run is a fresh pytest process (its own broker and store), so runs are independent.
A run counts as exact when every selected test passed; the failing runs' output is kept
under .cache/stress/ for the post-mortem.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_TESTS = [
    "tests/e2e/test_aggregation_exact.py::test_sigkilled_aggregator_restarts_and_totals_stay_exact",
    "tests/e2e/test_crash_points.py",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=25)
    parser.add_argument("--tests", nargs="+", default=DEFAULT_TESTS)
    args = parser.parse_args()
    out = Path(".cache/stress")
    out.mkdir(parents=True, exist_ok=True)
    exact = 0
    for run in range(1, args.runs + 1):
        began = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.tests],
            capture_output=True, text=True,
        )
        took = time.monotonic() - began
        summary = (result.stdout.strip().splitlines() or [""])[-1]
        # A skipped test also exits 0: only tests that ran and passed count.
        if result.returncode == 0 and "passed" in summary and "skipped" not in summary:
            exact += 1
            print(f"run {run}: exact ({took:.0f} s)", flush=True)
        else:
            log = out / f"run-{run}.log"
            log.write_text(result.stdout + result.stderr)
            print(f"run {run}: NOT exact ({took:.0f} s), see {log}", flush=True)
    print(f"{exact} of {args.runs} exact")
    return 0 if exact == args.runs else 1


if __name__ == "__main__":
    sys.exit(main())
