"""The default sync transport, on urllib3 (the fastest of httpx2, urllib3 and aiohttp-in-a-
thread in bench/, with keep-alive pooling and no per-call set-up)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import urllib3
from urllib3 import exceptions as x

from .._errors import APIConnectionError, APITimeoutError
from .._http import HttpRequest, HttpResponse, redact_url
from .._timeouts import Timeout

_READ_SIZE = 65536


_ERRORS = (x.HTTPError, OSError)


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


class _Urllib3Stream:
    __slots__ = ("_response", "_url", "headers", "status")

    def __init__(self, response: Any, url: str) -> None:
        self._response = response
        self._url = url
        self.status: int = response.status
        self.headers: Mapping[str, str] = response.headers

    def chunks(self) -> Iterator[bytes]:
        read1 = self._response.read1
        try:
            while chunk := read1(_READ_SIZE):
                yield chunk
        except _ERRORS as exc:
            raise translate(exc, self._url) from None

    def read(self) -> bytes:
        try:
            data: bytes = self._response.read()
        except _ERRORS as exc:
            raise translate(exc, self._url) from None
        return data

    def close(self) -> None:
        # Closing (not releasing) drops the socket, so an abandoned stream stops at once.
        self._response.close()


class Urllib3Transport:
    """Sync HTTP over a urllib3 PoolManager; connections are kept alive and reused."""

    def __init__(self, *, max_connections: int = 100, **pool_kwargs: Any) -> None:
        self._pool = urllib3.PoolManager(maxsize=max_connections, block=False, **pool_kwargs)
        self._timeouts: dict[Timeout, urllib3.Timeout] = {}

    def _timeout(self, timeout: Timeout) -> urllib3.Timeout:
        cached = self._timeouts.get(timeout)
        if cached is None:
            cached = self._timeouts[timeout] = urllib3.Timeout(
                connect=timeout.connect, read=timeout.read
            )
        return cached

    def _urlopen(self, request: HttpRequest, timeout: Timeout, preload: bool) -> Any:
        return self._pool.urlopen(
            request.method,
            request.url,
            body=request.body,
            headers=request.headers,
            timeout=self._timeout(timeout),
            retries=False,
            redirect=False,
            preload_content=preload,
        )

    def send(self, request: HttpRequest, timeout: Timeout) -> HttpResponse:
        try:
            response = self._urlopen(request, timeout, True)
        except _ERRORS as exc:
            raise translate(exc, request.url) from None
        return HttpResponse(response.status, response.headers, response.data)

    def open_stream(self, request: HttpRequest, timeout: Timeout) -> _Urllib3Stream:
        try:
            response = self._urlopen(request, timeout, False)
        except _ERRORS as exc:
            raise translate(exc, request.url) from None
        return _Urllib3Stream(response, request.url)

    def close(self) -> None:
        self._pool.clear()
