"""A hint from the sync transport: a request is sent and its answer not yet read.

Between the two the caller only waits for the server, so background work that would
otherwise compete with it for the GIL (building call log rows) can be done right there,
in the caller's own thread, without slowing the call: each listener gets a short turn.
With no listener this costs one list test. Kept apart so the transports import nothing
heavy.
"""

from __future__ import annotations

from collections.abc import Callable

listeners: list[Callable[[], None]] = []


def network_wait() -> None:
    """Give each listener its turn; called between sending a request and reading the answer."""
    for listener in listeners:
        listener()
