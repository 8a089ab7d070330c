"""The base of callm's errors and those raised before a request is sent.

None of them carries a reply, so this module imports nothing: the value types (and the
media checks they run) raise these without depending on the rest of the error tree, which
is in :mod:`callm._core.errors` (it re-exports these).
"""

from __future__ import annotations


class CallmError(Exception):
    """Base of every error callm raises."""


class ConfigurationError(CallmError):
    """callm cannot make the call as configured: a missing key, an unknown provider …"""


class InvalidRequestError(CallmError, ValueError):
    """The request cannot be expressed for this provider (e.g. an image in a system message)."""


class BudgetExceededError(CallmError):
    """The call would pass a spend limit of the client's Budget; it was not sent."""


class RequestVetoed(CallmError):
    """Raised by a before-request hook to refuse a call; it is not sent."""
