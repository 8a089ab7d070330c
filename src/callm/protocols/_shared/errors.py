"""Turning a provider's error answer into the right exception, with a message that helps."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..._core import errors as e
from ..._core.endpoint import Endpoint
from ..._core.http import HttpResponse
from ..._core.json import loads

if TYPE_CHECKING:
    from .. import StreamDecoder

_REQUEST_ID_HEADERS = ("x-request-id", "request-id", "apim-request-id", "mistral-correlation-id")
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


def request_id_of(headers: Mapping[str, str]) -> str | None:
    """The provider's request id, from whichever header this provider uses."""
    for name in _REQUEST_ID_HEADERS:
        value = headers.get(name)
        if value:
            return value
    return None


def retry_after_of(headers: Mapping[str, str]) -> float | None:
    """The server's retry hint in seconds: ``retry-after-ms``, then ``retry-after``."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    import email.utils

    parsed = email.utils.parsedate_tz(value)
    if parsed is None:
        return None
    return float(email.utils.mktime_tz(parsed) - time.time())


def stream_error(
    decoder: StreamDecoder,
    message: str,
    *,
    body: Any = None,
    code: Any = None,
    request_id: str | None = None,
) -> e.APIResponseError:
    """An error met inside a stream, carrying what the decoder accumulated so far."""
    return e.APIResponseError(
        message,
        provider=decoder.endpoint.provider,
        request_id=decoder.request_id or request_id,
        body=body,
        code=str(code) if code else None,
        partial=decoder.response(),
    )


def decode_error(
    endpoint: Endpoint, status: int, headers: Mapping[str, str], data: Any
) -> e.APIError:
    """The exception for an error answer; ``data`` is the parsed body (or raw text)."""
    error = data.get("error", data) if isinstance(data, dict) else data
    if not isinstance(error, dict):
        error = {"message": str(error) if error else ""}
    message = str(error.get("message") or error.get("detail") or "").strip()
    code = error.get("code")
    code_text = str(code) if code is not None else None
    cls = _error_class(status, message, code_text, str(error.get("type") or ""))
    kwargs: dict[str, Any] = {
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


def parse_json(endpoint: Endpoint, response: HttpResponse) -> Any:
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
