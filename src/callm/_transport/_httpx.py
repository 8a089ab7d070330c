"""Transports over a caller's own httpx2 client (for proxies, custom TLS, mounts …).

httpx2 has no total timeout of its own: here the total is checked as each piece of the
body arrives (and no single read may wait past it), and the async transport bounds the
wait for the headers too. A sync server that trickles its very headers is bounded only by
the read timeout per byte; callm's default sync transport (urllib3) bounds even that.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx2

from .._core.errors import APIConnectionError, APITimeoutError
from .._core.http import HttpRequest, HttpResponse, redact_url
from .._core.timeouts import Timeout
from ._limits import ERROR_BODY_LIMIT, check_expansion

_clock = time.monotonic


@contextlib.contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """The one place httpx2's exceptions become callm's."""
    try:
        yield
    except (httpx2.TimeoutException, TimeoutError) as exc:
        raise APITimeoutError(f"timed out talking to {redact_url(url)}: {exc!r}") from None
    except (httpx2.TransportError, httpx2.StreamError, OSError) as exc:
        raise APIConnectionError(
            f"could not reach {redact_url(url)}: {type(exc).__name__}: {exc} — check the base "
            "URL and your network"
        ) from None


def _timeout(timeout: Timeout) -> httpx2.Timeout:
    read, total = timeout.read, timeout.total
    if total is not None and (read is None or read > total):
        read = total
    return httpx2.Timeout(read, connect=timeout.connect)


def _deadline(timeout: Timeout) -> float | None:
    return None if timeout.total is None else _clock() + timeout.total


def _check(deadline: float | None, url: str) -> None:
    if deadline is not None and _clock() > deadline:
        raise APITimeoutError(f"no complete answer from {redact_url(url)} within the total timeout")


def _build(client: Any, request: HttpRequest, timeout: Timeout) -> Any:
    return client.build_request(
        request.method,
        request.url,
        content=request.body,
        headers=dict(request.headers),
        timeout=_timeout(timeout),
    )


class _Stream:
    __slots__ = ("_deadline", "_response", "_url", "headers", "status")

    def __init__(self, response: Any, url: str, deadline: float | None) -> None:
        self._response = response
        self._url = url
        self._deadline = deadline
        self.status: int = response.status_code
        self.headers: Mapping[str, str] = response.headers

    def chunks(self) -> Iterator[bytes]:
        response = self._response
        size = 0
        with translate_errors(self._url):
            for chunk in response.iter_bytes():
                _check(self._deadline, self._url)
                size += len(chunk)
                check_expansion(response.headers, size, response.num_bytes_downloaded)
                yield chunk

    def read(self) -> bytes:
        return _upto(self.chunks(), self.status)

    def close(self) -> None:
        self._response.close()


class _AsyncStream:
    __slots__ = ("_deadline", "_response", "_url", "headers", "status")

    def __init__(self, response: Any, url: str, deadline: float | None) -> None:
        self._response = response
        self._url = url
        self._deadline = deadline
        self.status: int = response.status_code
        self.headers: Mapping[str, str] = response.headers

    async def chunks(self) -> AsyncIterator[bytes]:
        import asyncio

        response = self._response
        pieces = response.aiter_bytes()
        size = 0
        with translate_errors(self._url):
            while True:
                async with asyncio.timeout(_left(self._deadline)):
                    chunk = await anext(pieces, None)
                if chunk is None:
                    return
                size += len(chunk)
                check_expansion(response.headers, size, response.num_bytes_downloaded)
                yield chunk

    async def read(self) -> bytes:
        parts: list[bytes] = []
        size = 0
        async for chunk in self.chunks():
            parts.append(chunk)
            size += len(chunk)
            if self.status >= 400 and size >= ERROR_BODY_LIMIT:
                break
        return b"".join(parts)[:ERROR_BODY_LIMIT] if self.status >= 400 else b"".join(parts)

    async def close(self) -> None:
        await self._response.aclose()


def _upto(chunks: Iterator[bytes], status: int) -> bytes:
    """The body; an error's only up to ERROR_BODY_LIMIT (see ``_limits``)."""
    parts: list[bytes] = []
    size = 0
    for chunk in chunks:
        parts.append(chunk)
        size += len(chunk)
        if status >= 400 and size >= ERROR_BODY_LIMIT:
            return b"".join(parts)[:ERROR_BODY_LIMIT]
    return b"".join(parts)


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.0, deadline - _clock())


class HttpxTransport:
    """Sync transport over a caller's ``httpx2.Client`` (which the caller owns and closes)."""

    def __init__(self, client: httpx2.Client) -> None:
        self._client = client

    def send(self, request: HttpRequest, timeout: Timeout) -> HttpResponse:
        body = self.open_stream(request, timeout)
        try:
            data = body.read()
        finally:
            body.close()
        return HttpResponse(body.status, body.headers, data)

    def open_stream(self, request: HttpRequest, timeout: Timeout) -> _Stream:
        deadline = _deadline(timeout)
        with translate_errors(request.url):
            response = self._client.send(_build(self._client, request, timeout), stream=True)
        return _Stream(response, request.url, deadline)

    def close(self) -> None:
        """The caller's client is theirs to close."""


class AsyncHttpxTransport:
    """Async transport over a caller's ``httpx2.AsyncClient``."""

    def __init__(self, client: httpx2.AsyncClient) -> None:
        self._client = client

    async def send(self, request: HttpRequest, timeout: Timeout) -> HttpResponse:
        body = await self.open_stream(request, timeout)
        try:
            data = await body.read()
        finally:
            await body.close()
        return HttpResponse(body.status, body.headers, data)

    async def open_stream(self, request: HttpRequest, timeout: Timeout) -> _AsyncStream:
        import asyncio

        deadline = _deadline(timeout)
        with translate_errors(request.url):
            built = _build(self._client, request, timeout)
            async with asyncio.timeout(timeout.total):
                response = await self._client.send(built, stream=True)
        return _AsyncStream(response, request.url, deadline)

    async def close(self) -> None:
        """The caller's client is theirs to close."""
