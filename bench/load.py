"""HTTP load: client processes posting batches of measurements to the ingest API.

Each client is its own process (so the GIL of one does not cap the offered load), runs
`concurrency` keep-alive connections with httpx, and builds every body before the
clock starts: a request only swaps a request number into a prepared JSON template
(every measurement id stays unique), so the client spends its CPU on HTTP alone.
Each client reports its CPU seconds, so the report can state what the clients cost.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.procs import self_cpu_seconds

MARK = "#REQ#"


@dataclass(frozen=True)
class ClientPlan:
    client: int
    url: str
    api_key: str
    customers: list[str]
    batch: int
    concurrency: int
    event_time: str
    run: str  # unique per phase, so ids never repeat across phases
    start_at: float  # time.time() at which every client starts
    duration: float | None = None  # run until then ...
    requests: int | None = None  # ... or send exactly this many


@dataclass
class ClientResult:
    client: int
    accepted_requests: int = 0
    accepted_events: int = 0
    failed: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0
    cpu_seconds: float = 0.0
    per_customer: dict[str, int] = field(default_factory=dict)  # events per accepted request


def template(plan: ClientPlan) -> tuple[str, dict[str, int]]:
    events: list[dict[str, Any]] = []
    counts: Counter[str] = Counter()
    for i in range(plan.batch):
        customer = plan.customers[(plan.client * plan.batch + i) % len(plan.customers)]
        counts[customer] += 1
        events.append({
            "id": f"{plan.run}-{plan.client}-{MARK}-{i}", "meter_name": "api_calls",
            "customer_name": customer, "value": 1, "time": plan.event_time,
        })
    return json.dumps(events, separators=(",", ":")), dict(counts)


async def _run(plan: ClientPlan) -> ClientResult:
    text, counts = template(plan)
    result = ClientResult(plan.client, per_customer=counts)
    total = plan.requests
    # Bodies for the first requests are made before the clock starts; later ones on the fly.
    prepared = [text.replace(MARK, str(n)).encode() for n in range(min(total or 400, 400))]
    next_request = 0
    headers = {"Authorization": f"Bearer {plan.api_key}", "Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=plan.concurrency, max_keepalive_connections=plan.concurrency)
    async with httpx.AsyncClient(base_url=plan.url, headers=headers, limits=limits, timeout=120.0) as client:
        await client.get("/healthz")
        delay = plan.start_at - time.time()
        if delay > 0:
            await asyncio.sleep(delay)
        deadline = time.monotonic() + plan.duration if plan.duration is not None else None
        cpu = self_cpu_seconds()
        result.started = time.time()

        async def worker() -> None:
            nonlocal next_request
            while True:
                if total is not None and next_request >= total:
                    return
                if deadline is not None and time.monotonic() >= deadline:
                    return
                n = next_request
                next_request += 1
                body = prepared[n] if n < len(prepared) else text.replace(MARK, str(n)).encode()
                began = time.perf_counter()
                response = await client.post("/measurements/batch", content=body)
                result.latencies.append(time.perf_counter() - began)
                if response.status_code == 202:
                    result.accepted_requests += 1
                    result.accepted_events += plan.batch
                else:
                    result.failed[response.status_code] += 1

        await asyncio.gather(*(worker() for _ in range(plan.concurrency)))
        result.ended = time.time()
        result.cpu_seconds = self_cpu_seconds() - cpu
    return result


def run_client(plan: ClientPlan) -> ClientResult:
    return asyncio.run(_run(plan))


def run_clients(plans: list[ClientPlan]) -> list[ClientResult]:
    """Run every plan in its own process (spawned: the parent holds Kafka threads)."""
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(plans)) as pool:
        return pool.map(run_client, plans)


def percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(share * (len(ordered) - 1))))
    return ordered[index]
