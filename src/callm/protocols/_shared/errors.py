"""Turning a provider's error answer into the right exception, with a message that helps."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..._core import errors as e
from ..._core.endpoint import Endpoint
from ..._core.http import HttpResponse
from ..._core.json import loads

if TYPE_CHECKING:
    from .. import StreamDecoder

_REQUEST_ID_HEADERS = (
    "x-request-id",
    "request-id",
    "apim-request-id",
    "mistral-correlation-id",
    "x-amzn-requestid",
)
_CONTEXT_MARKERS = (
    "context_length_exceeded",
    "maximum context length",
    "context window",
    "context length",
    "exceed_context_size",
    "too many tokens",
    "prompt is too long",
    "input is too long",
    "exceed context limit",
    "exceeds the maximum number of tokens",
)
_BY_STATUS: Mapping[int, type[e.APIStatusError]] = {
    400: e.BadRequestError,
    401: e.AuthenticationError,
    403: e.PermissionDeniedError,
    404: e.NotFoundError,
    409: e.ConflictError,
    413: e.BadRequestError,
    422: e.BadRequestError,
    429: e.RateLimitError,
    503: e.OverloadedError,
    529: e.OverloadedError,
}


# An error message is one line a person reads: a longer text is cut, a page named by its title.
_MESSAGE_LIMIT = 500
_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_MARKUP = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.IGNORECASE | re.DOTALL)


def readable(text: str) -> str:
    """``text`` fit for an error message: an HTML page by its title (else its first words),
    a long text cut short."""
    start = text[:256].lstrip().lower()
    if start.startswith(("<!doctype html", "<html")) or "<html" in start:
        found = _TITLE.search(text[:65536])
        words = found.group(1) if found else _MARKUP.sub(" ", text[:4096])
        title = " ".join(words.split())[:120]
        return f"an HTML page ({title!r})" if title else "an HTML page"
    if len(text) <= _MESSAGE_LIMIT:
        return text
    return f"{text[:_MESSAGE_LIMIT].rstrip()}… ({len(text):,} characters in all)"


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The provider's request id, from whichever header this provider uses."""
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """The server's retry hint in seconds: ``retry-after-ms``, then ``retry-after``.

    A value that cannot be read (garbage, an HTTP date out of range, ``inf`` or ``nan``)
    is no hint at all: None, and the normal backoff applies.
    """
    value = headers.get("retry-after-ms")
    if value:
        millis = finite_float(value)
        if millis is not None:
            return millis / 1000
    value = headers.get("retry-after")
    if not value:
        return None
    seconds = finite_float(value)
    if seconds is not None:
        return seconds
    import email.utils

    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    try:
        return float(email.utils.mktime_tz(parsed) - time.time())
    except (ValueError, OverflowError):  # a year out of range, an absurd offset
        return None


def finite_float(text: str) -> float | None:
    """``float(text)`` when it is a finite number, else None."""
    try:
        number = float(text)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


class UnreadableEventError(e.APIResponseError):
    """A stream event that is not the JSON its protocol promises."""


def unreadable_event(decoder: StreamDecoder, data: str, what: str = "JSON") -> e.APIResponseError:
    """The error for a stream event whose data is not ``what`` (JSON, a JSON object …)."""
    return UnreadableEventError(
        f"the provider sent a stream event that is not {what}: {data[:200]!r}",
        provider=decoder.endpoint.provider,
        request_id=decoder.request_id,
        partial=decoder.response(),
    )


def is_unreadable(error: BaseException) -> bool:
    """Whether an error is an event that could not be read (see :func:`unreadable_event`)."""
    return isinstance(error, UnreadableEventError)


# The HTTP status an error reported inside a stream would have had as an answer of its own,
# by the error type or code the provider gave it (Anthropic's types, OpenAI's types and
# codes, Google's canonical statuses, the type names of vLLM and llama.cpp servers).
_TWIN_STATUS: Mapping[str, int] = {
    "invalid_request_error": 400,
    "badrequesterror": 400,
    "invalid_argument": 400,
    "failed_precondition": 400,
    "out_of_range": 400,
    "invalid_prompt": 400,
    "context_length_exceeded": 400,
    "exceed_context_size_error": 400,
    "authentication_error": 401,
    "invalid_api_key": 401,
    "unauthenticated": 401,
    "permission_error": 403,
    "permission_denied": 403,
    "not_found_error": 404,
    "notfounderror": 404,
    "not_found": 404,
    "model_not_found": 404,
    "request_too_large": 413,
    "rate_limit_error": 429,
    "rate_limit_exceeded": 429,
    "ratelimiterror": 429,
    "insufficient_quota": 429,
    "resource_exhausted": 429,
    "tokens": 429,
    "requests": 429,
    "api_error": 500,
    "server_error": 500,
    "internal": 500,
    "internal_error": 500,
    "internalservererror": 500,
    "timeout_error": 504,
    "deadline_exceeded": 504,
    "overloaded_error": 529,
    "unavailable": 503,
    "unavailable_error": 503,
    "service_unavailable": 503,
}


def twin_status(error: Mapping[str, object]) -> int:
    """The HTTP status of an in-stream error's twin answer; 0 when nothing says which.

    An integer ``code`` (OpenRouter, vLLM, Google) or ``status_code`` (Groq) is an HTTP
    status already; otherwise the ``type``, ``status`` or ``code`` name decides.
    """
    for key in ("status_code", "code"):
        number = error.get(key)
        if isinstance(number, int) and not isinstance(number, bool) and 400 <= number < 600:
            return number
    for key in ("type", "status", "code"):
        name = error.get(key)
        if isinstance(name, str):
            status = _TWIN_STATUS.get(name.lower())
            if status is not None:
                return status
    return 0


def in_stream_error(
    decoder: StreamDecoder, error: Mapping[str, object], body: object, request_id: str | None = None
) -> e.APIError:
    """The typed error of an error the provider reported inside a stream.

    It is the class its HTTP twin would raise (an ``overloaded_error`` event is an
    :class:`~callm.OverloadedError`, a 429-coded chunk a :class:`~callm.RateLimitError`),
    with ``status_code`` None — the HTTP status was a 200 — and ``.partial`` holding what
    arrived before it. An error nothing identifies stays an :class:`~callm.APIResponseError`.
    """
    message = str(error.get("message") or "the provider reported an error mid-stream")
    rid = decoder.request_id or request_id
    headers = {"x-request-id": rid} if rid else {}
    tagged = {**error, "message": f"error inside the stream: {message}"}
    exc = decode_error(decoder.endpoint, twin_status(error), headers, {"error": tagged})
    exc.status_code = None
    exc.body = body
    exc.partial = decoder.response()
    if exc.code is None:
        kind = error.get("type") or error.get("status")
        exc.code = str(kind) if kind else None
    return exc


def decode_error(
    endpoint: Endpoint, status: int, headers: Mapping[str, str], data: object
) -> e.APIError:
    """The exception for an error answer; ``data`` is the parsed body (or raw text)."""
    error = data.get("error", data) if isinstance(data, dict) else data
    if not isinstance(error, dict):
        error = {"message": str(error) if error else ""}
    message = readable(str(error.get("message") or error.get("detail") or "").strip())
    code = error.get("code")
    code_text = str(code) if code is not None else None
    cls = _error_class(status, message, code_text, str(error.get("type") or ""))
    kwargs: e.ErrorFields = {
        "provider": endpoint.provider,
        "status_code": status or None,
        "request_id": request_id_of(headers),
        "body": data,
        "code": code_text,
        "headers": headers,
    }
    text = _with_hint(cls, message or _default_message(status), endpoint)
    if cls is e.RateLimitError:
        return e.RateLimitError(text, retry_after=retry_after_of(headers), **kwargs)
    return cls(text, **kwargs)


def _error_class(status: int, message: str, code: str | None, kind: str) -> type[e.APIError]:
    if status in (400, 413, 422) or not status:
        haystack = f"{code} {kind} {message}".lower()
        if any(marker in haystack for marker in _CONTEXT_MARKERS):
            return e.ContextWindowExceededError
    if not status:
        return e.APIResponseError
    cls = _BY_STATUS.get(status)
    if cls is not None:
        return cls
    return e.InternalServerError if status >= 500 else e.APIStatusError


def _default_message(status: int) -> str:
    return f"the provider answered with HTTP {status} and no error message"


def _with_hint(cls: type[e.APIError], message: str, endpoint: Endpoint) -> str:
    provider = endpoint.provider
    if issubclass(cls, e.AuthenticationError) and endpoint.auth_hint:
        return f"{message} — {endpoint.auth_hint}"
    if issubclass(cls, e.AuthenticationError):
        where = f"set {endpoint.key_env} or " if endpoint.key_env else ""
        return f"{message} — check the API key: {where}run `callm keys set {provider}`"
    if issubclass(cls, e.NotFoundError):
        return f"{message} — check the model name; `callm models {provider}` lists them"
    if issubclass(cls, e.ContextWindowExceededError):
        return f"{message} — shorten the conversation or lower max_tokens"
    if issubclass(cls, e.RateLimitError):
        return f"{message} — slow down, wait and retry, or raise max_retries"
    return message


def parse_json(endpoint: Endpoint, response: HttpResponse) -> object:
    """The JSON body of a response, or an APIResponseError saying it could not be read."""
    try:
        return loads(response.body.decode())
    except ValueError:
        snippet = response.body[:200].decode("utf-8", "replace")
        raise e.APIResponseError(
            f"the provider sent a body that is not valid JSON: {snippet!r}",
            provider=endpoint.provider,
            status_code=response.status,
            request_id=request_id_of(response.headers),
        ) from None
