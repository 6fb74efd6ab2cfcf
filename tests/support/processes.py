"""What tests see of an ingest process group from outside, through /proc."""

from __future__ import annotations

from pathlib import Path


def stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name: state, parent pid, ...; None once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def workers_of(parent: int) -> set[int]:
    """The group's serving processes (not multiprocessing's resource tracker), zombies excluded."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields is None or int(fields[1]) != parent or fields[0] == "Z":
            continue
        try:
            if b"spawn_main" in (entry / "cmdline").read_bytes():
                found.add(int(entry.name))
        except OSError:
            continue
    return found


def alive(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"


def resident_kib(pid: int, path_part: str) -> int:
    """How many KiB of `pid`'s mappings of files whose path holds `path_part` are resident
    (the Rss lines of /proc/<pid>/smaps)."""
    total, inside = 0, False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        first = line.split(maxsplit=1)[0]
        if "-" in first and not first.endswith(":"):  # a mapping's header line
            inside = path_part in line
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total
