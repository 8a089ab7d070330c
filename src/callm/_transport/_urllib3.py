"""The default sync transport: urllib3's HTTP connections, kept alive in a small pool.

urllib3 won the sync benchmark (bench/): its connection classes are used directly, with an
idle-connection pool per origin here, because the PoolManager layer above them (URL
parsing, pool lookup, retry bookkeeping per call) cost ~40% of a loopback round trip and
callm does its own retries.
"""

from __future__ import annotations

import http.client
import threading
import weakref
from collections import deque
from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from urllib3 import exceptions as x
from urllib3.connection import HTTPConnection, HTTPSConnection

from .._core.errors import APIConnectionError, APIResponseError, APITimeoutError
from .._core.http import HttpRequest, HttpResponse, redact_url
from .._core.timeouts import Timeout
from . import _deadline
from ._deadline import Deadline
from ._limits import ERROR_BODY_LIMIT

_READ_SIZE = 65536
_ERRORS = (x.HTTPError, OSError, http.client.HTTPException)
# What a keep-alive connection the server already closed fails with, before any answer
# (never a timeout, and never a body cut short: urllib3 reports that as ProtocolError).
_STALE = (ConnectionError, http.client.BadStatusLine)
# Keep-alive connections kept per origin; more may be open at once, extra ones are closed.
_IDLE_PER_ORIGIN = 32

Origin = tuple[str, str, int]


def translate(exc: BaseException, url: str) -> APIConnectionError:
    """The one place urllib3's exceptions become callm's."""
    where = redact_url(url)
    if isinstance(exc, x.NewConnectionError):  # a subclass of ConnectTimeoutError, no timeout
        return APIConnectionError(
            f"could not connect to {where}: {exc} — check the base URL and your network"
        )
    if isinstance(exc, x.ConnectTimeoutError | x.ReadTimeoutError | TimeoutError):
        return APITimeoutError(f"timed out talking to {where}: {exc}")
    return APIConnectionError(
        f"could not reach {where}: {type(exc).__name__}: {exc} — check the base URL and your "
        "network"
    )


def _watch(timeout: Timeout) -> Deadline | None:
    """The watchdog's deadline for a request with a total timeout (see ``_deadline``)."""
    return None if timeout.total is None else _deadline.watch(timeout.total)


def _overdue(deadline: Deadline | None) -> bool:
    """Stop watching; True when the total ran out (and the socket was shut down)."""
    return deadline is not None and _deadline.release(deadline)


def _past_total(url: str, deadline: Deadline) -> APITimeoutError:
    return APITimeoutError(
        f"no complete answer from {redact_url(url)} within the total timeout of "
        f"{deadline.seconds:g} s"
    )


def _failure(exc: BaseException, url: str, deadline: Deadline | None) -> BaseException:
    """What a failed exchange raises: a timeout when the watchdog cut it short."""
    if _overdue(deadline):
        assert deadline is not None
        return _past_total(url, deadline)
    return translate(exc, url) if isinstance(exc, _ERRORS) else exc


class _Pool:
    """Idle keep-alive connections per origin. deque append/pop are atomic: no lock."""

    def __init__(self) -> None:
        self._idle: dict[Origin, deque[HTTPConnection]] = {}
        self._lock = threading.Lock()
        self._closed = False

    def take(self, origin: Origin) -> HTTPConnection | None:
        idle = self._idle.get(origin)
        if idle:
            try:
                return idle.pop()
            except IndexError:
                return None
        return None

    def give(self, origin: Origin, conn: HTTPConnection) -> None:
        if self._closed:  # the client is gone; a stream that outlived it ends here
            conn.close()
            return
        idle = self._idle.get(origin)
        if idle is None:
            with self._lock:
                idle = self._idle.setdefault(origin, deque())
        if len(idle) < _IDLE_PER_ORIGIN:
            idle.append(conn)
        else:
            conn.close()

    def clear(self) -> None:
        self._closed = True
        for idle in list(self._idle.values()):
            while idle:
                idle.pop().close()


def _split(url: str) -> tuple[Origin, str]:
    parts = urlsplit(url)
    scheme = parts.scheme or "http"
    port = parts.port or (443 if scheme == "https" else 80)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    return (scheme, parts.hostname or "localhost", port), path


class _Urllib3Stream:
    __slots__ = (
        "_conn",
        "_deadline",
        "_origin",
        "_pool",
        "_response",
        "_url",
        "headers",
        "status",
    )

    def __init__(
        self,
        response: Any,
        conn: HTTPConnection,
        pool: _Pool,
        where: tuple[Origin, str],
        deadline: Deadline | None,
    ) -> None:
        self._response = response
        self._conn: HTTPConnection | None = conn
        self._pool = pool
        self._origin, self._url = where
        self._deadline = deadline
        self.status: int = response.status
        self.headers: Mapping[str, str] = _headers(response)

    def chunks(self) -> Iterator[bytes]:
        read1 = self._response.read1
        try:
            while chunk := read1(_READ_SIZE):
                yield chunk
        except BaseException as exc:
            raise self._failed(exc) from None
        self._release()

    def read(self) -> bytes:
        try:
            data: bytes = _read(self._response)
        except BaseException as exc:
            raise self._failed(exc) from None
        self._release()
        return data

    def _failed(self, exc: BaseException) -> BaseException:
        deadline, self._deadline = self._deadline, None
        self.close()
        return _failure(exc, self._url, deadline)

    def _release(self) -> None:
        """The body was read to its end: the connection may serve the next request (unless
        the watchdog cut it at the total timeout, which may look like an end)."""
        conn, self._conn = self._conn, None
        deadline, self._deadline = self._deadline, None
        if _overdue(deadline):
            assert deadline is not None
            if conn is not None:
                conn.close()
            raise _past_total(self._url, deadline)
        if conn is not None:
            _recycle(self._pool, self._origin, conn, self._response)

    def close(self) -> None:
        # Closing (not releasing) drops the socket, so an abandoned stream stops at once.
        conn, self._conn = self._conn, None
        self._response.close()
        if conn is not None:
            conn.close()
        deadline, self._deadline = self._deadline, None
        if deadline is not None:
            _deadline.release(deadline)


def _recycle(pool: _Pool, origin: Origin, conn: HTTPConnection, response: Any) -> None:
    # Only a body read to its end leaves the connection fit for another request: a chunked
    # or close-delimited one is closed by then, one with a Content-Length has none left
    # (read1 never closes it: a streamed body with a length would cost a connection each).
    if response.will_close or not (response.isclosed() or response.length == 0):
        conn.close()
    else:
        pool.give(origin, conn)


def _read(response: Any) -> bytes:
    """The body; an error's only up to ERROR_BODY_LIMIT (enough to say what went wrong)."""
    data: bytes = response.read(ERROR_BODY_LIMIT) if response.status >= 400 else response.read()
    return data


def _plain(response: Any, url: str) -> None:
    """Refuse a 2xx body compressed though callm asked for none: it is never decompressed,
    so a compressed body cannot grow in memory, and a clear error beats unreadable JSON."""
    encoding = response.getheader("content-encoding")
    if encoding and encoding.strip().lower() != "identity" and response.status < 400:
        raise APIResponseError(
            f"{redact_url(url)} sent a {encoding}-compressed body though callm asked for none"
        )


def _headers(response: Any) -> dict[str, str]:
    """Response headers with lower-case names (repeated headers keep the last value)."""
    return {name.lower(): value for name, value in response.getheaders()}


# The standard library's response reading, under urllib3's wrapper.
_getresponse = http.client.HTTPConnection.getresponse


class _OneWrite:
    """Send the head and a bytes body of a request in one write, not two.

    http.client writes the header block, then the body: two system calls, and two segments
    for the server to wake up for. Joining them is what http.client itself did before 3.x.
    """

    def _send_output(self, message_body: Any = None, encode_chunked: bool = False) -> None:
        if type(message_body) is not bytes:
            super()._send_output(message_body, encode_chunked)  # type: ignore[misc]
            return
        buffer: list[bytes] = self._buffer  # type: ignore[attr-defined]
        buffer.extend((b"", b""))
        head = b"\r\n".join(buffer)
        del buffer[:]
        self.send(head + message_body)  # type: ignore[attr-defined]


class _Connection(_OneWrite, HTTPConnection):
    pass


class _TLSConnection(_OneWrite, HTTPSConnection):
    pass


class Urllib3Transport:
    """Sync HTTP over urllib3 connections, kept alive and reused across calls and threads."""

    def __init__(self) -> None:
        self._pool = _Pool()
        self._origins: dict[str, tuple[Origin, str]] = {}
        # A client dropped without close() still closes its idle sockets.
        weakref.finalize(self, self._pool.clear)

    def _where(self, url: str) -> tuple[Origin, str]:
        where = self._origins.get(url)
        if where is None:
            if len(self._origins) > 1024:  # URLs vary by model for some providers
                self._origins.clear()
            where = self._origins[url] = _split(url)
        return where

    def _connect(self, origin: Origin, timeout: Timeout) -> HTTPConnection:
        scheme, host, port = origin
        cls = _TLSConnection if scheme == "https" else _Connection
        connect = timeout.connect
        if timeout.total is not None and (connect is None or connect > timeout.total):
            connect = timeout.total
        conn = cls(host, port, timeout=connect)
        conn.connect()
        return conn

    def _exchange(
        self, request: HttpRequest, timeout: Timeout, deadline: Deadline | None
    ) -> tuple[Any, HTTPConnection, Origin]:
        origin, path = self._where(request.url)
        conn = self._pool.take(origin)
        if conn is not None:
            try:
                return self._send_on(conn, path, request, timeout, deadline), conn, origin
            except _STALE:
                # The server closed this idle keep-alive connection: try once on a new one.
                conn.close()
            except BaseException:
                conn.close()
                raise
        conn = self._connect(origin, timeout)
        try:
            return self._send_on(conn, path, request, timeout, deadline), conn, origin
        except BaseException:
            conn.close()
            raise

    def _send_on(
        self,
        conn: HTTPConnection,
        path: str,
        request: HttpRequest,
        timeout: Timeout,
        deadline: Deadline | None,
    ) -> Any:
        # http.client's own request API (urllib3's connection is an HTTPConnection): headers
        # and body leave in one write (_OneWrite), and the response skips urllib3's wrapper
        # — together ~15% of a loopback round trip. No Accept-Encoding: replies come
        # uncompressed.
        if deadline is not None:
            _deadline.bind(deadline, conn.sock)
        conn.putrequest(request.method, path, skip_accept_encoding=True)
        for name, value in request.headers.items():
            conn.putheader(name, value)
        body = request.body
        if body is not None:
            conn.putheader("content-length", str(len(body)))
        conn.endheaders(body)
        if conn.sock is not None:
            conn.sock.settimeout(timeout.read)
        on_wait = request.extensions.get("on_wait")
        if on_wait is not None:  # the request is on its way: background work may use the wait
            on_wait()
        return _getresponse(conn)

    def send(self, request: HttpRequest, timeout: Timeout) -> HttpResponse:
        deadline = _watch(timeout)
        try:
            response, conn, origin = self._exchange(request, timeout, deadline)
            try:
                _plain(response, request.url)
                data = _read(response)
            except BaseException:
                response.close()  # its file holds the socket open past conn.close()
                conn.close()
                raise
        except BaseException as exc:
            raise _failure(exc, request.url, deadline) from None
        if _overdue(deadline):  # a body cut at the total can look complete: never trust it
            assert deadline is not None
            conn.close()
            raise _past_total(request.url, deadline)
        _recycle(self._pool, origin, conn, response)
        return HttpResponse(response.status, _headers(response), data)

    def open_stream(self, request: HttpRequest, timeout: Timeout) -> _Urllib3Stream:
        deadline = _watch(timeout)
        try:
            response, conn, origin = self._exchange(request, timeout, deadline)
            try:
                _plain(response, request.url)
            except BaseException:
                response.close()
                conn.close()
                raise
        except BaseException as exc:
            raise _failure(exc, request.url, deadline) from None
        return _Urllib3Stream(response, conn, self._pool, (origin, request.url), deadline)

    def close(self) -> None:
        self._pool.clear()
