"""Total timeouts for blocking sockets: a watchdog thread shuts down overdue sockets.

A blocking socket knows only a timeout per read, so a server that trickles a byte within
each read timeout — the status line, the headers or the body — holds a sync call for as
long as it likes. One daemon thread keeps the deadlines of the requests in flight in a heap
and shuts down the socket of any that passes its own: the blocked read returns at once, and
the transport, seeing :attr:`Deadline.fired`, reports a timeout instead of a broken
connection. Watching costs a lock and a heap push per request; nothing is polled.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import socket
import threading
import time

_clock = time.monotonic
# Released deadlines stay in the heap until they come up; past this many (and half the
# heap), the heap is rebuilt without them, so a long default total cannot grow it unbounded.
_COMPACT_AFTER = 256


class Deadline:
    """One request's deadline; :meth:`bind` the socket it is waiting on."""

    __slots__ = ("at", "fired", "released", "seconds", "sock")

    def __init__(self, at: float, seconds: float) -> None:
        self.at = at
        self.seconds = seconds
        self.sock: socket.socket | None = None
        self.fired = False
        self.released = False


def _shutdown(sock: socket.socket) -> None:
    # The plain socket's shutdown, even for TLS: the fd is woken without touching the SSL
    # object, which the reading thread may be inside. Already closed: nothing waits on it.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._released = 0
        self._thread: threading.Thread | None = None

    def watch(self, seconds: float) -> Deadline:
        deadline = Deadline(_clock() + seconds, seconds)
        with self._lock:
            heapq.heappush(self._heap, (deadline.at, next(self._order), deadline))
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="callm-deadlines", daemon=True
                )
                self._thread.start()
            elif self._heap[0][2] is deadline:
                self._wake.notify()  # the watchdog sleeps until a later deadline
        return deadline

    def bind(self, deadline: Deadline, sock: socket.socket | None) -> None:
        with self._lock:
            deadline.sock = sock
            if deadline.fired and sock is not None:
                _shutdown(sock)

    def release(self, deadline: Deadline) -> bool:
        with self._lock:
            if deadline.fired or deadline.released:
                return deadline.fired
            deadline.released = True
            deadline.sock = None
            self._released += 1
            if self._released > _COMPACT_AFTER and self._released * 2 > len(self._heap):
                self._heap = [entry for entry in self._heap if not entry[2].released]
                heapq.heapify(self._heap)
                self._released = 0
        return False

    def _run(self) -> None:
        with self._lock:
            while True:
                heap = self._heap
                now = _clock()
                while heap and heap[0][0] <= now:
                    deadline = heapq.heappop(heap)[2]
                    if deadline.released:
                        self._released -= 1
                        continue
                    deadline.fired = True
                    if deadline.sock is not None:
                        _shutdown(deadline.sock)
                self._wake.wait(heap[0][0] - now if heap else None)

    def _forked(self) -> None:
        """In a forked child the thread is gone: start afresh."""
        self.__init__()  # type: ignore[misc]


_watchdog = _Watchdog()
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_watchdog._forked)


def watch(seconds: float) -> Deadline:
    """Start watching a request that must be over in ``seconds``."""
    return _watchdog.watch(seconds)


def bind(deadline: Deadline, sock: socket.socket | None) -> None:
    """The socket ``deadline``'s request now waits on (shut down at once if overdue)."""
    _watchdog.bind(deadline, sock)


def release(deadline: Deadline) -> bool:
    """Stop watching; True when the deadline had passed and the socket was shut down."""
    return _watchdog.release(deadline)
