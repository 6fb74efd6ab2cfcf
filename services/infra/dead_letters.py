"""The dead-letter record format every service writes (README, topic `dead-letters`).

A dead letter keeps the original key and bytes, so it can be fixed and re-published as
it was; the headers say why it failed and where it came from. Reasons read
"<field>: <why>" like the aggregator's, so one grep or one dashboard serves them all.
"""

from __future__ import annotations

from pydantic import ValidationError

from shared.errors import field_errors

# The type confluent-kafka's Producer.produce takes for headers.
Headers = list[tuple[str, str | bytes | None]]

# A reason is a header, not a payload: a huge validation report would only bloat the topic.
MAX_REASON_CHARS = 1000


def headers(reason: str, topic: str, partition: int, offset: int) -> Headers:
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
