"""``CallLog``: writes call records to the store off the call path.

``log(record)`` only appends the record to a queue and returns: about a microsecond, never
blocking, callable from any thread or asyncio task. ``log_call`` goes further and defers
building the record (serialising the request) too: redaction and JSON encoding never
happen on the call path. One daemon thread writes the rows out in batches, one transaction
per batch: a record is written within ``flush_interval`` seconds, or sooner when
``batch_size`` records are waiting. The writer is woken only by the first record after it
went idle, by a full batch, and by :meth:`CallLog.flush`, so a busy caller pays no thread
wake-up per record.

Building a row is Python work, and a writer thread doing it competes with the callers for
the GIL. So the transports lend a hand: while records wait, :class:`CallLogPolicy` gives
each request of its client the log's helper (the request's ``on_wait`` extension, see
:class:`callm._core.http.Extensions`), which builds the oldest waiting record. The sync
transport calls it between sending a request and reading its answer — time the caller would
only spend waiting for the server — and the async one as it starts a request, in the event
loop's own thread. In a steady stream of calls every record is built that way, and the
writer thread is left with the inserts, during which SQLite releases the GIL. Calls over a
caller's own httpx2 client leave the building to the writer thread.

Nothing is lost at a normal exit: an ``atexit`` hook flushes every open log, and the daemon
thread never keeps the process alive. Records still queued when a process is killed
(SIGKILL, ``os._exit``) are lost. A database locked past its busy timeout (another process
writing for long) or on a full disk keeps its records in memory, tried again with a growing
pause while the process lives (up to ``MAX_KEPT`` records; at exit, for ``EXIT_PATIENCE``
seconds). One the process cannot use (damaged, read-only, a newer schema) drops them. Either
way the ``callm`` logger says it once, in one line, and ``dropped`` counts what was lost.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import queue
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Unpack

from .._store import NOT_SAVED, CallRecord, RecordDetails, Store, StoreError, warn_once
from .._store._db import Row, call_row, call_row_of
from .base import Attempt, Policy

if TYPE_CHECKING:
    from .._core.types import Request, Response

logger = logging.getLogger("callm")
StoreSource = Store | Callable[[], Store] | Path | str | None
# What log() takes: a record, or a function that builds a record or its row.
Loggable = CallRecord | Callable[[], CallRecord | Row]


class _Flush:
    """A marker on the queue: every record before it is written when ``done`` is set."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = threading.Event()


_STOP = object()
# Records kept for a database that is locked (or on a full disk) at most, and the longest
# pause between two tries; after a stop, how long the writer keeps trying (seconds).
MAX_KEPT = 20_000
_MAX_PAUSE_S = 5.0
EXIT_PATIENCE = 20.0
_live: weakref.WeakSet[CallLog] = weakref.WeakSet()
# Stores opened before a fork, kept referenced in the child so their connections are
# never closed there (SQLite connections must not be used across fork).
_inherited: list[Store] = []


class CallLog:
    """An asynchronous, batching writer of :class:`CallRecord` rows.

    ``store`` is a :class:`Store` (used, never closed here), a function that opens one, a
    path, or None for the default database — the last three are opened by the writer
    thread on the first record and closed by :meth:`close`. Close the log (or use it as a
    context manager) when done; one dropped without closing stops its thread once garbage
    collected, and every open log is flushed at interpreter exit. :meth:`log` after
    :meth:`close` raises RuntimeError.
    """

    def __init__(
        self,
        store: StoreSource = None,
        *,
        flush_interval: float = 0.5,
        batch_size: int = 100,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._source = store
        self._closed = False
        self._setup(_Writer(store, flush_interval, batch_size))
        _live.add(self)

    def _setup(self, writer: _Writer) -> None:
        self._writer = writer
        self._queue = writer.queue
        self._batch_size = writer.batch_size
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        # Dropped without close(): the writer (which does not reference this log) stops.
        weakref.finalize(self, writer.stop).atexit = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"CallLog({self._source!r}, {state})"

    def __enter__(self) -> CallLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def dropped(self) -> int:
        """How many records were lost: refused by the database or failing to build."""
        return self._writer.dropped

    def log(self, record: Loggable) -> None:
        """Queue ``record`` for writing and return at once (thread- and asyncio-safe).

        ``record`` may also be a function that builds the record (or directly its row, as
        :meth:`log_call` does), called in the writer
        thread (see :meth:`log_call`)."""
        if self._thread is None:
            self._start()
        writer = self._writer
        writer.pending.append(record)
        # Records the transports already built into rows wait all the same.
        full = len(writer.pending) + len(writer.rows) >= self._batch_size and not writer.held
        if full or writer.idle:
            writer.wake(urgent=full)

    def log_call(
        self, request: Request, *, provider: str, **details: Unpack[RecordDetails]
    ) -> None:
        """Log a call without building its record here: its row (``CallRecord.of(request, …)``
        as the store writes it) is made later, off the call path, so even a long
        conversation costs the caller a few microseconds. The record's time is taken now."""
        if "time" not in details:
            details["time"] = datetime.now(UTC)
        self.log(partial(call_row_of, request, provider=provider, **details))

    def helper(self) -> Callable[[], None] | None:
        """What a request's transport may call while its caller waits for the server — it
        builds the oldest waiting record — or None when no record waits (so that idle logs
        cost requests nothing)."""
        writer = self._writer
        return writer.help if writer.pending else None

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record logged so far is written, dropped, or — the database
        locked — kept for the next try; False on timeout."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            return True
        marker = _Flush()
        self._queue.put(marker)
        self._writer.wake(urgent=True)
        return marker.done.wait(timeout)

    def close(self, timeout: float | None = None) -> None:
        """Write what is queued, stop the writer thread, close the store if this log opened it."""
        with self._start_lock:
            if self._closed:
                return
            self._closed = True
            thread, self._thread = self._thread, None
        if thread is not None and thread.is_alive():
            self._writer.stop()
            thread.join(timeout)
        _live.discard(self)

    def _start(self) -> None:
        with self._start_lock:
            if self._closed:
                raise RuntimeError("this CallLog is closed: records can no longer be logged")
            if self._thread is not None:
                return
            # A daemon thread: the process never waits for it; the atexit hook flushes.
            thread = threading.Thread(target=self._writer.run, name="callm-calllog", daemon=True)
            thread.start()
            self._thread = thread

    def _after_fork(self) -> None:
        # The child has a copy of the queue but no writer thread, and must not use the
        # parent's connection: start afresh (what the parent queued is the parent's to write).
        old = self._writer
        if old.store is not None and old.owns_store:
            _inherited.append(old.store)
        self._setup(_Writer(self._source, old.flush_interval, old.batch_size))


class _Writer:
    """The writer thread's side: sleeps until there is work, writes it in batches.

    Records wait in ``pending``; rows built from them (redacted, ready to insert) in
    ``rows``. Both are guarded by ``lock``, taken by the writer thread and by callers
    lending a hand (:meth:`help`). ``queue`` carries only flush and stop markers.
    """

    def __init__(self, source: StoreSource, flush_interval: float, batch_size: int) -> None:
        self.queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.pending: deque[Loggable] = deque()
        self.rows: list[tuple[Any, ...]] = []
        self.lock = threading.Lock()
        self.source = source
        self.store: Store | None = source if isinstance(source, Store) else None
        self.owns_store = not isinstance(source, Store)
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.dropped = 0
        # Rows kept in ``rows`` for a locked database: tried again after ``pause`` seconds
        # (or at a flush), not at every new record.
        self.held = False
        self.pause = 0.0
        self.stop_by: float | None = None  # after a stop: when to give up on kept rows
        # True while the thread waits for a first record: only then must log() wake it.
        self.idle = False
        # Set by a flush, a stop or a full batch: write now, without waiting the interval.
        self.urgent = False
        self._event = threading.Event()

    def wake(self, *, urgent: bool) -> None:
        if urgent:
            self.urgent = True
        self._event.set()

    def stop(self) -> None:
        self.queue.put(_STOP)
        self.wake(urgent=True)

    def help(self) -> None:
        """A caller's request is on its way: build the oldest record while the server works.

        Called by the sync transport between sending a request and reading its answer, so
        the work fills time the caller would spend waiting; never blocks (a busy lock means
        the writer thread is at it)."""
        if self.pending and self.lock.acquire(blocking=False):
            try:
                if self.pending:
                    self._build(self.pending.popleft())
            finally:
                self.lock.release()

    def run(self) -> None:
        try:
            while True:
                self._wait_for_work()
                if self._drain():
                    return
        finally:
            if self.store is not None and self.owns_store:
                self.store.close()

    def _wait_for_work(self) -> None:
        """Sleep until a record arrives, then up to ``flush_interval`` more for others; with
        rows kept for a locked database, sleep the pause before the next try."""
        if self.held:
            self._event.wait(self.pause)  # a flush or a stop comes in earlier
            self._event.clear()
            return
        self.idle = True
        if not self.pending and self.queue.empty():  # after idle is set: no missed wake-up
            self._event.wait()
        self.idle = False
        self._event.clear()
        # A flush, stop or full batch that came before the clear is still seen here.
        if not self.urgent:
            self._event.wait(self.flush_interval)
            self._event.clear()

    def _drain(self) -> bool:
        """Write everything logged so far; True once stopped with nothing left to try."""
        self.urgent = False
        markers: list[object] = []
        with contextlib.suppress(queue.Empty):
            while True:
                markers.append(self.queue.get_nowait())
        with self.lock:
            while self.pending:
                self._build(self.pending.popleft())
            rows, self.rows = self.rows, []
        kept = self._write_all(rows)
        if kept:
            with self.lock:
                self.rows[:0] = kept  # before anything built meanwhile: order is kept
        self.held = bool(kept)
        self.pause = min(_MAX_PAUSE_S, max(0.05, self.pause * 2)) if kept else 0.0
        for marker in markers:
            if isinstance(marker, _Flush):
                marker.done.set()
        if _STOP in markers and self.stop_by is None:
            self.stop_by = time.monotonic() + EXIT_PATIENCE
        return self.stop_by is not None and self._stop_now()

    def _stop_now(self) -> bool:
        """Stopped: done when nothing is kept, or the kept rows have waited long enough."""
        if not self.held:
            return True
        if self.stop_by is not None and time.monotonic() < self.stop_by:
            return False
        with self.lock:
            lost, self.rows = len(self.rows), []
        self.dropped += lost
        logger.warning(
            "callm: %d call log records were not written (the database stayed locked)", lost
        )
        return True

    def _build(self, item: Loggable) -> None:
        """Add the redacted row of a record (or of what a function builds); hold lock."""
        try:
            built = item if isinstance(item, CallRecord) else item()
            self.rows.append(built if isinstance(built, tuple) else call_row(built))
        except Exception:
            self.dropped += 1
            logger.warning("callm: a call log record could not be built", exc_info=True)

    def _write_all(self, rows: list[Row]) -> list[Row]:
        """Write ``rows`` in batches; return those kept for a later try (a locked database)."""
        for start in range(0, len(rows), self.batch_size):
            batch = rows[start : start + self.batch_size]
            try:
                self._opened_store().insert_call_rows(batch)
            except StoreError as error:
                if error.retryable:
                    warn_once(error, "the call log keeps its records and tries again")
                    return self._keep(rows[start:])
                warn_once(error, NOT_SAVED)
                self.dropped += len(batch)
            except Exception:
                self.dropped += len(batch)
                logger.warning("callm: %d call log records dropped", len(batch), exc_info=True)
        return []

    def _keep(self, rows: list[Row]) -> list[Row]:
        """``rows`` to try again, the oldest dropped beyond ``MAX_KEPT`` (memory is finite)."""
        excess = min(len(rows), len(rows) + len(self.rows) - MAX_KEPT)
        if excess > 0:
            self.dropped += excess
            logger.warning("callm: %d call log records dropped (the database stays locked)", excess)
            return rows[excess:]
        return rows

    def _opened_store(self) -> Store:
        # Opened on the first batch, and tried again on each later one after a failure.
        if self.store is None:
            self.store = _open(self.source)
        return self.store


def _open(source: StoreSource) -> Store:
    if isinstance(source, Store):
        return source
    return source() if callable(source) else Store(source)


@atexit.register
def _flush_all_at_exit() -> None:
    # Daemon threads still run while atexit hooks do, so each writer can finish its queue.
    for log in list(_live):
        log.close(timeout=30)


def _reset_in_child() -> None:
    for log in list(_live):
        log._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_in_child)


# --- the policy ---------------------------------------------------------------------------

_call_logs: dict[str, CallLog] = {}


def shared_call_log(path: Path) -> CallLog:
    """One writer per database file, shared by every client of the process."""
    key = str(path)
    log = _call_logs.get(key)
    if log is None:
        log = _call_logs[key] = CallLog(path)
    return log


class CallLogPolicy(Policy):
    """Every attempt, answered, failed or abandoned, becomes a row of the call log.

    ``default`` says whether calls are logged when they do not say (``log=``); the writer
    of ``path`` is opened on the first record. While records wait to be built, each request
    carries the log's helper (its ``on_wait`` extension) for the transport to call.
    """

    def __init__(self, path: Path, default: bool) -> None:
        self.path = path
        self.default = default
        self._key = str(path)

    def __repr__(self) -> str:
        return f"CallLogPolicy({str(self.path)!r}, default={self.default})"

    def prepare(self, attempt: Attempt) -> None:
        # The process's writer of this database, whichever client made it, if any yet.
        log = _call_logs.get(self._key)
        if log is not None and attempt.http is not None:
            helper = log.helper()
            if helper is not None:
                attempt.http.extensions["on_wait"] = helper

    def succeeded(
        self, attempt: Attempt, response: Response, headers: Mapping[str, str]
    ) -> Response:
        self._write(attempt, response, None)
        return response

    def failed(self, attempt: Attempt, error: BaseException) -> None:
        self._write(attempt, getattr(error, "partial", None), error)

    def abandoned(self, attempt: Attempt, partial: Response) -> None:
        self._write(attempt, partial, None, cancelled=True)

    def flush(self) -> None:
        log = _call_logs.get(self._key)
        if log is not None:
            log.flush()

    def _write(
        self,
        attempt: Attempt,
        response: Response | None,
        error: BaseException | None,
        *,
        cancelled: bool = False,
    ) -> None:
        """Queue the call's record; a writer thread builds and stores it off the call path."""
        if not attempt.params.get("log", self.default):
            return
        try:
            info = attempt.info
            provider, model = attempt.provider_model
            shared_call_log(self.path).log_call(
                info.request,
                provider=provider,
                model=model,
                response=response,
                error=error,
                tags=info.tags,
                conversation_id=info.conversation_id,
                streamed=info.streamed,
                cached=attempt.cached,
                embed=info.embed,
                cancelled=cancelled,
            )
        except Exception:  # the log must never break a call
            logger.warning("callm: could not write the call log", exc_info=True)
