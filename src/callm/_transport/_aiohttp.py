"""The default async transport, on aiohttp (several times httpx2's AsyncClient at high
concurrency in bench/)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from .._core.errors import APIConnectionError, APITimeoutError
from .._core.http import HttpRequest, HttpResponse, redact_url
from .._core.timeouts import Timeout

_ERRORS = (TimeoutError, aiohttp.ClientError, OSError)


def translate(exc: BaseException, url: str) -> APIConnectionError:
    """The one place aiohttp's exceptions become callm's."""
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return APITimeoutError(f"timed out talking to {redact_url(url)}: {exc!r}")
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
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except _ERRORS as exc:
            raise translate(exc, self._url) from None

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except _ERRORS as exc:
            raise translate(exc, self._url) from None

    async def close(self) -> None:
        self._response.close()


class AiohttpTransport:
    """Async HTTP over one aiohttp session, created on first use inside the running loop."""

    def __init__(self, *, max_connections: int = 1000) -> None:
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[Timeout, aiohttp.ClientTimeout] = {}

    def _session_now(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, auto_decompress=True, skip_auto_headers=("User-Agent",)
            )
        return self._session

    def _timeout(self, timeout: Timeout) -> aiohttp.ClientTimeout:
        cached = self._timeouts.get(timeout)
        if cached is None:
            read = timeout.read
            if timeout.total is not None and read is not None and read >= timeout.total:
                read = None  # the total bounds every read already: one timer, not one per read
            cached = self._timeouts[timeout] = aiohttp.ClientTimeout(
                total=timeout.total, connect=timeout.connect, sock_read=read
            )
        return cached

    async def _request(self, request: HttpRequest, timeout: Timeout) -> Any:
        return await self._session_now().request(
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
                body = await response.read()
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
        if self._session is not None:
            await self._session.close()
            self._session = None
