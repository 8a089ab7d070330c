"""Transports over a caller's own httpx2 client (for proxies, custom TLS, mounts …)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx2

from .._core.errors import APIConnectionError, APITimeoutError
from .._core.http import HttpRequest, HttpResponse, redact_url
from .._core.timeouts import Timeout


@contextlib.contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """The one place httpx2's exceptions become callm's."""
    try:
        yield
    except httpx2.TimeoutException as exc:
        raise APITimeoutError(f"timed out talking to {redact_url(url)}: {exc!r}") from None
    except (httpx2.TransportError, httpx2.StreamError, OSError) as exc:
        raise APIConnectionError(
            f"could not reach {redact_url(url)}: {type(exc).__name__}: {exc} — check the base "
            "URL and your network"
        ) from None


def _timeout(timeout: Timeout) -> httpx2.Timeout:
    return httpx2.Timeout(timeout.read, connect=timeout.connect)


def _build(client: Any, request: HttpRequest, timeout: Timeout) -> Any:
    return client.build_request(
        request.method,
        request.url,
        content=request.body,
        headers=dict(request.headers),
        timeout=_timeout(timeout),
    )


class _Stream:
    __slots__ = ("_response", "_url", "headers", "status")

    def __init__(self, response: Any, url: str) -> None:
        self._response = response
        self._url = url
        self.status: int = response.status_code
        self.headers: Mapping[str, str] = response.headers

    def chunks(self) -> Iterator[bytes]:
        with translate_errors(self._url):
            yield from self._response.iter_bytes()

    def read(self) -> bytes:
        with translate_errors(self._url):
            data: bytes = self._response.read()
        return data

    def close(self) -> None:
        self._response.close()


class _AsyncStream:
    __slots__ = ("_response", "_url", "headers", "status")

    def __init__(self, response: Any, url: str) -> None:
        self._response = response
        self._url = url
        self.status: int = response.status_code
        self.headers: Mapping[str, str] = response.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        with translate_errors(self._url):
            async for chunk in self._response.aiter_bytes():
                yield chunk

    async def read(self) -> bytes:
        with translate_errors(self._url):
            data: bytes = await self._response.aread()
        return data

    async def close(self) -> None:
        await self._response.aclose()


class HttpxTransport:
    """Sync transport over a caller's ``httpx2.Client`` (which the caller owns and closes)."""

    def __init__(self, client: httpx2.Client) -> None:
        self._client = client

    def send(self, request: HttpRequest, timeout: Timeout) -> HttpResponse:
        with translate_errors(request.url):
            response = self._client.send(_build(self._client, request, timeout))
        return HttpResponse(response.status_code, response.headers, response.content)

    def open_stream(self, request: HttpRequest, timeout: Timeout) -> _Stream:
        with translate_errors(request.url):
            response = self._client.send(_build(self._client, request, timeout), stream=True)
        return _Stream(response, request.url)

    def close(self) -> None:
        """The caller's client is theirs to close."""


class AsyncHttpxTransport:
    """Async transport over a caller's ``httpx2.AsyncClient``."""

    def __init__(self, client: httpx2.AsyncClient) -> None:
        self._client = client

    async def send(self, request: HttpRequest, timeout: Timeout) -> HttpResponse:
        with translate_errors(request.url):
            response = await self._client.send(_build(self._client, request, timeout))
        return HttpResponse(response.status_code, response.headers, response.content)

    async def open_stream(self, request: HttpRequest, timeout: Timeout) -> _AsyncStream:
        with translate_errors(request.url):
            built = _build(self._client, request, timeout)
            response = await self._client.send(built, stream=True)
        return _AsyncStream(response, request.url)

    async def close(self) -> None:
        """The caller's client is theirs to close."""
