"""Timeouts of a call: connect, read, total, and idle time between stream events."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timeout:
    """How long a call may take, in seconds (``None``: no limit).

    ``connect`` bounds opening the connection, ``read`` each wait for bytes, ``total`` the
    whole call including retries' attempts, and ``idle`` the gap between two stream events
    (keep-alive comments do not count as events).
    """

    connect: float | None = 5.0
    read: float | None = 600.0
    total: float | None = None
    idle: float | None = None

    @classmethod
    def of(cls, value: float | Timeout | None) -> Timeout:
        """A Timeout from a number of seconds (read and total), a Timeout, or None (no limit)."""
        if isinstance(value, Timeout):
            return value
        if value is None:
            return cls(connect=None, read=None)
        return cls(connect=min(5.0, value), read=value, total=value)


DEFAULT_TIMEOUT = Timeout()
