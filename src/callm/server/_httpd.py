"""The gateway's own HTTP/1.1 server: asyncio protocols on uvloop, in one process.

``callm serve`` ran on granian's RSGI interface until the benchmark showed where the time
of a passed-on request went: granian hands each request from its I/O thread to the Python
event loop and each reply back, and those hand-offs were most of the latency a request
gained through the gateway (a bare asyncio proxy answered at concurrency 1 in ~0.63 ms
where granian's took ~0.9 ms, the upstream alone ~0.48). Here the event loop reads and
writes the sockets itself: a request is parsed from the bytes as they arrive, its reply
goes out in one write (a stream as chunked transfer encoding, paced by the socket), and a
caller that disconnects cancels its request's task at once. granian still serves a
gateway with several worker processes (``--workers N``, a fleet).

What an HTTP/1.1 server owes its callers is kept: keep-alive (and ``Connection: close``,
HTTP/1.0), requests read one at a time per connection (pipelined ones wait their turn),
``Expect: 100-continue``, ``content-length`` and chunked request bodies, a 431 for a head
over 64 KiB, a body over the gateway's limit left unread (the model endpoint answers 413
in kind, and the connection closes), idle and slow-head timeouts (the ``idle_timeout`` and
``head_timeout`` settings, checked once a second; a head's time starts at its first byte),
and on SIGTERM/SIGINT a drain: no new connection or request is taken, in-flight ones
(streams too) finish within ``shutdown_grace`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from http import HTTPStatus
from typing import TYPE_CHECKING

from ._http import Incoming, Reply, StreamReply, after_reply, json_reply
from ._router import answer

if TYPE_CHECKING:
    from ._gateway import Gateway

logger = logging.getLogger("callm.server")
MAX_HEAD = 64 * 1024
SWEEP_EVERY_S = 1.0  # how often connections are checked against those
_REASONS = {s.value: s.phrase for s in HTTPStatus}
_LAST_CHUNK = b"0\r\n\r\n"


class _Server:
    """What every connection shares: the gateway, the open connections, the drain flag."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.max_body = gateway.settings.max_request_bytes
        self.head_timeout = gateway.settings.head_timeout  # a request's head must come in this
        self.idle_timeout = gateway.settings.idle_timeout  # a kept-alive caller may wait this
        self.connections: set[_Connection] = set()
        self.draining = False

    async def sweep(self) -> None:
        """Close the connections whose head or idle time ran out, once a second: one timer
        for all, rather than one armed and cancelled per request (~8 us of a short request
        when its caches were cold); a timeout of 30 or 75 s may well end a second late."""
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            now = time.monotonic()
            for conn in [c for c in self.connections if 0 < c.deadline <= now]:
                conn._close()


class _Connection(asyncio.Protocol):
    """One caller's connection: reads requests one at a time and answers each."""

    def __init__(self, server: _Server) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()  # (asking each time is a getpid() syscall)
        self.buffer = bytearray()
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        self.deadline = 0.0  # time.monotonic() by which the next head must come (0: none)
        self._writable: asyncio.Future[None] | None = None
        self._head: tuple[Incoming, bool, int] | None = None  # parsed, body still coming
        self._continued = False
        self._answered = False  # the reply is written: only its bookkeeping is left

    # --- asyncio's side -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.server.connections.add(self)
        self._arm(self.server.head_timeout)

    def data_received(self, data: bytes) -> None:
        if not self.buffer and self.task is None and self._head is None:
            # A new head begins: it has head_timeout from now, not what is left of the idle
            # time (a slow caller on a kept-alive connection would otherwise have the longer).
            self._arm(self.server.head_timeout)
        self.buffer += data
        if self.task is None:
            self._next()
        elif len(self.buffer) > MAX_HEAD + self.server.max_body:
            self.transport.pause_reading()  # type: ignore[union-attr]  # pipelined too far

    def eof_received(self) -> bool | None:
        return None  # the caller is done sending: treat it as gone

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.server.connections.discard(self)
        self._disarm()
        if self.task is not None and not self._answered:
            self.task.cancel()  # the caller went away: stop working for it
        self._wake()

    def pause_writing(self) -> None:
        if self._writable is None or self._writable.done():
            self._writable = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        self._wake()

    # --- reading requests ----------------------------------------------------------------

    def _next(self) -> None:
        """Start the next request in the buffer, if all of it has come."""
        if self.closed or (self.server.draining and not self._head):
            if not self.buffer and self.server.draining:
                self._close()
            return
        if self._head is None:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0 and len(self.buffer) <= MAX_HEAD:
                return
            if end < 0 or end > MAX_HEAD:
                self._refuse(431, "the request's head is too large")
                return
            try:
                self._head = self._parse_head(end)
            except ValueError:
                self._refuse(400, "the request is not valid HTTP/1.1")
                return
        incoming, keep_alive, length = self._head
        if length < 0:  # chunked
            body = self._chunked_body()
            if body is None:
                return
            incoming.body = body
            incoming.too_large = len(body) > self.server.max_body
            keep_alive = keep_alive and not incoming.too_large
        elif incoming.too_large:
            keep_alive = False  # the body stays unread: the connection cannot go on
        else:
            if len(self.buffer) < length:
                return
            incoming.body = bytes(self.buffer[:length])
            del self.buffer[:length]
        self._head = None
        self._disarm()
        self.task = self.loop.create_task(self._serve(incoming, keep_alive))

    def _parse_head(self, end: int) -> tuple[Incoming, bool, int]:
        lines = bytes(self.buffer[:end]).decode("latin-1").split("\r\n")
        del self.buffer[: end + 4]
        method, target, version = lines[0].split(" ")
        if not version.startswith("HTTP/1."):
            raise ValueError(version)
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, colon, value = line.partition(":")
            if not colon:
                raise ValueError(line)
            name, value = name.strip().lower(), value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        path, _, query = target.partition("?")
        incoming = Incoming(method, path, query, headers)
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection and (
            version == "HTTP/1.1" or "keep-alive" in connection
        )
        length = 0
        if "chunked" in headers.get("transfer-encoding", "").lower():
            length = -1
        elif "content-length" in headers:
            length = int(headers["content-length"])
            if length < 0:
                raise ValueError("content-length")
            incoming.too_large = length > self.server.max_body
        expects = headers.get("expect", "").lower() == "100-continue"
        if length and expects and not incoming.too_large:
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # type: ignore[union-attr]
        return incoming, keep_alive, length

    def _chunked_body(self) -> bytes | None:
        """The whole chunked body once it has all come (the buffer left as it was before)."""
        buffer, at = self.buffer, 0
        pieces: list[bytes] = []
        while True:
            end = buffer.find(b"\r\n", at)
            if end < 0:
                return None
            size = int(bytes(buffer[at:end]).split(b";", 1)[0].strip() or b"0", 16)
            if size == 0:
                trailer = buffer.find(b"\r\n\r\n", end)
                if trailer < 0 and buffer[end : end + 4] != b"\r\n\r\n":
                    return None
                stop = end + 4 if buffer[end : end + 4] == b"\r\n\r\n" else trailer + 4
                del buffer[:stop]
                return b"".join(pieces)
            if len(buffer) < end + 2 + size + 2:
                return None
            pieces.append(bytes(buffer[end + 2 : end + 2 + size]))
            at = end + 2 + size + 2
            if sum(len(p) for p in pieces) > self.server.max_body + 1:
                del buffer[:at]
                return b"".join(pieces)  # too large: answered 413, the rest never read

    # --- answering ---------------------------------------------------------------------

    async def _serve(self, incoming: Incoming, keep_alive: bool) -> None:
        try:
            reply = await answer(self.server.gateway, incoming)
            keep_alive = keep_alive and not self.server.draining
            if isinstance(reply, StreamReply):
                await self._send_stream(reply, keep_alive)
            else:
                self._send_whole(reply, keep_alive)
                if reply.after is not None:
                    self._answered = True  # the caller leaving now cuts no bookkeeping short
                    await after_reply(reply)
        except asyncio.CancelledError:
            self._close()
            return
        finally:
            self.task = None
            self._answered = False
        if not keep_alive or self.closed:
            self._close()
            return
        self.transport.resume_reading()  # type: ignore[union-attr]
        self._arm(self.server.idle_timeout if not self.buffer else self.server.head_timeout)
        if self.buffer or self.server.draining:
            self._next()

    def _head_bytes(self, status: int, headers: list[tuple[str, str]], keep_alive: bool) -> str:
        lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"]
        lines += [f"{name}: {value}\r\n" for name, value in headers]
        if not keep_alive:
            lines.append("connection: close\r\n")
        return "".join(lines)

    def _send_whole(self, reply: Reply, keep_alive: bool) -> None:
        head = self._head_bytes(
            reply.status,
            [("content-type", reply.content_type), *reply.headers],
            keep_alive,
        )
        head += f"content-length: {len(reply.body)}\r\n\r\n"
        self.transport.write(head.encode("latin-1") + reply.body)  # type: ignore[union-attr]

    async def _send_stream(self, reply: StreamReply, keep_alive: bool) -> None:
        head = self._head_bytes(
            reply.status, [*reply.headers, ("transfer-encoding", "chunked")], keep_alive
        )
        transport = self.transport
        assert transport is not None
        transport.write((head + "\r\n").encode("latin-1"))
        chunks = reply.chunks
        try:
            async for chunk in chunks:
                if self.closed:
                    break
                if chunk:
                    transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk))
                    if self._writable is not None and not self._writable.done():
                        await self._writable  # the caller reads slowly: wait for it
        finally:
            await chunks.aclose()  # type: ignore[attr-defined]
        if not self.closed:
            transport.write(_LAST_CHUNK)

    def _refuse(self, status: int, message: str) -> None:
        reply = json_reply(status, {"error": {"message": message, "type": "invalid_request_error"}})
        self._send_whole(reply, keep_alive=False)
        self._close()

    # --- timers and closing ------------------------------------------------------------

    def _arm(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds  # _Server.sweep closes it then

    def _disarm(self) -> None:
        self.deadline = 0.0

    def _wake(self) -> None:
        if self._writable is not None and not self._writable.done():
            self._writable.set_result(None)

    def _close(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.close()


async def serve_forever(gateway: Gateway, host: str, port: int) -> None:
    """Serve until SIGTERM or SIGINT, then drain (see the module's docstring)."""
    from ._rsgi import quiet_collector

    loop = asyncio.get_running_loop()
    await gateway.start()
    quiet_collector()
    state = _Server(gateway)
    server = await loop.create_server(
        lambda: _Connection(state), host, port, backlog=2048, reuse_address=True
    )
    sweeper = loop.create_task(state.sweep())
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):  # Windows: Ctrl-C ends the loop
            loop.add_signal_handler(sig, stop.set)
    logger.info("callm serve: listening on http://%s:%d", host, port)
    try:
        await stop.wait()
    finally:
        sweeper.cancel()
        await _drain(state, server, gateway.settings.shutdown_grace)
        await gateway.close()


async def _drain(state: _Server, server: asyncio.Server, grace: float) -> None:
    state.draining = state.gateway.draining = True
    server.close()
    for conn in list(state.connections):
        if conn.task is None:
            conn._close()  # idle: nothing to finish
    deadline = time.monotonic() + grace
    while any(c.task is not None for c in state.connections) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    for conn in list(state.connections):
        if conn.transport is not None:
            conn.transport.abort()


def run(gateway: Gateway, host: str, port: int) -> None:
    """Run the server in this process on uvloop (asyncio's own loop without it)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(serve_forever(gateway, host, port))
        return
    uvloop.run(serve_forever(gateway, host, port))
