"""The one exception tree of callm.

::

    CallmError
    ├── ConfigurationError              missing key, unknown provider or model, bad config
    ├── InvalidRequestError             the request cannot be expressed for this provider
    ├── BudgetExceededError             a spend limit would be passed: refused before sending
    ├── RequestVetoed                   a before-request hook refused the call
    ├── StructuredOutputError           the reply did not validate against ``output=``
    ├── MaxStepsExceededError           Client.run() reached max_steps without an answer
    └── APIError                        anything that went wrong talking to a provider
        ├── APIStatusError              the provider answered with an HTTP error status
        │   ├── BadRequestError             400, 422
        │   │   └── ContextWindowExceededError  the prompt does not fit the model's window
        │   ├── AuthenticationError         401
        │   ├── PermissionDeniedError       403
        │   ├── NotFoundError               404
        │   ├── ConflictError               409
        │   ├── RateLimitError              429 (``.retry_after``)
        │   └── InternalServerError         5xx
        │       └── OverloadedError             529, 503
        ├── APIResponseError            a 2xx answer callm could not read (malformed JSON),
        │                               or an error inside a stream nothing identifies
        └── APIConnectionError          no usable answer: DNS, refused, reset …
            ├── APITimeoutError             connect / read / total / idle timeout
            └── StreamInterruptedError      a stream broke off before it finished

Every error raised after a stream has begun carries ``.partial``: the Response accumulated
so far, so nothing already received is lost. An error the provider reports inside a stream
(Anthropic's ``event: error``, an OpenAI chunk holding ``{"error": …}``, a Gemini error
object, a failed Responses reply) has the class the same error answered with an HTTP status
would have — an ``overloaded_error`` is an OverloadedError — with ``status_code`` None.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, TypedDict, Unpack

from . import secrets as _secrets
from .request_errors import (
    BudgetExceededError,
    CallmError,
    ConfigurationError,
    InvalidRequestError,
    RequestVetoed,
)

if TYPE_CHECKING:
    from .types import Message, Response

__all__ = [
    "APIConnectionError",
    "APIError",
    "APIResponseError",
    "APIStatusError",
    "APITimeoutError",
    "AuthenticationError",
    "BadRequestError",
    "BudgetExceededError",
    "CallmError",
    "ConfigurationError",
    "ConflictError",
    "ContextWindowExceededError",
    "InternalServerError",
    "InvalidRequestError",
    "MaxStepsExceededError",
    "NotFoundError",
    "OverloadedError",
    "PermissionDeniedError",
    "RateLimitError",
    "RequestVetoed",
    "StreamInterruptedError",
    "StructuredOutputError",
]


class StructuredOutputError(CallmError):
    """The reply did not validate against the requested ``output=`` type, even after re-asking.

    ``text`` is the raw reply, ``errors`` the validation errors (one string each) and
    ``response`` the last Response, so nothing is lost.
    """

    def __init__(
        self, message: str, *, text: str, errors: list[str], response: Response | None = None
    ) -> None:
        super().__init__(message)
        self.text = text
        self.errors = errors
        self.response = response


class MaxStepsExceededError(CallmError):
    """Client.run() used ``max_steps`` model calls and the model still wants tools.

    ``transcript`` holds every message so far and ``response`` the last reply.
    """

    def __init__(
        self, message: str, *, transcript: tuple[Message, ...], response: Response | None = None
    ) -> None:
        super().__init__(message)
        self.transcript = transcript
        self.response = response


class ErrorFields(TypedDict, total=False):
    """The keyword arguments of :class:`APIError`, for the subclasses that add their own."""

    provider: str | None
    status_code: int | None
    request_id: str | None
    body: object
    code: str | None
    partial: Response | None
    headers: Mapping[str, str] | None


class APIError(CallmError):
    """Something went wrong talking to a provider."""

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        body: object = None,
        code: str | None = None,
        partial: Response | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        # A server may echo the key it was sent: known secrets never reach a message.
        message = _secrets.scrub(message)
        super().__init__(message)
        self.message = message
        self.provider = provider
        self.status_code = status_code
        self.request_id = request_id
        self.body = body
        self.code = code
        self.partial = partial
        # The response headers (rate-limit counters, retry hints), empty when none arrived.
        self.headers: Mapping[str, str] = headers if headers is not None else {}

    @property
    def body(self) -> object:
        """The provider's error answer (parsed JSON, or its text), known secrets scrubbed."""
        return self._body

    @body.setter
    def body(self, value: object) -> None:
        self._body = _secrets.scrub_json(value)

    def __str__(self) -> str:
        where = f"{self.provider}: " if self.provider else ""
        status = f"HTTP {self.status_code}: " if self.status_code else ""
        rid = f" (request id {self.request_id})" if self.request_id else ""
        return f"{where}{status}{self.message}{rid}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"


class APIStatusError(APIError):
    """The provider answered with an HTTP error status."""


class BadRequestError(APIStatusError):
    """The provider rejected the request as malformed (400 / 422)."""


class ContextWindowExceededError(BadRequestError):
    """The prompt plus max_tokens does not fit the model's context window."""


class AuthenticationError(APIStatusError):
    """The API key was refused (401)."""


class PermissionDeniedError(APIStatusError):
    """The key is valid but may not do this (403)."""


class NotFoundError(APIStatusError):
    """The model or endpoint does not exist (404)."""


class ConflictError(APIStatusError):
    """The provider reported a conflict (409); retried by default."""


class RateLimitError(APIStatusError):
    """Too many requests or tokens (429). ``retry_after`` is the server's hint in seconds."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, **kw: Unpack[ErrorFields]
    ) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class InternalServerError(APIStatusError):
    """The provider failed (5xx)."""


class OverloadedError(InternalServerError):
    """The provider is overloaded (529 / 503); try later or another model."""


class APIResponseError(APIError):
    """A response callm could not read, or an error the provider reported inside a stream."""


class APIConnectionError(APIError):
    """The provider could not be reached, or the connection failed."""


class APITimeoutError(APIConnectionError):
    """The call took longer than its timeout allowed."""


class StreamInterruptedError(APIConnectionError):
    """The stream broke off before the provider finished; ``.partial`` has what arrived."""
