"""``Store``: callm's SQLite database — the call log, spend per scope, the response cache."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time as _time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from decimal import Decimal, localcontext
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, Unpack

from .._config.folders import private_folder
from ._errors import a_folder, cannot_create, unusable
from ._migrations import migrate
from ._record import CallRecord, RecordDetails, record_fields
from ._redact import redact_text, redacted_json_text

if TYPE_CHECKING:
    from .._core.types import Request

SummaryKey = Literal["day", "model", "provider"]
_SUMMARY_KEYS: dict[str, str] = {
    "day": "substr(time, 1, 10)",
    "model": "provider || '/' || model",
    "provider": "provider",
}
_CALL_COLUMNS = (
    "id, time, provider, model, request, response, tool_calls, finish_reason, "
    "input_tokens, output_tokens, cached_input_tokens, cache_write_tokens, reasoning_tokens, "
    "cost, latency_s, ttft_s, status, error, request_id, conversation_id, tags, streamed, cached, "
    "usage_reported"
)
_INSERT_CALL = (
    f"INSERT OR IGNORE INTO calls ({_CALL_COLUMNS}) "
    f"VALUES ({', '.join('?' * len(_CALL_COLUMNS.split(',')))})"
)
Row = tuple[Any, ...]
_RECORD_FIELDS = tuple(f.name for f in fields(CallRecord))
# A call counts as unpriced when it used provider tokens, or tokens nobody reported, but
# has no known cost.
_UNPRICED = (
    "cost IS NULL AND NOT cached AND (input_tokens + output_tokens > 0 OR NOT usage_reported)"
)


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Calls, tokens and spend of one day, model (``provider/model``) or provider.

    Tokens and cost count provider calls only: ``cached_calls`` (answered from callm's
    cache) used no provider tokens. ``known_cost`` sums every known cost exactly;
    ``cost`` is the same sum when every call that used tokens was priced, and None when
    ``unpriced_calls`` > 0, so a total is never understated. A call that failed before
    using any tokens counts as costing nothing.
    """

    key: str
    calls: int
    errors: int
    cached_calls: int
    input_tokens: int
    output_tokens: int
    known_cost: Decimal
    unpriced_calls: int

    @property
    def cost(self) -> Decimal | None:
        return self.known_cost if self.unpriced_calls == 0 else None


class Store:
    """callm's SQLite database, at ``callm_home()/"callm.db"`` unless ``path`` says otherwise.

    Opening a store creates the file and brings its schema up to date (see
    ``callm._store.MIGRATIONS``). The database runs in WAL mode with a busy timeout, so
    several processes can read and write one file at once. One ``Store`` holds one
    connection guarded by a lock: any thread may call any method, and calls from different
    threads take turns (SQLite serialises writers anyway). Open a new ``Store`` in a
    forked child rather than using the parent's.
    """

    def __init__(self, path: Path | str | None = None, *, busy_timeout_s: float = 10.0) -> None:
        if path is None:
            from .._config.settings import callm_home

            path = callm_home() / "callm.db"
        self.path = path if str(path) == ":memory:" else Path(path)
        self._busy_timeout_s = busy_timeout_s
        if isinstance(self.path, Path):
            _private_file(self.path)
        self._lock = threading.RLock()
        try:
            # Autocommit mode: transactions are begun explicitly, IMMEDIATE for writes, so a
            # writer waits for the lock (busy timeout) instead of failing on upgrade.
            self._db = sqlite3.connect(
                self.path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise unusable(self.path, exc, busy_timeout_s) from None
        try:
            _use_wal(self._db, busy_timeout_s)
            # WAL + NORMAL: a commit is durable against a process crash and costs no fsync.
            self._db.execute("PRAGMA synchronous=NORMAL")
            migrate(self._db, where=self.path)
        except sqlite3.Error as exc:
            self._db.close()
            raise unusable(self.path, exc, busy_timeout_s) from None
        except BaseException:
            self._db.close()
            raise

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection; the store cannot be used afterwards."""
        with self._lock:
            self._db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it or, on any failure, nothing (a StoreError)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise unusable(self.path, exc, self._busy_timeout_s) from None

    def _read(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        with self._lock:
            return self._db.execute(sql, tuple(params)).fetchall()

    # -- the call log -------------------------------------------------------------------

    def insert_calls(self, records: Iterable[CallRecord]) -> int:
        """Write records in one transaction, redacted; return how many were written.

        A record whose ``id`` is already stored is skipped, so writing a batch twice is
        harmless.
        """
        return self.insert_call_rows([call_row(r) for r in records])

    def insert_call_rows(self, rows: list[tuple[Any, ...]]) -> int:
        """Write rows made by :func:`call_row` in one transaction (see :meth:`insert_calls`)."""
        with self._write() as db:
            # rowcount: the rows this statement inserted (INSERT OR IGNORE skips known ids).
            return db.executemany(_INSERT_CALL, rows).rowcount

    def insert_call(self, record: CallRecord) -> None:
        """Write one record (see :meth:`insert_calls`)."""
        self.insert_calls((record,))

    def recent_calls(self, limit: int = 20, *, model: str | None = None) -> list[CallRecord]:
        """The latest ``limit`` calls, newest first; ``model`` filters by ``model`` or
        ``provider/model``."""
        where = ""
        params: list[Any] = [limit]
        if model is not None:
            where = "WHERE model = ? OR provider || '/' || model = ?"
            params = [model, model, limit]
        rows = self._read(
            f"SELECT {_CALL_COLUMNS} FROM calls {where} ORDER BY time DESC, rowid DESC LIMIT ?",
            params,
        )
        return [_call_record(row) for row in rows]

    def usage_summary(
        self, by: SummaryKey = "day", since: datetime | None = None
    ) -> list[UsageRow]:
        """Calls, tokens and cost grouped by UTC day, ``provider/model`` or provider,
        ordered by key; ``since`` keeps calls made at or after that time (see
        :class:`UsageRow` for how cost is counted)."""
        if by not in _SUMMARY_KEYS:
            raise ValueError(f"usage_summary(by=...) must be one of {', '.join(_SUMMARY_KEYS)}")
        key = _SUMMARY_KEYS[by]
        params = [iso_time(since or datetime.min.replace(tzinfo=UTC))]
        totals = self._read(
            f"SELECT {key} AS k, COUNT(*), SUM(status != 'ok'), SUM(cached), "
            "SUM(CASE WHEN cached THEN 0 ELSE input_tokens END), "
            "SUM(CASE WHEN cached THEN 0 ELSE output_tokens END), "
            f"SUM({_UNPRICED}) FROM calls WHERE time >= ? GROUP BY k ORDER BY k",
            params,
        )
        costs = self._read(
            f"SELECT {key}, cost FROM calls WHERE cost IS NOT NULL AND NOT cached AND time >= ?",
            params,
        )
        known = _decimal_sums(costs)
        return [
            UsageRow(k, n, err, hits, inp, out, known.get(k, Decimal(0)), unpriced)
            for k, n, err, hits, inp, out, unpriced in totals
        ]

    # -- spend --------------------------------------------------------------------------

    def add_spend(self, scope: str, amount: Decimal | int | str) -> None:
        """Record ``amount`` USD spent by ``scope`` (exact: pass a Decimal, never a float)."""
        value = _exact(amount)
        with self._write() as db:
            db.execute(
                "INSERT INTO spend (scope, amount, time) VALUES (?, ?, ?)",
                (scope, str(value), iso_time(datetime.now(UTC))),
            )

    def spend(self, scope: str, since: datetime | None = None) -> Decimal:
        """The exact total USD ``scope`` has spent (since ``since``, when given)."""
        sql = "SELECT amount FROM spend WHERE scope = ?"
        params: list[Any] = [scope]
        if since is not None:
            sql += " AND time >= ?"
            params.append(iso_time(since))
        with self._lock:
            # Summed in Python as Decimals: SQLite's SUM would go through floats.
            return _decimal_sum(a for (a,) in self._db.execute(sql, params))

    # -- the response cache -------------------------------------------------------------

    def cache_put(self, key: str, value: bytes, ttl_s: float | None) -> None:
        """Store ``value`` under ``key`` for ``ttl_s`` seconds (None: until replaced)."""
        expires = None if ttl_s is None else _time.time() + ttl_s
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO cache (key, value, expires_at) VALUES (?, ?, ?)",
                (key, bytes(value), expires),
            )

    def cache_get(self, key: str) -> bytes | None:
        """The value under ``key``, or None when absent or expired (an expired one is deleted)."""
        rows = self._read("SELECT value, expires_at FROM cache WHERE key = ?", (key,))
        if not rows:
            return None
        value, expires = rows[0]
        if expires is not None and expires <= _time.time():
            with self._write() as db:
                db.execute("DELETE FROM cache WHERE key = ? AND expires_at <= ?", (key, expires))
            return None
        return bytes(value)

    def cache_purge(self) -> int:
        """Delete every expired cache entry; return how many were deleted."""
        with self._write() as db:
            cur = db.execute("DELETE FROM cache WHERE expires_at <= ?", (_time.time(),))
            return cur.rowcount


def _private_file(path: Path) -> None:
    """Make ``path``'s folder (0700) and the file (0600) when missing, whatever the umask:
    prompts, replies and spend are nobody else's to read. A file that exists keeps its mode."""
    if path.is_dir():
        raise a_folder(path)
    if path.exists():
        return
    try:
        private_folder(path.parent)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except OSError as exc:  # a file where a folder should be, a folder it cannot write …
        if path.is_file():  # another process made it first
            return
        raise cannot_create(path, exc) from None
    os.fchmod(fd, 0o600)  # SQLite gives its -wal and -shm files the same mode
    os.close(fd)


def _use_wal(db: sqlite3.Connection, timeout_s: float) -> None:
    """Switch ``db`` to WAL mode (a lasting property of the file) unless it is already.

    Switching needs an exclusive lock, and SQLite answers "database is locked" at once,
    without waiting, when another connection opening the same new file holds a shared lock
    — so wait here instead.
    """
    deadline = _time.monotonic() + timeout_s
    while True:
        try:
            (mode,) = db.execute("PRAGMA journal_mode").fetchone()
            if mode.lower() != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or _time.monotonic() > deadline:
                raise
            _time.sleep(0.005)


def iso_time(moment: datetime) -> str:
    """``moment`` as the stored UTC ISO text (a naive datetime is taken to be UTC)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def call_row(r: CallRecord) -> tuple[Any, ...]:
    """A record as a row of the calls table (see :func:`row_of`)."""
    return row_of({name: getattr(r, name) for name in _RECORD_FIELDS})


def call_row_of(request: Request, *, provider: str, **details: Unpack[RecordDetails]) -> Row:
    """The row of ``CallRecord.of(request, …)``, without building the record."""
    return row_of(record_fields(request, provider=provider, **details))


def row_of(f: Mapping[str, Any]) -> Row:
    """A record's fields as a row of the calls table: the one place free-form text is redacted."""
    cost = f["cost"]
    return (
        f["id"],
        iso_time(f["time"]),
        f["provider"],
        f["model"],
        redacted_json_text(f["request"]),
        None if f["response_text"] is None else redact_text(f["response_text"]),
        redacted_json_text(f["tool_calls"]) if f["tool_calls"] else "[]",
        f["finish_reason"],
        f["input_tokens"],
        f["output_tokens"],
        f["cached_input_tokens"],
        f["cache_write_tokens"],
        f["reasoning_tokens"],
        None if cost is None else str(cost),
        f["latency_s"],
        f["ttft_s"],
        f["status"],
        None if f["error"] is None else redact_text(f["error"]),
        f["request_id"],
        f["conversation_id"],
        redacted_json_text(dict(f["tags"])) if f["tags"] else "{}",
        int(f["streamed"]),
        int(f["cached"]),
        int(f["usage_reported"]),
    )


def _call_record(row: tuple[Any, ...]) -> CallRecord:
    (id_, time, provider, model, request, response, tool_calls, finish, inp, out, cached_in,
     cache_write, reasoning, cost, latency, ttft, status, error, rid, conv, tags, streamed,
     cached, usage_reported) = row  # fmt: skip
    return CallRecord(
        id=id_,
        time=datetime.fromisoformat(time),
        provider=provider,
        model=model,
        request=json.loads(request),
        response_text=response,
        tool_calls=tuple(json.loads(tool_calls)),
        finish_reason=finish,
        input_tokens=inp,
        output_tokens=out,
        cached_input_tokens=cached_in,
        cache_write_tokens=cache_write,
        reasoning_tokens=reasoning,
        cost=None if cost is None else Decimal(cost),
        latency_s=latency,
        ttft_s=ttft,
        status=status,
        error=error,
        request_id=rid,
        conversation_id=conv,
        tags=json.loads(tags),
        streamed=bool(streamed),
        cached=bool(cached),
        usage_reported=bool(usage_reported),
    )


# default=str: a stray non-JSON value (a datetime in extra_body) is logged, not fatal.
# Built once: json.dumps with options builds a new encoder on every call.
def _exact(amount: Decimal | int | str) -> Decimal:
    if isinstance(amount, float):
        raise TypeError("pass spend as a Decimal (or int / str), not a float: floats are inexact")
    value = Decimal(amount)
    if not value.is_finite():
        raise ValueError(f"spend must be a finite amount, not {amount!r}")
    return value


def _decimal_sum(amounts: Iterable[str]) -> Decimal:
    with localcontext() as ctx:
        ctx.prec = 60  # far beyond any real total, so the sum is exact
        return sum((Decimal(a) for a in amounts), Decimal(0))


def _decimal_sums(rows: Iterable[tuple[str, str]]) -> dict[str, Decimal]:
    grouped: dict[str, list[str]] = {}
    for key, amount in rows:
        grouped.setdefault(key, []).append(amount)
    return {key: _decimal_sum(amounts) for key, amounts in grouped.items()}
