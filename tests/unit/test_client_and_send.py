"""The typed client's retry rules and `metering send`, against a scripted transport."""

from __future__ import annotations

import io
import json
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
