"""The HTTP pieces every service shares (services/infra/web.py)."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.requests import Request
from starlette.types import Message

from services.infra.web import BodyTooLarge, authorized, error_body, error_response, problem, read_limited


@pytest.mark.parametrize("header,expected", [
    ("Bearer k3y", True),
    ("bearer k3y", True),  # the scheme is case-insensitive (RFC 9110)
    ("Bearer k3y ", False),
    ("Bearer other", False),
    ("Basic k3y", False),
    ("k3y", False),
    ("", False),
    (None, False),
])
def test_the_bearer_check(header: str | None, expected: bool) -> None:
    assert authorized(header, b"k3y") is expected


def test_without_a_key_every_request_is_authorized() -> None:
    assert authorized(None, None) and authorized("Bearer anything", None)


def test_error_bodies_have_one_shape() -> None:
    assert error_body("unauthorized") == {"error": "unauthorized"}
    assert error_body("unavailable", reason="retry") == {"error": "unavailable", "reason": "retry"}
    body = error_body("body too large", errors=[problem("body", "at most 5 bytes")], extra={"limit_bytes": 5})
    assert list(body) == ["error", "errors", "limit_bytes"]
    assert body["errors"] == [{"field": "body", "reason": "at most 5 bytes"}]


def test_a_503_always_says_when_to_retry() -> None:
    unavailable = error_response(503, "unavailable", reason="retry")
    assert unavailable.status_code == 503 and unavailable.headers["Retry-After"] == "5"
    assert json.loads(unavailable.body) == {"error": "unavailable", "reason": "retry"}
    refused = error_response(401, "unauthorized", headers={"WWW-Authenticate": "Bearer"})
    assert "Retry-After" not in refused.headers and refused.headers["WWW-Authenticate"] == "Bearer"


def _request(chunks: list[bytes], content_length: int | None = None) -> Request:
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    headers = [] if content_length is None else [(b"content-length", str(content_length).encode())]
    received: list[bytes] = []

    async def receive() -> Message:
        message = messages.pop(0)
        received.append(message["body"])
        return message

    request = Request({"type": "http", "method": "POST", "headers": headers}, receive)
    request.state.received = received
    return request


def test_a_body_within_the_limit_is_read_whole() -> None:
    assert asyncio.run(read_limited(_request([b"ab", b"cd"]), 4)) == b"abcd"


def test_a_declared_length_over_the_limit_is_refused_before_reading() -> None:
    request = _request([b"abcdef"], content_length=6)
    with pytest.raises(BodyTooLarge, match="at most 4 bytes") as refused:
        asyncio.run(read_limited(request, 4))
    assert refused.value.limit == 4
    assert request.state.received == []


def test_a_streamed_body_is_refused_at_the_chunk_that_crosses_the_limit() -> None:
    request = _request([b"abc", b"de", b"fgh"])  # no Content-Length
    with pytest.raises(BodyTooLarge):
        asyncio.run(read_limited(request, 4))
    assert request.state.received == [b"abc", b"de"]
