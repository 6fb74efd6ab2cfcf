"""Summarise py-spy collapsed stacks (`--format raw`): top frames by own and total time.

    python -m bench.profile_top PROFILE.txt [--top 25] [--filter services/]
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

_LINE = re.compile(r":\d+\)$")


def _frame(text: str) -> str:
    # "func (path/to/file.py:123)" -> "func (path/to/file.py)": lines of one function merge.
    return _LINE.sub(")", text.strip())


def summarise(path: Path, top: int, only: str | None) -> str:
    own: Counter[str] = Counter()
    total: Counter[str] = Counter()
    samples = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame(f) for f in stack.split(";")]
        # py-spy puts the thread (and process) name first; idle threads' samples are skipped by py-spy itself.
        samples += count
        own[frames[-1]] += count
        for frame in set(frames):
            total[frame] += count
    out = [f"{path.name}: {samples} samples"]
    for title, counter in (("own time", own), ("total time (inclusive)", total)):
        out.append(f"-- top {top} by {title}")
        shown = 0
        for frame, count in counter.most_common():
            if only and only not in frame:
                continue
            out.append(f"{100 * count / max(samples, 1):6.1f}%  {frame}")
            shown += 1
            if shown >= top:
                break
    return "\n".join(out)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile_top")
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--filter", default=None, help="only frames containing this text")
    args = parser.parse_args(argv)
    for path in args.files:
        print(summarise(path, args.top, args.filter))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
