"""What every HTTP surface of the pipeline shares: error bodies, the bearer check, and a
body reader that stops at a size limit.

One error shape everywhere: `{"error": ..., "reason": ...}` for a request-level failure,
`{"error": ..., "errors": [{"field", "reason"}, ...]}` for problems with the request's
content. A 503 always carries Retry-After, so clients back off the same way whichever
service refused them.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from typing import Any, NotRequired, TypedDict

from starlette.requests import Request
from starlette.responses import JSONResponse

RETRY_AFTER_SECONDS = "5"


class Problem(TypedDict):
    """One entry of an error body's `errors`."""

    index: NotRequired[int]  # the measurement's position, in a batch's errors
    field: str
    reason: str


def problem(field: str, reason: str) -> Problem:
    return {"field": field, "reason": reason}


def error_body(
    error: str,
    *,
    reason: str | None = None,
    errors: Sequence[Problem] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"error": error}
    if reason is not None:
        body["reason"] = reason
    if errors is not None:
        body["errors"] = list(errors)
    return {**body, **(extra or {})}


def error_response(
    status: int,
    error: str,
    *,
    reason: str | None = None,
    errors: Sequence[Problem] | None = None,
    extra: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    retry = {"Retry-After": RETRY_AFTER_SECONDS} if status == 503 else {}
    return JSONResponse(
        error_body(error, reason=reason, errors=errors, extra=extra),
        status_code=status, headers={**retry, **(headers or {})} or None,
    )


def authorized(authorization: str | None, api_key: bytes | None) -> bool:
    """Whether an Authorization header value carries the key (always, when there is none).

    The comparison takes the same time whatever the token, so a client cannot find the
    key one character at a time.
    """
    if api_key is None:
        return True
    scheme, _, token = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), api_key)


class BodyTooLarge(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"at most {limit} bytes")
        self.limit = limit


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, or BodyTooLarge as soon as it is known to exceed `limit` bytes.

    A declared Content-Length over the limit is refused before anything is read; a body
    that streams in without one (or lies about it) is refused at the chunk that crosses
    the limit, so a client cannot make the service buffer more than `limit` bytes.
    """
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)
