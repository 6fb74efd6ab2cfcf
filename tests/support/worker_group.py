"""A WorkerGroup (services/ingest/process_group.py) of two workers serving a tiny app that
answers with its pid: the group's supervision, tested without Kafka.

    python -m tests.support.worker_group PORT METRICS_DIR STARTUP_SECONDS UNRESPONSIVE_SECONDS

SLOW_START (seconds, in the environment) is how long each worker takes before it can
answer its first ping. A spawned worker imports its parent's main module, this one, as
`__mp_main__` before anything else, as the real group's workers import services.cli: a
pause here is an interpreter that starts slowly on a loaded host.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any

if __name__ == "__mp_main__":
    time.sleep(float(os.environ.get("SLOW_START", "0")))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    body = str(os.getpid()).encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    import uvicorn

    from services.ingest.process_group import WorkerGroup

    port, metrics, startup, unresponsive = sys.argv[1:5]
    config = uvicorn.Config("tests.support.worker_group:app", host="127.0.0.1", port=int(port), workers=2,
                            lifespan="off", log_level="warning", access_log=False)
    sock = config.bind_socket()
    group = WorkerGroup(config, [sock], Path(metrics), startup=float(startup), unresponsive=float(unresponsive))
    group.run()
    raise SystemExit(3 if group.failed_to_start else 0)


if __name__ == "__main__":
    main()
