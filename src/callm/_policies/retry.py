"""When to retry a failed attempt and how long to wait: pure functions, no sleeping here.

Semantics follow the official SDKs (PROTOCOLS §8): retry 408, 409, 429 and 5xx answers and
connection failures; ``x-should-retry`` overrides the status; a server hint
(``retry-after-ms``, ``retry-after`` in seconds or as an HTTP date) is honoured exactly up to
:data:`MAX_RETRY_AFTER`, and a longer hint is not waited out but surfaced to the caller.
Otherwise back off exponentially with jitter.
"""

from __future__ import annotations

import random
from collections.abc import Mapping

from .._core.errors import APIError, ConflictError, InternalServerError, RateLimitError
from ..protocols._shared.errors import retry_after_of

INITIAL_DELAY = 0.5
MAX_DELAY = 8.0
MAX_RETRY_AFTER = 60.0
RETRYABLE_STATUS = frozenset({408, 409, 429})
# The classes of the retryable statuses, for errors reported inside a stream (no status).
RETRYABLE_TWINS = (ConflictError, RateLimitError, InternalServerError)
_rng = random.Random()  # jitter never disturbs the application's own random state


def should_retry(status: int, headers: Mapping[str, str], hint: float | None = None) -> bool:
    """Whether an error answer is worth another attempt (``hint``: a retry delay from the body)."""
    if hint is None:
        hint = retry_after_of(headers)
    if hint is not None and hint > MAX_RETRY_AFTER:
        return False
    verdict = headers.get("x-should-retry")
    if verdict == "true":
        return True
    if verdict == "false":
        return False
    return status in RETRYABLE_STATUS or status >= 500


def should_retry_error(error: APIError, hint: float | None = None) -> bool:
    """Whether a provider's error answer is worth another attempt.

    An error reported inside a stream before any content has no status of its own: it is
    judged as its HTTP twin (the same class, answered with a status) would be.
    """
    if error.status_code is not None:
        return should_retry(error.status_code, error.headers, hint)
    if hint is not None and hint > MAX_RETRY_AFTER:
        return False
    return isinstance(error, RETRYABLE_TWINS)


def retry_delay(
    retries_taken: int, headers: Mapping[str, str] | None = None, hint: float | None = None
) -> float:
    """Seconds to wait before the next attempt; ``retries_taken`` counts from 0.

    ``hint`` is a delay the provider gave in its error body (Gemini's RetryInfo); the
    headers' ``retry-after-ms`` / ``retry-after`` are read when it is absent.
    """
    if hint is None and headers:
        hint = retry_after_of(headers)
    if hint is not None and 0 < hint <= MAX_RETRY_AFTER:
        return hint
    nominal = min(INITIAL_DELAY * 2.0 ** min(retries_taken, 16), MAX_DELAY)
    return nominal * (1 - 0.25 * _rng.random())
