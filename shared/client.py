"""A small typed client for the ingest HTTP API (used by `metering send` and tests).

Retries are safe because every measurement carries its idempotency key (`id`): a batch
resent after a timeout or a 503 is deduplicated by the pipeline, never double counted.
This is the one module of `shared` that does I/O; it depends on nothing but httpx.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

RETRYABLE_STATUS = {429, 502, 503, 504}
JSON_HEADERS = {"Content-Type": "application/json"}


class RejectedBatch(Exception):
    """The API refused the batch (400/413): retrying the same batch cannot help."""

    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"HTTP {status}: {body}")
        self.status = status
        self.body = body

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.body.get("errors", [])) if isinstance(self.body, dict) else []


class GaveUp(Exception):
    """Retries exhausted on a retryable failure."""


@dataclass
class MeteringClient:
    base_url: str
    api_key: str | None = None
    timeout: float = 30.0
    attempts: int = 6
    backoff: float = 0.5
    sleep: Callable[[float], None] = time.sleep
    transport: httpx.BaseTransport | None = None  # tests pass httpx.MockTransport

    # Awaited between retries by send_encoded_async (tests pass a recorder).
    async_sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    async_transport: httpx.AsyncBaseTransport | None = None
    _kept: httpx.Client | None = field(default=None, init=False, repr=False)

    def _http(self) -> httpx.Client:
        """One client for the life of this object: its connections are kept alive."""
        if self._kept is None:
            self._kept = httpx.Client(base_url=self.base_url.rstrip("/"), headers=self._headers(),
                                      timeout=self.timeout, transport=self.transport)
        return self._kept

    def async_http(self, connections: int) -> httpx.AsyncClient:
        """An async client keeping up to `connections` connections alive (close it when done)."""
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        transport = self.async_transport
        if transport is None and isinstance(self.transport, httpx.AsyncBaseTransport):
            transport = self.transport  # a MockTransport serves both kinds of client
        return httpx.AsyncClient(base_url=self.base_url.rstrip("/"), headers=self._headers(), timeout=self.timeout,
                                 limits=limits, transport=transport)

    def close(self) -> None:
        if self._kept is not None:
            self._kept.close()
            self._kept = None

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def send_batch(self, measurements: list[dict[str, Any]]) -> int:
        """POST one batch; returns the accepted count, retrying what is worth retrying."""
        return self.send_encoded(encode_batch(measurements))

    def send_encoded(self, body: bytes) -> int:
        """`send_batch` of a body already encoded as a JSON array of measurements."""
        retry = _Retry(self.attempts, self.backoff)
        while True:
            try:
                response = self._http().post("/measurements/batch", content=body, headers=JSON_HEADERS)
            except httpx.TransportError as error:
                delay = retry.failed(f"{type(error).__name__}: {error}")
            else:
                accepted, delay = retry.answered(response)
                if accepted is not None:
                    return accepted
            self.sleep(delay)

    async def send_encoded_async(self, http: httpx.AsyncClient, body: bytes) -> int:
        """`send_encoded` on an async client (from `async_http`), so that many batches
        can be in flight from one process."""
        retry = _Retry(self.attempts, self.backoff)
        while True:
            try:
                response = await http.post("/measurements/batch", content=body, headers=JSON_HEADERS)
            except httpx.TransportError as error:
                delay = retry.failed(f"{type(error).__name__}: {error}")
            else:
                accepted, delay = retry.answered(response)
                if accepted is not None:
                    return accepted
            await self.async_sleep(delay)

    def get(self, path: str, **params: str) -> Any:
        response = self._http().get(path, params=params)
        if response.status_code != 200:
            raise RejectedBatch(response.status_code, _body(response))
        return response.json()

    def invoice_preview(self, customer: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/customers/{_quote(customer)}/invoice_preview")
        return result

    def invoices(self, customer: str) -> list[dict[str, Any]]:
        return list(self.get("/invoices", customer_name=customer)["invoices"])


class _Retry:
    """The retry rules of one batch: which answers end it, and how long to wait before the next try."""

    def __init__(self, attempts: int, backoff: float) -> None:
        self.attempts, self.attempt, self.delay = attempts, 0, backoff

    def failed(self, why: str) -> float:
        """The wait before the next attempt, or GaveUp after the last one."""
        self.attempt += 1
        if self.attempt >= self.attempts:
            raise GaveUp(f"gave up after {self.attempts} attempts: {why}")
        delay, self.delay = self.delay, min(self.delay * 2, 30.0)
        return delay

    def answered(self, response: httpx.Response) -> tuple[int | None, float]:
        """(accepted count, 0) for a 202; (None, wait) for a retryable answer; else RejectedBatch."""
        if response.status_code == 202:
            return int(response.json()["accepted"]), 0.0
        if response.status_code not in RETRYABLE_STATUS:
            raise RejectedBatch(response.status_code, _body(response))
        retry_after = response.headers.get("Retry-After", "")
        if retry_after.isdigit():
            self.delay = max(self.delay, float(retry_after))
        return None, self.failed(f"HTTP {response.status_code}")


def encode_batch(measurements: list[dict[str, Any]]) -> bytes:
    """A batch's request body: compact JSON, non-ASCII as UTF-8 (as httpx's json= writes it)."""
    return json.dumps(measurements, ensure_ascii=False, separators=(",", ":")).encode()


def join_encoded(items: list[bytes]) -> bytes:
    """A batch's request body from measurements each already encoded as a JSON object."""
    return b"[" + b",".join(items) + b"]"


def batches(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


def _quote(segment: str) -> str:
    from urllib.parse import quote

    return quote(segment, safe="")
