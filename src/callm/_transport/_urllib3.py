"""The default sync transport, on urllib3 (the fastest of httpx2, urllib3 and aiohttp-in-a-
thread in bench/, with keep-alive pooling and no per-call set-up)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import urllib3
from urllib3 import exceptions as x

from .._errors import APIConnectionError, APITimeoutError
from .._http import HttpRequest, HttpResponse, redact_url
from .._timeouts import Timeout

_READ_SIZE = 65536


@contextlib.contextmanager
def translate_errors(url: str) -> Iterator[None]:
    """The one place urllib3's exceptions become callm's."""
    try:
        yield
    except x.NewConnectionError as exc:  # a subclass of ConnectTimeoutError, but no timeout
        raise APIConnectionError(
            f"could not connect to {redact_url(url)}: {exc} — check the base URL and your network"
        ) from None
    except (x.ConnectTimeoutError, x.ReadTimeoutError, TimeoutError) as exc:
        raise APITimeoutError(f"timed out talking to {redact_url(url)}: {exc}") from None
    except (x.HTTPError, OSError) as exc:
        raise APIConnectionError(
            f"could not reach {redact_url(url)}: {type(exc).__name__}: {exc} — check the base "
            "URL and your network"
        ) from None


class _Urllib3Stream:
    __slots__ = ("_response", "_url", "headers", "status")

    def __init__(self, response: Any, url: str) -> None:
        self._response = response
        self._url = url
        self.status: int = response.status
        self.headers: Mapping[str, str] = response.headers

    def chunks(self) -> Iterator[bytes]:
        read1 = self._response.read1
        with translate_errors(self._url):
            while chunk := read1(_READ_SIZE):
                yield chunk

    def read(self) -> bytes:
        with translate_errors(self._url):
            data: bytes = self._response.read()
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
        with translate_errors(request.url):
            response = self._urlopen(request, timeout, True)
        return HttpResponse(response.status, response.headers, response.data)

    def open_stream(self, request: HttpRequest, timeout: Timeout) -> _Urllib3Stream:
        with translate_errors(request.url):
            response = self._urlopen(request, timeout, False)
        return _Urllib3Stream(response, request.url)

    def close(self) -> None:
        self._pool.clear()
