"""The default async transport, on aiohttp (several times httpx2's AsyncClient at high
concurrency in bench/)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import aiohttp

from .._errors import APIConnectionError, APITimeoutError
from .._http import HttpRequest, HttpResponse, redact_url
from .._timeouts import Timeout


@contextlib.contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """The one place aiohttp's exceptions become callm's."""
    try:
        yield
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise APITimeoutError(f"timed out talking to {redact_url(url)}: {exc!r}") from None
    except (aiohttp.ClientError, OSError) as exc:
        raise APIConnectionError(
            f"could not reach {redact_url(url)}: {type(exc).__name__}: {exc} — check the base "
            "URL and your network"
        ) from None


class _AiohttpStream:
    __slots__ = ("_response", "_url", "headers", "status")

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self._response = response
        self._url = url
        self.status = response.status
        self.headers: Mapping[str, str] = response.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        with translate_errors(self._url):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def read(self) -> bytes:
        with translate_errors(self._url):
            return await self._response.read()

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
            cached = self._timeouts[timeout] = aiohttp.ClientTimeout(
                total=None, connect=timeout.connect, sock_read=timeout.read
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
        with translate_errors(request.url):
            response = await self._request(request, timeout)
            async with response:
                body = await response.read()
        return HttpResponse(response.status, response.headers, body)

    async def open_stream(self, request: HttpRequest, timeout: Timeout) -> _AiohttpStream:
        with translate_errors(request.url):
            response = await self._request(request, timeout)
        return _AiohttpStream(response, request.url)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
