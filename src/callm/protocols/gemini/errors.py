"""Google's error bodies, mapped onto callm's errors (a bad key is a 400 that means 401)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from ..._core import errors as e
from ..._core.endpoint import Endpoint
from ..._core.errors import APIError
from ..._core.http import HttpResponse
from .._shared.errors import decode_error, finite_float, parse_json, twin_status

if TYPE_CHECKING:
    from .. import StreamDecoder


# Which callm error a Google status string means, whatever the HTTP status says.
_STATUS_AS_HTTP = {
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
}
_AUTH_REASONS = frozenset({"API_KEY_INVALID", "API_KEY_EXPIRED", "API_KEY_SERVICE_BLOCKED"})
_CONTEXT_PHRASE = "exceeds the maximum number of tokens"


def decode_failure(endpoint: Endpoint, response: HttpResponse) -> APIError:
    """The typed error of a non-2xx answer in Google's ``{"error": {code, status, …}}`` shape.

    A bad key is a 400 ``INVALID_ARGUMENT`` with reason ``API_KEY_INVALID``: it becomes
    AuthenticationError. ``RESOURCE_EXHAUSTED`` is a RateLimitError whose ``retry_after``
    comes from a ``RetryInfo`` detail when no header gives one; ``UNAVAILABLE`` is an
    OverloadedError. ``.code`` is the ErrorInfo reason, else the status string.
    """
    body: object
    try:
        body = parse_json(endpoint, response)
    except APIError:
        body = response.body.decode("utf-8", "replace")
    if isinstance(body, list) and body:
        body = body[0]  # errors of a JSON-array stream arrive wrapped in [...]
    return typed_error(endpoint, response.status, response.headers, body)


def typed_error(
    endpoint: Endpoint, status: int, headers: Mapping[str, str], body: object
) -> APIError:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return decode_error(endpoint, status, headers, body)
    details = [d for d in error.get("details") or () if isinstance(d, dict)]
    reason = next((d.get("reason") for d in details if d.get("reason")), None)
    google_status = error.get("status")
    as_status = _STATUS_AS_HTTP.get(str(google_status), status)
    if reason in _AUTH_REASONS:
        as_status = 401
    tagged = dict(error)
    # decode_error classifies by status and message; these give it what Google says.
    tagged["code"] = reason or google_status or error.get("code")
    if _CONTEXT_PHRASE in str(error.get("message") or ""):
        tagged["type"] = "context_length_exceeded"
    exc = decode_error(endpoint, as_status, headers, {"error": tagged})
    exc.status_code = status or None
    exc.body = body
    if isinstance(exc, e.RateLimitError) and exc.retry_after is None:
        exc.retry_after = _retry_delay(details)
    return exc


def in_stream_error(decoder: StreamDecoder, body: Mapping[str, object]) -> APIError:
    """The typed error of an error object met inside a stream, as Google's status names it
    (``RESOURCE_EXHAUSTED`` a RateLimitError …), with ``status_code`` None and ``.partial``."""
    error = body.get("error")
    error = dict(error) if isinstance(error, Mapping) else {"message": str(error)}
    message = error.get("message") or "the provider reported an error mid-stream"
    error["message"] = f"error inside the stream: {message}"
    headers = {"x-request-id": decoder.request_id} if decoder.request_id else {}
    exc = typed_error(decoder.endpoint, twin_status(error), headers, {"error": error})
    exc.status_code = None
    exc.body = dict(body)
    exc.partial = decoder.response()
    return exc


def _retry_delay(details: Sequence[Mapping[str, object]]) -> float | None:
    """``RetryInfo.retryDelay`` ("37s", "1.5s") in seconds."""
    for detail in details:
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and delay.endswith("s"):
            return finite_float(delay[:-1])
    return None
