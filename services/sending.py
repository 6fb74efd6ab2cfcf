"""`metering send FILE`: JSON lines to the ingest API in batches, with retries and progress.

Built to keep up with the ingest service from one process: each line is parsed once,
only to check it is a JSON object, and travels as the producer wrote it (a batch's body
is its lines joined into a JSON array, never decoded and encoded again); up to
`concurrency` batches are in flight at once over kept-alive connections; the progress
line shows the rate.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import httpx

from shared.client import GaveUp, MeteringClient, RejectedBatch, join_encoded


class BadLine(Exception):
    pass


@dataclass(frozen=True)
class Batch:
    first: int  # the index of its first measurement in the file
    count: int
    body: bytes


def _lines(handle: TextIO) -> Iterator[bytes]:
    """Each measurement as the bytes of its line, checked to be one JSON object."""
    for number, line in enumerate(handle, start=1):
        text = line.strip()
        if not text:
            continue
        try:
            item = json.loads(text)
        except json.JSONDecodeError as error:
            raise BadLine(f"line {number}: not JSON ({error.msg})") from error
        if not isinstance(item, dict):
            raise BadLine(f"line {number}: not a JSON object")
        yield text.encode()


def _batches(handle: TextIO, size: int) -> Iterator[Batch]:
    chunk: list[bytes] = []
    first = 0
    for encoded in _lines(handle):
        chunk.append(encoded)
        if len(chunk) >= size:
            yield Batch(first, len(chunk), join_encoded(chunk))
            first += len(chunk)
            chunk = []
    if chunk:
        yield Batch(first, len(chunk), join_encoded(chunk))


@dataclass
class _Progress:
    total: int | None
    out: TextIO
    started: float = field(default_factory=time.monotonic)
    sent: int = 0

    def rate(self) -> float:
        return self.sent / max(time.monotonic() - self.started, 1e-6)

    def show(self) -> None:
        rate = f"{self.rate():,.0f}/s"
        if self.total:
            width = 30
            done = int(width * self.sent / self.total)
            self.out.write(f"\r[{'#' * done}{'.' * (width - done)}] {self.sent}/{self.total} measurements, {rate}")
        else:
            self.out.write(f"\r{self.sent} measurements, {rate}")
        self.out.flush()


@dataclass
class _Outcome:
    rejected: tuple[Batch, RejectedBatch] | None = None  # the earliest in the file
    gave_up: GaveUp | None = None
    bad_line: BadLine | None = None

    @property
    def stopped(self) -> bool:
        return self.rejected is not None or self.gave_up is not None or self.bad_line is not None


async def _send_all(
    batches: Iterator[Batch], client: MeteringClient, concurrency: int, progress: _Progress,
) -> _Outcome:
    outcome = _Outcome()

    async def worker(http: httpx.AsyncClient) -> None:
        while not outcome.stopped:
            try:
                batch = next(batches)  # workers take turns: one loop, no locks
            except StopIteration:
                return
            except BadLine as error:
                outcome.bad_line = error
                return
            try:
                # Awaited first: `sent += await ...` would read `sent` before the wait.
                accepted = await client.send_encoded_async(http, batch.body)
            except RejectedBatch as error:
                if outcome.rejected is None or batch.first < outcome.rejected[0].first:
                    outcome.rejected = (batch, error)
                return
            except GaveUp as error:
                outcome.gave_up = error
                return
            progress.sent += accepted
            progress.show()

    async with client.async_http(concurrency) as http:
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
    return outcome


def send_file(path: Path, client: MeteringClient, batch_size: int, out: TextIO = sys.stderr,
              concurrency: int = 1) -> int:
    """Send every line, `concurrency` batches at a time; stop at the first bad line or
    rejected batch, naming it.

    Batches sent before a stop stay accepted (with concurrency, so may batches after the
    rejected one that were already in flight); sending the file again is safe, as the
    measurement ids make the resent ones duplicates.
    """
    total = None
    if str(path) != "-":
        with path.open() as counting:
            total = sum(1 for line in counting if line.strip())
    handle: TextIO = sys.stdin if str(path) == "-" else path.open()
    progress = _Progress(total, out)
    try:
        outcome = asyncio.run(_send_all(_batches(handle, batch_size), client, max(1, concurrency), progress))
    finally:
        if handle is not sys.stdin:
            handle.close()
    sent = progress.sent
    if outcome.rejected is not None:
        batch, error = outcome.rejected
        out.write(f"\nbatch starting at measurement {batch.first} rejected (HTTP {error.status}):\n")
        for item in error.errors:
            where = f"measurement {batch.first + item['index']}: " if "index" in item else ""
            out.write(f"  {where}{item.get('field')}: {item.get('reason')}\n")
        return 1
    if outcome.gave_up is not None:
        out.write(f"\n{outcome.gave_up}; {sent} measurements were accepted before that\n")
        return 2
    if outcome.bad_line is not None:
        out.write(f"\n{outcome.bad_line}; {sent} measurements were accepted before it\n")
        return 1
    out.write(f"\nsent {sent} measurements in {time.monotonic() - progress.started:.1f} s ({progress.rate():,.0f}/s)\n")
    return 0
