"""Composition root of the rater."""

from __future__ import annotations

import signal

from services.rater.service import Rater, serve_health
from services.settings import Settings


def run(settings: Settings, bootstrap: str) -> None:
    rater = Rater(settings, bootstrap)
    server = serve_health(rater, settings.http.host, settings.http.rater_port)

    def stop(*_: object) -> None:
        rater.stopping.set()
        if not rater.ready:
            # Still starting (waiting on the broker): nothing to finish, leave now.
            raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        rater.run()
    finally:
        server.shutdown()



