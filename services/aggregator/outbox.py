"""Records the aggregator produces, each awaited until the broker has it (acks=all).

Faust's `Topic.send` hands a record to the producer and returns a future that resolves
on delivery. Steps of the flush order wait for their futures, so a later step (above
all the offset commit) can never overtake an earlier one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from faust.types import RecordMetadata, TopicT


class Outbox:
    def __init__(self) -> None:
        self._pending: list[Awaitable[RecordMetadata]] = []

    async def send(
        self, topic: TopicT, key: bytes | None, value: bytes | None,
        headers: list[tuple[str, Any]] | None = None, partition: int | None = None,
    ) -> Awaitable[RecordMetadata]:
        future = await topic.send(key=key, value=value, headers=headers, partition=partition)
        self._pending.append(future)
        return future

    async def delivered(self) -> int:
        """Wait until every record sent so far is on the broker; raises if one failed."""
        pending, self._pending = self._pending, []
        await asyncio.gather(*pending)
        return len(pending)
