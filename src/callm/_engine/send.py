"""The send path's steps below the policies: one attempt, its retries, and its stream state.

A :class:`Call` is a request ready to go (endpoint, protocol, HTTP request, timeout, retry
budget); :func:`retrying` / :func:`retrying_async` run its attempts until one succeeds or an
error must surface, waiting as :mod:`callm._policies.retry` says.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from .._core.endpoint import Endpoint
from .._core.errors import (
    APIConnectionError,
    APIError,
    APITimeoutError,
    InvalidRequestError,
    RateLimitError,
)
from .._core.http import HttpRequest, HttpResponse, redact_url
from .._core.timeouts import Timeout
from .._policies import retry as _retry
from ..protocols import WireProtocol
from .stream import StreamState

if TYPE_CHECKING:
    from .._transport import AsyncStreamBody, StreamBody

logger = logging.getLogger("callm")
T = TypeVar("T")
_clock = time.perf_counter


@dataclass(frozen=True, slots=True)
class Call:
    """One prepared call: where it goes, what it says, and how patient to be."""

    endpoint: Endpoint
    wire: WireProtocol
    http: HttpRequest
    timeout: Timeout
    max_retries: int


class _Encodable:
    """``with ENCODABLE:`` around encoding a request: what JSON or UTF-8 cannot carry in it
    becomes a clear InvalidRequestError. A class rather than a generator context manager:
    it is entered on every call, and costs a fraction as much."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, tb: object
    ) -> None:
        if isinstance(error, UnicodeEncodeError):
            around = error.object[max(0, error.start - 30) : error.end + 30]
            raise InvalidRequestError(
                "the request holds text that is not valid Unicode (a lone surrogate, as bytes "
                f"that were not UTF-8 become): {around!r}"
            ) from None
        if isinstance(error, ValueError) and "JSON compliant" in str(error):
            raise InvalidRequestError(
                "the request holds a number JSON cannot carry (NaN or an infinity); check "
                "extra_body and the tools' schemas"
            ) from None


ENCODABLE = _Encodable()


def failure(call: Call, response: HttpResponse) -> APIError:
    return call.wire.decode_failure(call.endpoint, response)


def stream_timeout(timeout: Timeout) -> Timeout:
    """Streams wait on the socket no longer than the idle timeout allows."""
    if timeout.idle is None or (timeout.read is not None and timeout.read <= timeout.idle):
        return timeout
    return replace(timeout, read=timeout.idle)


def retrying(call: Call, attempt_once: Callable[[Call], T]) -> T:
    """Run one attempt after another until one succeeds or an error must surface."""
    attempt, began = 0, _clock()
    while True:
        try:
            return attempt_once(_remaining(call, attempt, began))
        except APIError as exc:
            delay = _retry_wait(call, attempt, exc, began)
            if delay is None:
                raise
        time.sleep(delay)
        attempt += 1


async def retrying_async(call: Call, attempt_once: Callable[[Call], Awaitable[T]]) -> T:
    """The async twin of :func:`retrying`."""
    import asyncio  # ~40 ms to import: only async users pay for it

    attempt, began = 0, _clock()
    while True:
        try:
            return await attempt_once(_remaining(call, attempt, began))
        except APIError as exc:
            delay = _retry_wait(call, attempt, exc, began)
            if delay is None:
                raise
        await asyncio.sleep(delay)
        attempt += 1


def _remaining(call: Call, attempt: int, began: float) -> Call:
    """The call as its ``attempt``-th try makes it: with what is left of the total timeout
    (the first try has all of it), so the attempts together stay within the total."""
    total = call.timeout.total
    if attempt == 0 or total is None:
        return call
    left = total - (_clock() - began)
    if left <= 0:
        raise APITimeoutError(f"the call exceeded its total timeout of {total:g} s")
    return replace(call, timeout=call.timeout.within(left))


def _retry_wait(call: Call, attempt: int, error: APIError, began: float) -> float | None:
    """Seconds to wait before retrying, or None when this error must surface now."""
    error.provider = error.provider or call.endpoint.provider
    if attempt >= call.max_retries:
        return None
    headers = error.headers
    hint = error.retry_after if isinstance(error, RateLimitError) else None
    retryable = isinstance(error, APIConnectionError) or _retry.should_retry_error(error, hint)
    if not retryable:
        return None
    delay = _retry.retry_delay(attempt, headers, hint)
    total = call.timeout.total
    if total is not None and _clock() - began + delay >= total:
        return None  # the total timeout would run out before the next attempt could answer
    logger.info(
        "callm: %s on %s, retry %d/%d in %.2f s",
        type(error).__name__,
        redact_url(call.http.url),
        attempt + 1,
        call.max_retries,
        delay,
    )
    return delay


def log_exchange(call: Call, status: int, started: float) -> None:
    if not logger.isEnabledFor(logging.DEBUG):
        return
    logger.debug(
        "%s %s -> %d in %.1f ms",
        call.http.method,
        redact_url(call.http.url),
        status,
        (_clock() - started) * 1000,
    )


def stream_state(call: Call, body: StreamBody | AsyncStreamBody, started: float) -> StreamState:
    from ..protocols._shared.errors import request_id_of

    decoder = call.wire.stream_decoder(call.endpoint, request_id_of(body.headers))
    # A protocol whose streams are not SSE (Bedrock's binary event stream) says how to cut them.
    framing = getattr(call.wire, "stream_framing", None)
    content_type = body.headers.get("content-type") or ""
    return StreamState(decoder, call.timeout, started, framing() if framing else None, content_type)
