"""A TCP forwarder a test controls, between a client and a server, to stage an outage.

    with Forwarder("127.0.0.1", sandbox_port) as fwd:   # listens on a free loopback port
        client talks to fwd.url ...                     # bytes piped both ways, unchanged
        fwd.down()                                      # the outage starts
        fwd.up()                                        # over: the same port forwards again
        fwd.down(seconds=2)                             # an outage that ends by itself

It runs its own event loop in a background thread, so sync test code (whose client may be a
subprocess) drives it with plain calls; each call returns once the change is in effect.

Two kinds of outage:
- `down()` (default): the forwarder keeps listening, and every connection it accepts is reset
  at once (RST, linger 0), as are the ones open when the outage began. A client sees
  "connection reset" rather than "connection refused", but every attempt is counted with its
  time: this is the mode to measure "connection attempts per second during the outage"
  (`attempt_times(during_outage=True)`).
- `down(refuse=True)`: the listening socket is closed, so the kernel refuses new connections
  (ECONNREFUSED), and the open ones are reset. Refused attempts never reach user space and
  are not counted; `up()` listens again on the same port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from typing import Any

__all__ = ["Forwarder"]

CHUNK = 64 * 1024


class Forwarder:
    """Pipes TCP connections from a loopback port to (target_host, target_port).

    State, owned by the loop thread: whether an outage is on and of which kind, the listening
    server (None while refusing), the open piped connections, and one (time, during_outage)
    record per accepted connection.
    """

    def __init__(self, target_host: str, target_port: int, *, host: str = "127.0.0.1",
                 scheme: str = "http") -> None:
        self.target = (target_host, target_port)
        self.host = host
        self.scheme = scheme
        self.port = 0
        self._down = False
        self._server: asyncio.Server | None = None
        self._open: set[tuple[asyncio.StreamWriter, asyncio.StreamWriter | None]] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._attempts: list[tuple[float, bool]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="forwarder",
                                        daemon=True)

    # -- the test's side -----------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def connection_attempts(self) -> int:
        """Connections accepted, forwarded or reset (refused ones are not seen)."""
        return len(self._attempts)

    @property
    def reset_attempts(self) -> int:
        """Connections accepted during an outage and reset at once."""
        return sum(1 for _, during in self._attempts if during)

    def attempt_times(self, during_outage: bool | None = None) -> list[float]:
        """Monotonic times of the accepted connections (only those during, or outside, an
        outage if asked)."""
        return [t for t, during in list(self._attempts)
                if during_outage is None or during is during_outage]

    @property
    def is_down(self) -> bool:
        return self._down

    def start(self) -> Forwarder:
        self._thread.start()
        self._run(self._listen())
        return self

    def close(self) -> None:
        if not self._thread.is_alive():
            return
        self._run(self._shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def down(self, seconds: float | None = None, *, refuse: bool = False) -> None:
        """Start an outage (see the module docstring); with `seconds`, it ends by itself."""
        self._run(self._go_down(refuse, seconds))

    def up(self) -> None:
        """End the outage: new connections are forwarded again, on the same port."""
        self._run(self._go_up())

    def __enter__(self) -> Forwarder:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    # -- the loop thread's side ----------------------------------------------------------------
    async def _listen(self) -> None:
        self._server = await asyncio.start_server(self._accept, self.host, self.port,
                                                  reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _go_down(self, refuse: bool, seconds: float | None) -> None:
        self._cancel_timer()
        self._down = True
        for client, upstream in list(self._open):
            _reset(client)
            if upstream is not None:
                upstream.transport.abort()
        self._open.clear()
        if refuse and self._server is not None:
            self._server.close()
            self._server = None
        if seconds is not None:
            self._timer = asyncio.get_running_loop().call_later(
                seconds, lambda: asyncio.ensure_future(self._go_up()))

    async def _go_up(self) -> None:
        self._cancel_timer()
        if self._server is None:
            await self._listen()
        self._down = False

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def _shutdown(self) -> None:
        """Stop listening and finish every connection's task before the loop stops (a task
        left pending would be torn down later by the garbage collector, at a random point)."""
        self._cancel_timer()
        if self._server is not None:
            self._server.close()
            self._server = None
        for client, upstream in list(self._open):
            client.transport.abort()
            if upstream is not None:
                upstream.transport.abort()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            await self._forward(reader, writer)
        except asyncio.CancelledError:
            pass  # only _shutdown cancels; ending quietly keeps asyncio from logging it
        finally:
            self._handlers.discard(task)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._attempts.append((time.monotonic(), self._down))
        if self._down:
            _reset(writer)
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            _reset(writer)  # the target itself is down: the client sees that
            return
        pair = (writer, up_writer)
        self._open.add(pair)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._open.discard(pair)
            writer.transport.abort()
            up_writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy until EOF (then half-close, as the peer did) or until either side breaks."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, RuntimeError):
        writer.transport.abort()


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a RST, not a FIN: the client reads 'connection reset by peer'."""
    sock = writer.transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
