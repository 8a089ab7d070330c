"""The default async transport, on aiohttp (several times httpx2's AsyncClient at high
concurrency in bench/).

A client that is never closed still closes its connections quietly, as the official SDKs'
do: each session is tied to the event loop it was made in (an async generator the loop
finalizes when the client is dropped, or when ``asyncio.run`` shuts the loop down), and a
finalizer silences what is left at interpreter exit — no "Unclosed client session" noise,
no socket left open.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from typing import Any

import aiohttp

from .._core.errors import APIConnectionError, APITimeoutError
from .._core.http import HttpRequest, HttpResponse, redact_url
from .._core.timeouts import Timeout
from ._limits import ERROR_BODY_LIMIT, check_expansion

_ERRORS = (TimeoutError, aiohttp.ClientError, OSError)


def translate(exc: BaseException, url: str) -> APIConnectionError:
    """The one place aiohttp's exceptions become callm's."""
    if isinstance(exc, aiohttp.ServerTimeoutError):  # connect or one read
        return APITimeoutError(f"timed out talking to {redact_url(url)}: {exc}")
    if isinstance(exc, TimeoutError):  # aiohttp's total timer
        return APITimeoutError(
            f"no complete answer from {redact_url(url)} within the total timeout"
        )
    return APIConnectionError(
        f"could not reach {redact_url(url)}: {type(exc).__name__}: {exc} — check the base URL "
        "and your network"
    )


class _AiohttpStream:
    __slots__ = ("_response", "_url", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self._response = response
        self._url = url
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        response = self._response
        compressed = "content-encoding" in response.headers
        size = 0
        try:
            async for chunk in response.content.iter_any():
                if compressed:
                    size += len(chunk)
                    check_expansion(response.headers, size, _wire_bytes(response))
                yield chunk
        except _ERRORS as exc:
            raise translate(exc, self._url) from None

    async def read(self) -> bytes:
        try:
            return await _read(self._response)
        except _ERRORS as exc:
            raise translate(exc, self._url) from None

    async def close(self) -> None:
        self._response.close()


async def _read(response: aiohttp.ClientResponse) -> bytes:
    """The body: an error's only up to ERROR_BODY_LIMIT, a compressed one checked as it grows
    (see ``_limits``); a plain 2xx body in one read, the fast path."""
    if response.status >= 400:
        return await _read_upto(response.content, ERROR_BODY_LIMIT)
    if "content-encoding" not in response.headers:
        return await response.read()
    parts: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_any():
        size += len(chunk)
        check_expansion(response.headers, size, _wire_bytes(response))
        parts.append(chunk)
    return b"".join(parts)


async def _read_upto(content: aiohttp.StreamReader, limit: int) -> bytes:
    """Up to ``limit`` bytes of a body (one read may return fewer)."""
    parts: list[bytes] = []
    size = 0
    while size < limit:
        chunk = await content.read(limit - size)
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


def _wire_bytes(response: aiohttp.ClientResponse) -> int | None:
    content = response.content
    compressed: int | None = getattr(content, "total_compressed_bytes", None)
    return compressed


class AiohttpTransport:
    """Async HTTP over one aiohttp session, created on first use inside the running loop."""

    def __init__(self, *, max_connections: int = 1000) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[Timeout, aiohttp.ClientTimeout] = {}
        self._sessions = _Sessions()
        weakref.finalize(self, self._sessions.abandon)

    def _timeout(self, timeout: Timeout) -> aiohttp.ClientTimeout:
        cached = self._timeouts.get(timeout)
        if cached is None:
            if len(self._timeouts) > 32:  # retries carry what is left of the total: all differ
                self._timeouts.clear()
            read = timeout.read
            if timeout.total is not None and read is not None and read >= timeout.total:
                read = None  # the total bounds every read already: one timer, not one per read
            cached = self._timeouts[timeout] = aiohttp.ClientTimeout(
                total=timeout.total, connect=timeout.connect, sock_read=read
            )
        return cached

    async def _request(self, request: HttpRequest, timeout: Timeout) -> Any:
        session = self._session
        if session is None or session.closed:
            session = self._session = await self._sessions.open(self._max_connections)
        return await session.request(
            request.method,
            request.url,
            data=request.body,
            headers=request.headers,
            timeout=self._timeout(timeout),
            allow_redirects=False,
        )

    async def send(self, request: HttpRequest, timeout: Timeout) -> HttpResponse:
        on_wait = request.extensions.get("on_wait")
        if on_wait is not None:  # the event loop's thread does it, not a rival one
            on_wait()
        try:
            response = await self._request(request, timeout)
            async with response:
                body = await _read(response)
        except _ERRORS as exc:
            raise translate(exc, request.url) from None
        return HttpResponse(response.status, response.headers, body)

    async def open_stream(self, request: HttpRequest, timeout: Timeout) -> _AiohttpStream:
        on_wait = request.extensions.get("on_wait")
        if on_wait is not None:
            on_wait()
        try:
            response = await self._request(request, timeout)
        except _ERRORS as exc:
            raise translate(exc, request.url) from None
        return _AiohttpStream(response, request.url)

    async def close(self) -> None:
        self._session = None
        await self._sessions.close()


class _Sessions:
    """The transport's sessions, each closed with the event loop it belongs to.

    It holds no reference to the transport, so the transport's finalizer can call it.
    """

    __slots__ = ("_guards", "_open")

    def __init__(self) -> None:
        self._open: list[aiohttp.ClientSession] = []
        self._guards: list[AsyncGenerator[None, None]] = []

    async def open(self, max_connections: int) -> aiohttp.ClientSession:
        self._open = [s for s in self._open if not s.closed]
        connector = aiohttp.TCPConnector(limit=max_connections, ttl_dns_cache=300)
        session = aiohttp.ClientSession(
            connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",)
        )
        # A started async generator is one the running loop finalizes (``aclose()``) when
        # it is dropped or at ``shutdown_asyncgens()``: the session closes inside its loop.
        guard = _closed_with_the_loop(session)
        await anext(guard)
        self._open.append(session)
        self._guards = [*self._guards[-7:], guard]  # older loops' guards: already finalized
        return session

    async def close(self) -> None:
        guards, self._guards, self._open = self._guards, [], []
        for guard in guards:
            await guard.aclose()

    def abandon(self) -> None:
        """The transport was dropped unclosed (or the interpreter exits): close what is
        left without awaiting, so neither aiohttp nor asyncio complains about it."""
        for session in self._open:
            connector = session.connector
            if connector is not None and not connector.closed:
                connector._close()  # the synchronous half of close(); no event loop needed
            session.detach()
        self._open = []


async def _closed_with_the_loop(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    try:
        yield
    finally:
        await session.close()
