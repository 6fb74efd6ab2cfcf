"""Reading the store from a service that does not own it.

With a ClickHouse server every service may query it directly. With the embedded engine
only the aggregator may open it, so other services ask the aggregator's read API, which
runs the very same named queries (services/infra/queries.py).
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Protocol

import httpx
from clickhouse_connect.driver.client import Client

from services.infra.queries import QUERIES, QueryError
from services.settings import Settings


class StoreUnavailable(Exception):
    """The store (or the aggregator in front of it) cannot answer now."""


class StoreReader(Protocol):
    async def read(self, name: str, params: dict[str, str]) -> Any: ...


class ClickHouseReader:
    def __init__(self, client: Client) -> None:
        self._client = client
        self._lock = threading.Lock()

    async def read(self, name: str, params: dict[str, str]) -> Any:
        def run() -> Any:
            with self._lock:
                return QUERIES[name](self._client, params)

        try:
            return await asyncio.to_thread(run)
        except QueryError:
            raise
        except Exception as error:
            raise StoreUnavailable(str(error)) from error


class AggregatorReader:
    def __init__(self, base_url: str, api_key: str | None, timeout: float = 30.0) -> None:
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._timeout = timeout

    async def read(self, name: str, params: dict[str, str]) -> Any:
        try:
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                response = await client.get(f"{self._base}/store/{name}", params=params, headers=self._headers)
        except httpx.HTTPError as error:
            raise StoreUnavailable(f"aggregator read API: {error}") from error
        if response.status_code == 400:
            raise QueryError(response.json().get("reason", "invalid query"))
        if response.status_code != 200:
            raise StoreUnavailable(f"aggregator read API answered {response.status_code}")
        return response.json()


def reader_for(settings: Settings) -> StoreReader:
    if settings.clickhouse.url:
        from services.infra.clickhouse_store import connect

        return ClickHouseReader(connect(settings))
    base = settings.http.aggregator_url or f"http://127.0.0.1:{settings.http.aggregator_port}"
    key = settings.http.api_key.get_secret_value() if settings.http.api_key else None
    return AggregatorReader(base, key)
