"""The typed client's retry rules and `metering send`, against a scripted transport."""

from __future__ import annotations

import asyncio
import io
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.sending import send_file
from shared.client import GaveUp, MeteringClient, RejectedBatch


def scripted(responses: list[httpx.Response | Exception], seen: list[Any]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.headers.get("authorization"), json.loads(request.content)))
        outcome = responses.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    return httpx.MockTransport(handler)


def client(responses: list[httpx.Response | Exception], seen: list[Any], sleeps: list[float]) -> MeteringClient:
    return MeteringClient("http://ingest", "key", transport=scripted(responses, seen), sleep=sleeps.append)


def test_retries_503_and_connection_errors_with_backoff_honouring_retry_after() -> None:
    seen: list[Any] = []
    sleeps: list[float] = []
    c = client([httpx.Response(503, headers={"Retry-After": "3"}, json={}), httpx.ConnectError("down"),
                httpx.Response(202, json={"accepted": 2})], seen, sleeps)
    assert c.send_batch([{"id": "a"}, {"id": "b"}]) == 2
    assert sleeps == [3.0, 6.0]
    assert [s[0] for s in seen] == ["Bearer key"] * 3
    assert all(s[1] == [{"id": "a"}, {"id": "b"}] for s in seen)  # the same batch, so ids dedup


def test_a_400_is_not_retried_and_carries_the_field_errors() -> None:
    errors = {"error": "invalid measurements", "errors": [{"index": 0, "field": "value", "reason": "bad"}]}
    c = client([httpx.Response(400, json=errors)], [], [])
    with pytest.raises(RejectedBatch) as caught:
        c.send_batch([{"id": "a"}])
    assert caught.value.errors == errors["errors"]


def test_gives_up_after_the_last_attempt() -> None:
    sleeps: list[float] = []
    c = client([httpx.Response(503, json={})] * 6, [], sleeps)
    with pytest.raises(GaveUp):
        c.send_batch([{"id": "a"}])
    assert len(sleeps) == 5


def test_send_file_batches_lines_and_reports_progress(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps({"id": str(i)}) for i in range(5)) + "\n\n")
    seen: list[Any] = []
    c = client([httpx.Response(202, json={"accepted": 2}), httpx.Response(202, json={"accepted": 2}),
                httpx.Response(202, json={"accepted": 1})], seen, [])
    out = io.StringIO()
    assert send_file(path, c, batch_size=2, out=out) == 0
    assert [len(s[1]) for s in seen] == [2, 2, 1]
    assert "5/5 measurements" in out.getvalue() and "sent 5 measurements" in out.getvalue()


def test_send_file_names_the_measurement_a_rejected_batch_failed_on(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(json.dumps({"id": str(i)}) for i in range(4)))
    errors = {"errors": [{"index": 1, "field": "meter_name", "reason": "unknown meter 'x'"}]}
    c = client([httpx.Response(202, json={"accepted": 2}), httpx.Response(400, json=errors)], [], [])
    out = io.StringIO()
    assert send_file(path, c, batch_size=2, out=out) == 1
    assert "measurement 3: meter_name: unknown meter 'x'" in out.getvalue()


def test_send_file_stops_at_a_line_that_is_not_json(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_text('{"id": "1"}\n{oops\n{"id": "3"}\n')
    seen: list[Any] = []
    out = io.StringIO()
    assert send_file(path, client([], seen, []), batch_size=10, out=out) == 1
    assert seen == [] and "line 2: not JSON" in out.getvalue()


class ConcurrentIngest:
    """An async stand-in for the ingest API that records bodies and how many requests overlapped."""

    def __init__(self, reject_first: int | None = None) -> None:
        self.bodies: list[bytes] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.reject_first = reject_first

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        self.bodies.append(request.content)
        items = json.loads(request.content)
        if self.reject_first is not None and any(item["id"] == str(self.reject_first) for item in items):
            index = [item["id"] for item in items].index(str(self.reject_first))
            return httpx.Response(400, json={"errors": [{"index": index, "field": "value", "reason": "bad"}]})
        assert request.headers["content-type"] == "application/json"
        return httpx.Response(202, json={"accepted": len(items)})


def _file(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "m.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_send_file_keeps_several_batches_in_flight_and_sends_every_line_once(tmp_path: Path) -> None:
    lines = [json.dumps({"id": str(i), "value": i}) for i in range(50)]
    ingest = ConcurrentIngest()
    c = MeteringClient("http://ingest", "key", async_transport=httpx.MockTransport(ingest))
    out = io.StringIO()
    assert send_file(_file(tmp_path, lines), c, batch_size=5, out=out, concurrency=4) == 0
    assert ingest.most_in_flight == 4
    sent = sorted(item["id"] for body in ingest.bodies for item in json.loads(body))
    assert sent == sorted(str(i) for i in range(50))
    assert "50/50 measurements" in out.getvalue() and "sent 50 measurements" in out.getvalue()
    assert re.search(r"measurements, [\d,]+/s", out.getvalue())  # the progress line shows the rate


def test_each_line_travels_as_written(tmp_path: Path) -> None:
    lines = ['{"id": "ü",  "value": 1.50, "labels": {"k": "v"}}', '{"id":"2","value":1e400}']
    ingest = ConcurrentIngest()
    c = MeteringClient("http://ingest", "key", async_transport=httpx.MockTransport(ingest))
    assert send_file(_file(tmp_path, ["", *lines, "  "]), c, batch_size=10, out=io.StringIO()) == 0
    assert ingest.bodies == [b"[" + ",".join(lines).encode() + b"]"]


def test_a_rejected_batch_stops_the_send_and_is_named_under_concurrency(tmp_path: Path) -> None:
    lines = [json.dumps({"id": str(i)}) for i in range(100)]
    ingest = ConcurrentIngest(reject_first=13)
    c = MeteringClient("http://ingest", "key", async_transport=httpx.MockTransport(ingest))
    out = io.StringIO()
    assert send_file(_file(tmp_path, lines), c, batch_size=5, out=out, concurrency=3) == 1
    assert "batch starting at measurement 10 rejected (HTTP 400)" in out.getvalue()
    assert "measurement 13: value: bad" in out.getvalue()
    assert len(ingest.bodies) < 20  # no batch is started after the rejection is known


def test_the_async_sender_retries_like_the_sync_one() -> None:
    seen: list[Any] = []
    waits: list[float] = []

    async def record(delay: float) -> None:
        waits.append(delay)

    c = MeteringClient("http://ingest", "key", async_sleep=record, transport=scripted(
        [httpx.Response(503, headers={"Retry-After": "3"}, json={}), httpx.ConnectError("down"),
         httpx.Response(202, json={"accepted": 1})], seen))

    async def send() -> int:
        async with c.async_http(2) as http:
            return await c.send_encoded_async(http, b'[{"id":"a"}]')

    assert asyncio.run(send()) == 1
    assert waits == [3.0, 6.0] and [s[1] for s in seen] == [[{"id": "a"}]] * 3


def test_the_sync_client_keeps_its_connection_between_batches() -> None:
    c = client([httpx.Response(202, json={"accepted": 1})] * 2, [], [])
    first = c._http()
    c.send_batch([{"id": "a"}])
    c.send_batch([{"id": "b"}])
    assert c._http() is first
    c.close()
