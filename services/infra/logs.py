"""Structured logs: one JSON object per line, with ids as fields where one applies.

Pass ids through `extra=` (for example `log.info("published", extra={"invoice_id": i})`);
they become top-level keys, so a log pipeline can index them. Secrets are never logged:
settings hold the API key as a SecretStr.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime

# Fields a record may carry through `extra=`, copied to the JSON object when present.
CONTEXT_FIELDS = ("measurement_id", "invoice_id", "customer_name", "topic", "partition", "offset", "reason")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in CONTEXT_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure(level: int = logging.INFO) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "faust", "mode", "httpx", "uvicorn.access", "clickhouse_connect"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("faust.transport.producer").addFilter(_not_flow_control)


def _not_flow_control(record: logging.LogRecord) -> bool:
    # Faust warns each time its producer buffer makes a stream wait (flow control,
    # many times a second under load): normal operation, not something to act on.
    # The consumer lag metric and its alert are what show a worker falling behind.
    return not str(record.msg).startswith("producer buffer full size")
