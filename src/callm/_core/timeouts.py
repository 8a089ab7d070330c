"""Timeouts of a call: connect, read, total, and idle time between stream events."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Timeout:
    """How long a call may take, in seconds (``None``: no limit).

    ``connect`` bounds opening the connection, ``read`` each wait for bytes, ``total`` the
    whole call including retries' attempts, and ``idle`` the gap between two stream events
    (keep-alive comments and pings do not count as events).

    The defaults bound every phase: a server that trickles a byte within each read timeout
    is stopped by ``total`` (an hour), and a stream that sends only keep-alives by ``idle``
    (ten minutes, the patience ``read`` gives a silent socket). ``Timeout.of(None)`` lifts
    every limit.
    """

    connect: float | None = 5.0
    read: float | None = 600.0
    total: float | None = 3600.0
    idle: float | None = 600.0

    @classmethod
    def of(cls, value: float | Timeout | None) -> Timeout:
        """A Timeout from a number of seconds (read and total), a Timeout, or None (no limit)."""
        if isinstance(value, Timeout):
            return value
        if value is None:
            return cls(connect=None, read=None, total=None, idle=None)
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            from .errors import InvalidRequestError

            raise InvalidRequestError(
                f"timeout must be a number of seconds above 0, a callm.Timeout or None, "
                f"not {value!r}"
            )
        return cls(connect=min(5.0, value), read=value, total=value, idle=None)

    def within(self, seconds: float) -> Timeout:
        """This timeout with ``total`` cut to the ``seconds`` left of the call."""
        return Timeout(self.connect, self.read, seconds, self.idle)


DEFAULT_TIMEOUT = Timeout()
