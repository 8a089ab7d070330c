"""A hint from the transports: a request is on its way, its answer not yet read.

The sync transport gives it between sending a request and reading the answer, when the
caller only waits for the server; the async one as a request starts, in the event loop's
thread. Background work that would otherwise compete with the caller for the GIL (building
call log rows) is done right there, in the caller's own thread: each listener gets a short
turn. With no listener this costs one list test. Kept apart so the transports import
nothing heavy.
"""

from __future__ import annotations

from collections.abc import Callable

listeners: list[Callable[[], None]] = []


def network_wait() -> None:
    """Give each listener its turn (see the module docstring for when transports call it)."""
    for listener in listeners:
        listener()
