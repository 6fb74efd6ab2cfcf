"""`metering send FILE`: JSON lines to the ingest API in batches, with retries and progress."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Iterator, TextIO

from shared.client import GaveUp, MeteringClient, RejectedBatch, batches


class BadLine(Exception):
    pass


def _lines(handle: TextIO) -> Iterator[dict[str, Any]]:
    for number, line in enumerate(handle, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as error:
            raise BadLine(f"line {number}: not JSON ({error.msg})") from error
        if not isinstance(item, dict):
            raise BadLine(f"line {number}: not a JSON object")
        yield item


def _progress(sent: int, total: int | None, out: TextIO) -> None:
    if total:
        width = 30
        done = int(width * sent / total)
        out.write(f"\r[{'#' * done}{'.' * (width - done)}] {sent}/{total} measurements")
    else:
        out.write(f"\r{sent} measurements")
    out.flush()


def send_file(path: Path, client: MeteringClient, batch_size: int, out: TextIO = sys.stderr) -> int:
    """Send every line; stop at the first bad line or rejected batch, naming it.

    Batches sent before a stop stay accepted; sending the file again is safe, as the
    measurement ids make the resent ones duplicates.
    """
    total = None
    if str(path) != "-":
        with path.open() as counting:
            total = sum(1 for line in counting if line.strip())
    handle: TextIO = sys.stdin if str(path) == "-" else path.open()
    sent = 0
    try:
        for number, batch in enumerate(batches(_lines(handle), batch_size)):
            try:
                sent += client.send_batch(batch)
            except RejectedBatch as error:
                first = number * batch_size
                out.write(f"\nbatch starting at measurement {first} rejected (HTTP {error.status}):\n")
                for item in error.errors:
                    where = f"measurement {first + item['index']}: " if "index" in item else ""
                    out.write(f"  {where}{item.get('field')}: {item.get('reason')}\n")
                return 1
            except GaveUp as error:
                out.write(f"\n{error}; {sent} measurements were accepted before that\n")
                return 2
            _progress(sent, total, out)
    except BadLine as error:
        out.write(f"\n{error}; {sent} measurements were accepted before it\n")
        return 1
    finally:
        if handle is not sys.stdin:
            handle.close()
    out.write(f"\nsent {sent} measurements\n")
    return 0
