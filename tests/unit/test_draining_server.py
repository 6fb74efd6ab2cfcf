"""DrainingServer (services/ingest/draining_server.py): a connection made after the server's
shutdown began is asked to close too, so a client that keeps it busy cannot keep the
process from exiting. Plain uvicorn is held to the hang it fixes, so that an upgrade which
fixes it upstream shows up here."""

from __future__ import annotations

import asyncio
import socket
import time
from dataclasses import dataclass
from typing import Any

import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from services.ingest.draining_server import DrainingServer

IN_FLIGHT = 1.0  # seconds the request in flight at the shutdown takes: uvicorn waits for it
STUCK_AFTER = 3.0  # seconds a server may take to finish once its shutdown began


class LateProtocol(H11Protocol):
    """Once `late` is set, made only after the server's shutdown has begun (and asked the
    connections it knew of), as a connection accepted just before the listener closes is."""

    late = False
    accepted: asyncio.Event
    shutdown_began: asyncio.Event

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        if not LateProtocol.late:
            super().connection_made(transport)
            return
        transport.pause_reading()  # the request waits in the socket until it is made
        LateProtocol.accepted.set()
        self._making = asyncio.create_task(self._made(transport))

    async def _made(self, transport: asyncio.Transport) -> None:
        # Runs once the shutdown's first step (up to its first await) is over.
        await LateProtocol.shutdown_began.wait()
        super().connection_made(transport)
        transport.resume_reading()


class App:
    """Answers 200 at once, or after IN_FLIGHT seconds on /slow."""

    def __init__(self) -> None:
        self.slow_started = asyncio.Event()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        if scope["path"] == "/slow":
            self.slow_started.set()
            await asyncio.sleep(IN_FLIGHT)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes] | None:
    """Status and head of one response (its 2-byte body read), None once the server closed."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(2)
    except (asyncio.IncompleteReadError, ConnectionError):
        return None
    return int(head.split(b" ", 2)[1]), head.lower()


@dataclass
class Outcome:
    finished: bool  # the server ended while the late client still wanted to send
    closed_by_server: bool  # ... and closed that client's connection
    statuses: list[int]  # of the responses the late client got
    seconds: float  # from the shutdown's start until the late client was done
    in_flight: int | None  # status of the request in flight when the shutdown began
    in_flight_closed: bool  # its connection closed after it


async def _stop_while_a_late_client_keeps_sending(server_class: type[uvicorn.Server]) -> Outcome:
    """Start the server; with one request in flight, connect again, and begin the shutdown
    before that connection is made; then post request after request on it (as the ingest
    senders do) for up to STUCK_AFTER seconds."""
    LateProtocol.late, LateProtocol.accepted, LateProtocol.shutdown_began = False, asyncio.Event(), asyncio.Event()
    app = App()
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = server_class(uvicorn.Config(app, http=LateProtocol, lifespan="off", log_level="warning"))
    shutdown = server.shutdown

    async def observed_shutdown(sockets: list[socket.socket] | None = None) -> None:
        LateProtocol.shutdown_began.set()
        await shutdown(sockets)

    server.shutdown = observed_shutdown  # type: ignore[method-assign]
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    # The listener listens already: a connection waits in its backlog until the server takes it.
    slow_reader, slow_writer = await asyncio.open_connection("127.0.0.1", port)
    slow_writer.write(b"GET /slow HTTP/1.1\r\nhost: test\r\n\r\n")
    await app.slow_started.wait()
    LateProtocol.late = True
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await LateProtocol.accepted.wait()
    server.should_exit = True  # what SIGTERM does
    began = time.monotonic()
    statuses: list[int] = []
    closed_by_server = False
    while time.monotonic() - began < STUCK_AFTER:
        writer.write(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
        response = await _response(reader)
        if response is None:
            closed_by_server = True
            break
        statuses.append(response[0])
    seconds = time.monotonic() - began
    # Whether the server ended while its client was still there to keep it busy:
    finished = await _finishes(serving, within=2.0) if closed_by_server else serving.done()
    writer.close()
    if not finished:
        server.force_exit = True  # what a second Ctrl-C does: let the plain server end
        await serving
    in_flight = await _response(slow_reader)
    in_flight_closed = await slow_reader.read() == b""
    slow_writer.close()
    return Outcome(finished, closed_by_server, statuses, seconds,
                   None if in_flight is None else in_flight[0], in_flight_closed)


async def _finishes(task: asyncio.Task[None], within: float) -> bool:
    try:
        async with asyncio.timeout(within):
            await asyncio.shield(task)
    except TimeoutError:
        return False
    return True


def test_a_connection_made_after_the_shutdown_began_is_closed_and_the_server_exits() -> None:
    outcome = asyncio.run(_stop_while_a_late_client_keeps_sending(DrainingServer))
    assert outcome.closed_by_server and outcome.finished, outcome
    assert set(outcome.statuses) <= {200}
    # Closed well before the request in flight at the shutdown was answered: the late
    # client held nothing up ...
    assert outcome.seconds < IN_FLIGHT, outcome
    # ... and that request was answered, then its connection closed.
    assert outcome.in_flight == 200 and outcome.in_flight_closed


def test_plain_uvicorn_serves_such_a_connection_for_as_long_as_the_client_keeps_it_busy() -> None:
    """The hang DrainingServer exists for. If this fails after a uvicorn upgrade, upstream
    drains late connections itself and DrainingServer can go."""
    outcome = asyncio.run(_stop_while_a_late_client_keeps_sending(uvicorn.Server))
    assert not outcome.closed_by_server and not outcome.finished, outcome
    assert outcome.seconds >= STUCK_AFTER
    assert len(outcome.statuses) > 10 and set(outcome.statuses) == {200}
    assert outcome.in_flight == 200 and outcome.in_flight_closed
