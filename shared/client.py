"""A small typed client for the ingest HTTP API (used by `metering send` and tests).

Retries are safe because every measurement carries its idempotency key (`id`): a batch
resent after a timeout or a 503 is deduplicated by the pipeline, never double counted.
This is the one module of `shared` that does I/O; it depends on nothing but httpx.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator

import httpx

RETRYABLE_STATUS = {429, 502, 503, 504}


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

    def _http(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url.rstrip("/"), headers=self._headers(), timeout=self.timeout,
                            transport=self.transport)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def send_batch(self, measurements: list[dict[str, Any]]) -> int:
        """POST one batch; returns the accepted count, retrying what is worth retrying."""
        delay = self.backoff
        last = ""
        for attempt in range(1, self.attempts + 1):
            try:
                with self._http() as http:
                    response = http.post("/measurements/batch", json=measurements)
            except httpx.TransportError as error:
                last = f"{type(error).__name__}: {error}"
            else:
                if response.status_code == 202:
                    return int(response.json()["accepted"])
                if response.status_code not in RETRYABLE_STATUS:
                    raise RejectedBatch(response.status_code, _body(response))
                last = f"HTTP {response.status_code}"
                retry_after = response.headers.get("Retry-After", "")
                if retry_after.isdigit():
                    delay = max(delay, float(retry_after))
            if attempt < self.attempts:
                self.sleep(delay)
                delay = min(delay * 2, 30.0)
        raise GaveUp(f"gave up after {self.attempts} attempts: {last}")

    def get(self, path: str, **params: str) -> Any:
        with self._http() as http:
            response = http.get(path, params=params)
        if response.status_code != 200:
            raise RejectedBatch(response.status_code, _body(response))
        return response.json()

    def invoice_preview(self, customer: str) -> dict[str, Any]:
        result: dict[str, Any] = self.get(f"/customers/{_quote(customer)}/invoice_preview")
        return result

    def invoices(self, customer: str) -> list[dict[str, Any]]:
        return list(self.get("/invoices", customer_name=customer)["invoices"])


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
