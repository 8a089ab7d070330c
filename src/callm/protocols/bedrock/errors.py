"""Bedrock's error answers, mapped onto callm's errors by their AWS exception type.

AWS names the error in the ``x-amzn-errortype`` header (``ThrottlingException:http://…``),
else in the body's ``__type`` or ``code``; the body holds the ``message``. The type decides
the class, whatever the status says: AWS answers credentials it does not accept (expired,
unknown, a bad signature) with 403, and callm raises AuthenticationError for them — with
what to do about it — and PermissionDeniedError only for an identity that may not do this.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..._core.endpoint import Endpoint
from ..._core.errors import APIError
from ..._core.http import HttpResponse
from ..._core.json import loads
from .._shared.errors import decode_error

if TYPE_CHECKING:
    from .. import StreamDecoder

# AWS exception type -> the HTTP status whose callm error it is.
_TYPE_STATUS: Mapping[str, int] = {
    "ValidationException": 400,
    "ConflictException": 409,
    "ExpiredTokenException": 401,
    "ExpiredToken": 401,
    "UnrecognizedClientException": 401,
    "InvalidClientTokenId": 401,
    "InvalidSignatureException": 401,
    "SignatureDoesNotMatch": 401,
    "IncompleteSignatureException": 401,
    "MissingAuthenticationTokenException": 401,
    "AccessDeniedException": 403,
    "ResourceNotFoundException": 404,
    "ModelTimeoutException": 408,
    "ThrottlingException": 429,
    "ModelNotReadyException": 429,
    "ServiceQuotaExceededException": 429,
    "TooManyRequestsException": 429,
    "ModelErrorException": 424,
    "ModelStreamErrorException": 424,
    "InternalServerException": 500,
    "InternalFailure": 500,
    "ServiceUnavailableException": 503,
}
_EXPIRED = frozenset({"ExpiredTokenException", "ExpiredToken"})
_CONTEXT_MARKERS = ("input is too long", "too many input tokens", "prompt is too long")
_REQUEST_ID = "x-amzn-requestid"


def decode_failure(endpoint: Endpoint, response: HttpResponse) -> APIError:
    """The typed error of a non-2xx Bedrock answer."""
    try:
        body: Any = loads(response.body.decode("utf-8", "replace"))
    except ValueError:
        body = response.body.decode("utf-8", "replace")
    kind = error_type(response.headers, body)
    message = _message(body)
    return typed_error(endpoint, response.status, response.headers, kind, message, body=body)


def error_type(headers: Mapping[str, str], body: Any) -> str | None:
    """The AWS exception type of an error answer (``ThrottlingException`` …), if named."""
    value = headers.get("x-amzn-errortype")
    if not value and isinstance(body, dict):
        value = body.get("__type") or body.get("code") or body.get("Code")
    if not isinstance(value, str) or not value:
        return None
    # "ThrottlingException:http://internal…" or "com.amazon.coral.service#ExpiredTokenException"
    return value.split(":", 1)[0].rsplit("#", 1)[-1]


def typed_error(
    endpoint: Endpoint,
    status: int,
    headers: Mapping[str, str],
    kind: str | None,
    message: str,
    *,
    body: Any,
) -> APIError:
    """The callm error of an AWS exception ``kind`` answered with ``status`` (0 in a stream)."""
    as_status = _TYPE_STATUS.get(kind or "", status)
    if as_status == 403 and _about_credentials(message):
        as_status = 401  # an API key refused: Bedrock says so with AccessDeniedException
    if kind in _EXPIRED:
        message = f"{message or 'the security token has expired'} (the credentials have expired)"
    error = {"message": message, "code": kind}
    if as_status == 400 and any(m in message.lower() for m in _CONTEXT_MARKERS):
        error["type"] = "context_length_exceeded"
    with_id = dict(headers)
    if _REQUEST_ID in headers:
        with_id.setdefault("x-request-id", headers[_REQUEST_ID])
    exc = decode_error(endpoint, as_status, with_id, {"error": error})
    exc.status_code = status or None
    exc.body = body
    exc.headers = headers
    return exc


def in_stream_error(decoder: StreamDecoder, kind: str, data: str) -> APIError:
    """An exception message of an event stream (``throttlingException`` …): the class its HTTP
    twin would have, ``status_code`` None, and ``.partial`` holding what arrived."""
    try:
        body: Any = loads(data)
    except ValueError:
        body = {"message": data}
    name = kind[:1].upper() + kind[1:]  # event streams name them in camelCase
    message = f"error inside the stream: {_message(body) or name}"
    headers = {"x-request-id": decoder.request_id} if decoder.request_id else {}
    exc = typed_error(decoder.endpoint, 0, headers, name, message, body=body)
    exc.status_code = None
    exc.partial = decoder.response()
    return exc


def _message(body: Any) -> str:
    if isinstance(body, dict):
        value = body.get("message") or body.get("Message") or ""
        return str(value).strip()
    return str(body or "").strip()


def _about_credentials(message: str) -> bool:
    text = message.lower()
    return "api key" in text or "bearer" in text or "authentication" in text
