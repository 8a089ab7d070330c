"""The gateway's upstream HTTP/1.1 client: keep-alive connections, one write per request.

The gateway spends most of its time passing requests on, and a general HTTP client's
machinery (aiohttp's session, request and response objects, its timers and payload
writers) was the largest cost per request in the profile. This client does only what a
gateway needs of HTTP/1.1, on asyncio protocols: a request goes out as one pre-built
``write`` (the endpoint's headers are encoded once per header mapping), a response is
parsed from the bytes as they arrive (``content-length``, ``chunked`` or to the close),
and a connection goes back to its pool once its response is read to the end. An error
answer is read only up to the library's ``ERROR_BODY_LIMIT`` (1 MiB); no compression is
asked for, so none is undone.

Timeouts are the library's :class:`Timeout`: ``connect`` bounds opening a connection,
``read`` any silence of the server, ``total`` the whole exchange (all the exchanges in
flight are checked by one timer, every 50 ms). A connection taken from the pool that the
server closed before answering a byte (its keep-alive timer won the race) is replaced
once; every other failure is the caller's :class:`~callm.APIConnectionError` or
:class:`~callm.APITimeoutError`, as from the library's own transports. A caller that stops
reading (cancelled, or closing a stream early) closes the connection; it is never reused
half-read.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from .._core.errors import APIConnectionError, APITimeoutError
from .._core.http import HttpRequest, HttpResponse, redact_url
from .._core.timeouts import Timeout
from .._transport._limits import ERROR_BODY_LIMIT

_KEEPALIVE_S = 15.0  # an idle connection older than this is closed, not reused
_MAX_IDLE = 256  # idle connections kept per origin
_WATCH_EVERY_S = 0.05  # how often the timeouts of the exchanges in flight are checked
_HEAD, _LENGTH, _CHUNK_SIZE, _CHUNK_DATA, _CHUNK_END, _TRAILER, _TO_CLOSE, _DONE = range(8)


class _Stale(Exception):
    """A reused connection closed before any byte of the answer: safe to send again."""


class _Target:
    """A URL, split once: the pool it belongs to and the request line's path."""

    __slots__ = ("host", "host_header", "key", "path", "port", "tls")

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise APIConnectionError(f"cannot call {redact_url(url)}: not an http(s) URL")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.host_header = parts.netloc.rpartition("@")[2]
        self.key = (self.tls, self.host, self.port)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


class _Connection(asyncio.Protocol):
    """One connection and the response being read on it."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.loop = asyncio.get_running_loop()  # (asking each time is a getpid() syscall)
        self.closed = False
        self.reused = False
        self.idle_since = 0.0
        self.key: tuple[bool, str, int] | None = None  # the pool it returns to
        self._buffer = bytearray()
        self._state = _DONE
        self._left = 0  # body bytes still due (content-length, or the current chunk)
        self._whole = True  # a whole response is awaited, not a stream
        self._waiter: asyncio.Future[Any] | None = None
        self._pieces: collections.deque[bytes] = collections.deque()
        self._error: BaseException | None = None
        self._got_bytes = False
        self._error_bytes = 0  # body bytes of an error answer read so far
        self.keep_alive = True
        self.status = 0
        self.headers: dict[str, str] = {}
        self._deadline = 0.0
        self._read_s: float | None = None
        self._last_data = 0.0

    # --- asyncio's side -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        self._last_data = time.monotonic()
        self._buffer += data
        try:
            self._parse()
        except ValueError as exc:
            self._fail(APIConnectionError(f"the server's HTTP answer is malformed: {exc}"))
            self.abort()

    def eof_received(self) -> bool | None:
        return None  # close the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._state == _TO_CLOSE:
            self._finish()
            return
        if self._state != _DONE:
            if not self._got_bytes and self.reused:
                self._fail(_Stale())
            else:
                self._fail(exc or ConnectionResetError("the server closed the connection"))

    # --- one exchange --------------------------------------------------------------------

    def start(
        self, payload: bytes, timeout: Timeout, watchdog: _Watchdog, *, whole: bool
    ) -> asyncio.Future[Any]:
        """Send a request; the future resolves with the whole response, or its head."""
        assert self.transport is not None
        self._state, self._whole, self._error = _HEAD, whole, None
        self._got_bytes, self.keep_alive, self.headers = False, True, {}
        self._error_bytes = 0
        self._pieces.clear()
        self._waiter = self.loop.create_future()
        now = time.monotonic()
        self._last_data = now
        self._read_s = timeout.read
        self._deadline = now + (timeout.total if timeout.total is not None else float("inf"))
        if self._read_s is not None or timeout.total is not None:
            watchdog.watch(self)
        self.transport.write(payload)
        return self._waiter

    def check(self, now: float) -> bool:
        """Fail the exchange if a timeout has passed; False once it needs no more watching."""
        if self._state == _DONE:
            return False
        due = self._deadline
        if self._read_s is not None:
            due = min(due, self._last_data + self._read_s)
        if now < due:
            return True
        self._fail(TimeoutError())
        self.abort()
        return False

    async def next_piece(self) -> bytes:
        """The next piece of a streamed body; b"" at its end."""
        while True:
            if self._pieces:
                return self._pieces.popleft()
            if self._error is not None:
                raise self._error
            if self._state == _DONE:
                return b""
            self._waiter = self.loop.create_future()
            await self._waiter

    def abort(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()

    @property
    def finished(self) -> bool:
        """Read to the end, and nothing more came: the connection may serve again."""
        return self._state == _DONE and self._error is None and not self._buffer

    # --- parsing -------------------------------------------------------------------------

    def _parse(self) -> None:
        while True:
            state = self._state
            if state == _HEAD:
                if not self._head():
                    return
            elif state in {_LENGTH, _TO_CLOSE}:
                self._take(len(self._buffer) if state == _TO_CLOSE else self._left)
                if self._state != _DONE or not self._buffer:
                    return
            elif state == _CHUNK_SIZE:
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    return
                size = int(bytes(self._buffer[:end]).split(b";", 1)[0].strip(), 16)
                del self._buffer[: end + 2]
                self._left = size
                self._state = _CHUNK_DATA if size else _TRAILER
            elif state == _CHUNK_DATA:
                self._take(self._left, then=_CHUNK_END)
                if self._state == _CHUNK_DATA:
                    return
            elif state == _CHUNK_END:
                if len(self._buffer) < 2:
                    return
                del self._buffer[:2]
                self._state = _CHUNK_SIZE
            elif state == _TRAILER:
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    return
                del self._buffer[: end + 2]
                if end == 0:
                    self._finish()
            else:
                return  # _DONE: bytes after the response are not ours to read

    def _head(self) -> bool:
        end = self._buffer.find(b"\r\n\r\n")
        if end < 0:
            return False
        lines = bytes(self._buffer[:end]).decode("latin-1").split("\r\n")
        del self._buffer[: end + 4]
        version, _, rest = lines[0].partition(" ")
        status = int(rest[:3])
        if 100 <= status < 200:
            return True  # an interim answer (100 Continue): the real one follows
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self.status, self.headers = status, headers
        connection = headers.get("connection", "").lower()
        self.keep_alive = "close" not in connection and (
            version == "HTTP/1.1" or "keep-alive" in connection
        )
        if "chunked" in headers.get("transfer-encoding", "").lower():
            self._state = _CHUNK_SIZE
        elif status in (204, 304):
            self._state, self._left = _LENGTH, 0
        elif "content-length" in headers:
            self._state, self._left = _LENGTH, int(headers["content-length"])
        else:
            self._state, self.keep_alive = _TO_CLOSE, False
        if not self._whole:
            self._resolve((status, headers))
        if self._state == _LENGTH and self._left == 0:
            self._finish()
        return True

    def _take(self, wanted: int, then: int = _DONE) -> None:
        """Up to ``wanted`` body bytes from the buffer; the state ``then`` once all came."""
        buffer = self._buffer
        if len(buffer) <= wanted:
            piece = bytes(buffer)
            buffer.clear()
        else:
            piece = bytes(buffer[:wanted])
            del buffer[:wanted]
        if piece:
            self._pieces.append(piece)
            if self.status >= 400 and self._whole:
                self._error_bytes += len(piece)
                if self._error_bytes > ERROR_BODY_LIMIT:  # enough to say what went wrong
                    self.keep_alive = False
                    self._finish()
                    self.abort()
                    return
        if self._state == _TO_CLOSE:
            self._wake()
            return
        self._left -= len(piece)
        if self._left == 0:
            if then == _DONE:
                self._finish()
                return
            self._state = then
        self._wake()

    def _finish(self) -> None:
        self._state = _DONE
        if self._whole:
            body = b"".join(self._pieces)
            if self.status >= 400:
                body = body[:ERROR_BODY_LIMIT]
            self._pieces.clear()
            self._resolve((self.status, self.headers, body))
        else:
            self._wake()

    def _wake(self) -> None:
        if not self._whole:
            self._resolve(None)

    def _resolve(self, value: Any) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(value)

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        self._state = _DONE
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class _Watchdog:
    """The timeouts of every exchange in flight, checked on one timer every
    ``_WATCH_EVERY_S`` while any is in flight (a timeout fires up to that much late), rather
    than on a timer armed and cancelled per request: each of those cost ~8 us of a short
    request when its caches were cold."""

    def __init__(self) -> None:
        self._watched: set[_Connection] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def watch(self, conn: _Connection) -> None:
        self._watched.add(conn)
        loop = conn.loop
        if self._timer is None or self._loop is not loop:  # (a transport outlives a loop)
            self._loop = loop
            self._timer = loop.call_later(_WATCH_EVERY_S, self._tick)

    def _tick(self) -> None:
        self._timer = None
        now = time.monotonic()
        done = [conn for conn in self._watched if not conn.check(now)]
        self._watched.difference_update(done)
        if self._watched and self._loop is not None:
            self._timer = self._loop.call_later(_WATCH_EVERY_S, self._tick)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._watched.clear()


def _translate(exc: BaseException, url: str) -> APIConnectionError:
    if isinstance(exc, APIConnectionError):
        return exc
    if isinstance(exc, TimeoutError):
        return APITimeoutError(f"timed out talking to {redact_url(url)}")
    return APIConnectionError(
        f"could not reach {redact_url(url)}: {type(exc).__name__}: {exc} — check the base URL "
        "and your network"
    )


_ERRORS = (OSError, TimeoutError, _Stale, APIConnectionError, ssl.SSLError)


class _StreamBody:
    """An open streamed response; its connection goes back to the pool once read through."""

    __slots__ = ("_conn", "_owner", "_url", "headers", "status")

    def __init__(self, owner: UpstreamTransport, conn: _Connection, url: str) -> None:
        self._owner, self._conn, self._url = owner, conn, url
        self.status = conn.status
        self.headers: Mapping[str, str] = conn.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        conn = self._conn
        try:
            while True:
                piece = await conn.next_piece()
                if not piece:
                    break
                yield piece
        except _ERRORS as exc:
            conn.abort()
            raise _translate(exc, self._url) from None
        self._owner.release(conn)

    async def read(self) -> bytes:
        return b"".join([piece async for piece in self.chunks()])

    async def close(self) -> None:
        if not self._conn.finished:
            self._conn.abort()


class UpstreamTransport:
    """The gateway's async transport (the library's ``AsyncTransport`` interface)."""

    def __init__(self) -> None:
        self._idle: dict[tuple[bool, str, int], list[_Connection]] = {}
        self._targets: dict[str, _Target] = {}
        self._heads: dict[int, tuple[Mapping[str, str], bytes]] = {}
        self._ssl: ssl.SSLContext | None = None
        self._watchdog = _Watchdog()

    async def send(self, request: HttpRequest, timeout: Timeout) -> HttpResponse:
        status, headers, body = await self._exchange(request, timeout, whole=True)
        return HttpResponse(status, headers, body)

    async def open_stream(self, request: HttpRequest, timeout: Timeout) -> _StreamBody:
        conn = await self._exchange(request, timeout, whole=False)
        return _StreamBody(self, conn, request.url)

    async def close(self) -> None:
        self._watchdog.close()
        idle, self._idle = self._idle, {}
        for conns in idle.values():
            for conn in conns:
                conn.abort()

    # --- the exchange --------------------------------------------------------------------

    async def _exchange(self, request: HttpRequest, timeout: Timeout, *, whole: bool) -> Any:
        on_wait = request.extensions.get("on_wait")
        if on_wait is not None:
            on_wait()
        target = self._target(request.url)
        payload = self._payload(request, target)
        fresh = False
        while True:
            conn: _Connection | None = None
            try:
                conn = await self._acquire(target, timeout, fresh)
                result = await conn.start(payload, timeout, self._watchdog, whole=whole)
            except _Stale:
                fresh = True  # the pool's connection had gone: once more on a new one
                continue
            except _ERRORS as exc:
                if conn is not None:
                    conn.abort()
                raise _translate(exc, request.url) from None
            except BaseException:  # cancelled: the connection is half-used, never reused
                if conn is not None:
                    conn.abort()
                raise
            if whole:
                self.release(conn)
                return result
            return conn

    async def _acquire(self, target: _Target, timeout: Timeout, fresh: bool) -> _Connection:
        idle = self._idle.get(target.key)
        now = time.monotonic()
        while idle and not fresh:
            conn = idle.pop()
            if not conn.closed and now - conn.idle_since < _KEEPALIVE_S:
                conn.reused = True
                return conn
            conn.abort()
        loop = asyncio.get_running_loop()
        context = self._tls() if target.tls else None
        connecting = loop.create_connection(
            _Connection,
            target.host,
            target.port,
            ssl=context,
            server_hostname=target.host if context else None,
        )
        _, conn = await asyncio.wait_for(connecting, timeout.connect)
        conn.key = target.key
        return conn

    def release(self, conn: _Connection) -> None:
        """Back to the pool, when the server keeps it open and it was read to the end."""
        if conn.closed or not conn.keep_alive or not conn.finished:
            conn.abort()
            return
        conn.idle_since = time.monotonic()
        idle = self._idle.setdefault(conn.key, [])  # type: ignore[arg-type]
        if len(idle) >= _MAX_IDLE:
            conn.abort()
            return
        idle.append(conn)

    def _target(self, url: str) -> _Target:
        target = self._targets.get(url)
        if target is None:
            if len(self._targets) > 1024:
                self._targets.clear()
            target = self._targets[url] = _Target(url)
        return target

    def _payload(self, request: HttpRequest, target: _Target) -> bytes:
        """The request as it goes on the wire: the request line, headers, body."""
        headers = request.headers
        cached = self._heads.get(id(headers))
        if cached is None or cached[0] is not headers:
            # The endpoint's header mapping is one object for all its requests: encoded once.
            lines = "".join(
                f"{name}: {value}\r\n"
                for name, value in headers.items()
                if name.lower() not in ("host", "content-length", "connection")
            )
            if len(self._heads) > 256:
                self._heads.clear()
            cached = self._heads[id(headers)] = (headers, lines.encode("latin-1"))
        body = request.body or b""
        head = (
            f"{request.method} {target.path} HTTP/1.1\r\nhost: {target.host_header}\r\n"
            f"content-length: {len(body)}\r\n"
        ).encode("latin-1")
        return b"".join((head, cached[1], b"\r\n", body))

    def _tls(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = ssl.create_default_context()
        return self._ssl
