"""Compile the aggregator's hot path (services/infra/native.py's MODULES) with mypyc, in place.

Usage:
    make native                        # what `make demo`, `make test` and `make bench` run first
    python scripts/build_native.py     # compiles unless every module is up to date (about 50 s)
    python scripts/build_native.py --clean   # removes them: the sources run as Python again
                                             # (py-spy then sees the hot path's Python frames)

It needs a C compiler and Python's headers (gcc and the python3-dev headers; the Dockerfile
installs them for the build only). Without them it says so and exits 0: the sources run as
Python. A build that fails exits 1 and leaves no compiled module behind, so nothing runs
an older compiled copy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services.infra import native  # noqa: E402 - after the path above


def build() -> None:
    from mypyc.build import mypycify
    from setuptools import setup

    paths = [str(native.source(m).relative_to(ROOT)) for m in native.MODULES]
    os.chdir(ROOT)  # mypyc reads [tool.mypy] from pyproject.toml and writes build/ here
    setup(
        name="metering-native",
        ext_modules=mypycify(paths, group_name=native.GROUP, opt_level="3"),
        script_args=["--quiet", "build_ext", "--inplace"],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clean", action="store_true", help="remove the compiled modules")
    args = parser.parse_args()
    if args.clean:
        gone = native.remove()
        print(f"native: removed {len(gone)} compiled files; {native.describe()}")
        return 0
    if native.up_to_date():
        print(f"native: up to date; {native.describe()}")
        return 0
    native.remove()
    compiler = (sysconfig.get_config_var("CC") or "cc").split()[0]
    if shutil.which(compiler) is None or not Path(sysconfig.get_paths()["include"], "Python.h").exists():
        # Not an error: the same sources run as Python, with the same answers, more slowly.
        print(f"native: no C compiler ({compiler}) or no Python.h here; {native.describe()}", file=sys.stderr)
        return 0
    started = time.monotonic()
    try:
        build()
    except (Exception, SystemExit) as error:  # noqa: BLE001 - any failure: remove what it left, then fail
        native.remove()
        print(f"native: the build failed ({error}); {native.describe()}", file=sys.stderr)
        return 1
    native.record()
    print(f"native: built in {time.monotonic() - started:.0f} s; {native.describe()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
