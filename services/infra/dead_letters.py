"""The dead-letter record format every service writes (README, topic `dead-letters`).

A dead letter keeps the original key and bytes, so it can be fixed and re-published as
it was; the headers say why it failed and where it came from. Reasons read
"<field>: <why>" like the aggregator's, so one grep or one dashboard serves them all.
"""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Message
from pydantic import ValidationError

from shared.errors import field_errors

# The type confluent-kafka's Producer.produce takes for headers.
Headers = list[tuple[str, str | bytes | None]]

# A reason is a header, not a payload: a huge validation report would only bloat the topic.
MAX_REASON_CHARS = 1000
# The broker takes records of about 1 MB. A hostile record near that limit, copied with
# our headers added, would be refused, and a dead letter that cannot be delivered stops
# its batch on every retry: a loop. Beyond this size the copy is cut (header
# `truncated_from` says so); the whole original stays on its topic at original_offset.
MAX_COPY_BYTES = 512 * 1024
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class Letter:
    """A dead-letter record, ready to produce."""

    key: bytes | None
    value: bytes | None
    headers: Headers


def letter(
    reason: str, topic: str, partition: int, offset: int,
    key: bytes | None, value: bytes | None, index: int | None = None,
) -> Letter:
    """The dead letter of a record (or of item `index` of an envelope, `value` its bytes)."""
    extra: Headers = []
    if index is not None:
        extra.append(("original_index", str(index).encode()))
    size = len(key or b"") + len(value or b"")
    if size > MAX_COPY_BYTES:
        extra.append(("truncated_from", str(size).encode()))
        key = None if key is None else key[:MAX_KEY_BYTES]
        value = None if value is None else value[: MAX_COPY_BYTES - len(key or b"")]
    return Letter(key, value, _headers(reason, topic, partition, offset) + extra)


def of_message(reason: str, message: Message) -> Letter:
    """The dead letter of a record a confluent-kafka consumer read."""
    topic, partition, offset = message.topic(), message.partition(), message.offset()
    if topic is None or partition is None or offset is None:  # only error events lack them
        raise ValueError(f"not a consumed record: topic {topic}, partition {partition}, offset {offset}")
    return letter(reason, topic, partition, offset, message.key(), message.value())


def _headers(reason: str, topic: str, partition: int, offset: int) -> Headers:
    return [
        ("reason", reason[:MAX_REASON_CHARS].encode()),
        ("original_topic", topic.encode()),
        ("original_partition", str(partition).encode()),
        ("original_offset", str(offset).encode()),
    ]


def unreadable(field: str, what: str, error: ValidationError | None) -> str:
    """`field: not a readable <what> (<what pydantic found wrong>)`; error None: empty record."""
    if error is None:
        return f"{field}: not a readable {what} (empty record)"
    details = "; ".join(f"{path}: {why}" for path, why in field_errors(error))
    return f"{field}: not a readable {what} ({details})"
