"""uvicorn's server, with a shutdown that also drains the connections it made late.

On SIGTERM uvicorn closes its listening socket, then asks each open connection to close
once its current response is sent, and waits until none is left. It asks the connections
it knows of at that moment; one the event loop accepted just before the listener closed
is only made (`connection_made`) an iteration or two later, and nobody asks it. A client
that keeps such a connection alive with request after request is then served for as long
as it likes, and the process never exits: with two ingest processes on one port under
load, SIGTERM reaches both, the first closes its idle keep-alive connections, their
clients reconnect at once, and the second often accepts some of them in that window
(plain uvicorn, two workers, eight keep-alive clients on a loaded machine: 5 stops of 30
hung; the group's e2e stop test hung the same way until the stack SIGKILLed it).

Here every connection made after the shutdown began is asked too, as soon as it exists.
"""

from __future__ import annotations

import asyncio
import socket
from typing import TYPE_CHECKING

import uvicorn

if TYPE_CHECKING:
    from uvicorn.server import Protocols

LATECOMER_CHECK_SECONDS = 0.02


class DrainingServer(uvicorn.Server):
    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # uvicorn's shutdown asks these, before its first await: nothing is made in between.
        asked = set(self.server_state.connections)
        latecomers = asyncio.create_task(self._ask_latecomers(asked))
        try:
            await super().shutdown(sockets)
        finally:
            latecomers.cancel()

    async def _ask_latecomers(self, asked: set[Protocols]) -> None:
        while True:
            for connection in self.server_state.connections - asked:
                connection.shutdown()  # closes it if idle, else after its current response
                asked.add(connection)
            await asyncio.sleep(LATECOMER_CHECK_SECONDS)
