"""Batch jobs in the store: what each output file answers, and every line's outcome.

A job is keyed by its output file. Each answered line is committed here *before* its line is
appended to the output, and marked written (with the output's new length) after the output is
synced; so after any crash the output is cut back to the recorded length and the committed but
unwritten results are written again — no result is lost, none is written twice, and no line
that has a committed result is ever sent again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, NamedTuple

from ._db import iso_time
from ._record import new_id

if TYPE_CHECKING:
    from ._db import Store

_PAGE = 2048  # lines read per query when walking a job's finished lines


@dataclass(frozen=True, slots=True)
class BatchJob:
    """One batch job: which input it answers into which output, and how far it got."""

    id: str
    output: str
    input: str
    fingerprint: str
    total: int
    mode: str
    options: Mapping[str, Any]
    output_bytes: int
    created: datetime
    updated: datetime


class ItemOutcome(NamedTuple):
    """The outcome of one input line, as committed."""

    line: int
    item_id: str  # JSON text of the line's id
    status: str  # "done" or "failed"
    result: str | None  # the output line (JSON text, no newline) when done
    error: str | None  # JSON text: {"type", "message", "status_code"} when failed
    input_tokens: int = 0
    output_tokens: int = 0
    cost: Decimal | None = None


@dataclass(frozen=True, slots=True)
class JobCounts:
    """How many lines of a job are done and failed, their tokens and their known cost."""

    done: int
    failed: int
    input_tokens: int
    output_tokens: int
    cost: Decimal
    unpriced: int


_JOB_COLUMNS = (
    "id, output, input, fingerprint, total, mode, options, output_bytes, created, updated"
)


def _job(row: Sequence[Any]) -> BatchJob:
    id_, output, input_, fingerprint, total, mode, options, size, created, updated = row
    return BatchJob(
        id=id_,
        output=output,
        input=input_,
        fingerprint=fingerprint,
        total=total,
        mode=mode,
        options=json.loads(options),
        output_bytes=size,
        created=datetime.fromisoformat(created),
        updated=datetime.fromisoformat(updated),
    )


def find_job(store: Store, output: str) -> BatchJob | None:
    """The job that writes to ``output`` (an absolute path), or None."""
    rows = store._read(f"SELECT {_JOB_COLUMNS} FROM batch_jobs WHERE output = ?", (output,))
    return _job(rows[0]) if rows else None


def all_jobs(store: Store) -> list[BatchJob]:
    """Every job, the latest first."""
    rows = store._read(f"SELECT {_JOB_COLUMNS} FROM batch_jobs ORDER BY updated DESC")
    return [_job(row) for row in rows]


def create_job(
    store: Store,
    *,
    output: str,
    input: str,
    fingerprint: str,
    total: int,
    mode: str,
    options: Mapping[str, Any],
) -> BatchJob:
    """A new job for ``output``, replacing any earlier one (its lines and batches too)."""
    now = iso_time(datetime.now(UTC))
    job_id = new_id()
    with store._write() as db:
        _delete(db, output)
        db.execute(
            f"INSERT INTO batch_jobs ({_JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?)",
            (job_id, output, input, fingerprint, total, mode, json.dumps(dict(options)), now, now),
        )
    job = find_job(store, output)
    assert job is not None
    return job


def delete_job(store: Store, output: str) -> bool:
    """Forget the job of ``output`` and everything recorded for it; False when none."""
    with store._write() as db:
        return _delete(db, output)


def _delete(db: Any, output: str) -> bool:
    rows = db.execute("SELECT id FROM batch_jobs WHERE output = ?", (output,)).fetchall()
    for (job_id,) in rows:
        for table in ("batch_items", "provider_batches"):
            db.execute(f"DELETE FROM {table} WHERE job_id = ?", (job_id,))
        db.execute("DELETE FROM batch_jobs WHERE id = ?", (job_id,))
    return bool(rows)


def finished_lines(store: Store, job_id: str, *, include_failed: bool) -> Iterator[int]:
    """The line numbers that need no call, ascending, read a page at a time (flat memory):
    the answered ones, and the failed ones too when ``include_failed``."""
    statuses = ("done", "failed") if include_failed else ("done", "done")
    last = 0
    while True:
        page = store._read(
            "SELECT line FROM batch_items WHERE job_id = ? AND line > ? "
            "AND status IN (?, ?) ORDER BY line LIMIT ?",
            (job_id, last, *statuses, _PAGE),
        )
        for (line,) in page:
            yield line
        if len(page) < _PAGE:
            return
        last = page[-1][0]


def record_outcomes(store: Store, job_id: str, outcomes: Sequence[ItemOutcome]) -> None:
    """Commit the outcomes of finished lines (not yet written to the output)."""
    rows = [
        (job_id, o.line, o.item_id, o.status, o.result, o.error, o.input_tokens,
         o.output_tokens, None if o.cost is None else str(o.cost))
        for o in outcomes
    ]  # fmt: skip
    with store._write() as db:
        db.executemany(
            "INSERT INTO batch_items (job_id, line, item_id, status, result, error, "
            "input_tokens, output_tokens, cost) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (job_id, line) DO UPDATE SET status = excluded.status, "
            "result = excluded.result, error = excluded.error, written = 0, "
            "attempts = attempts + 1, input_tokens = excluded.input_tokens, "
            "output_tokens = excluded.output_tokens, cost = excluded.cost",
            rows,
        )
        db.execute(
            "UPDATE batch_jobs SET updated = ? WHERE id = ?",
            (iso_time(datetime.now(UTC)), job_id),
        )


def unwritten_results(store: Store, job_id: str) -> list[tuple[int, str]]:
    """(line, output line) of answered lines not yet in the output file, by line."""
    rows = store._read(
        "SELECT line, result FROM batch_items WHERE job_id = ? AND written = 0 "
        "AND status = 'done' ORDER BY line",
        (job_id,),
    )
    return [(line, result) for line, result in rows]


def mark_written(store: Store, job_id: str, lines: Sequence[int], output_bytes: int) -> None:
    """Record that ``lines`` are in the output, now ``output_bytes`` long; their stored
    copies are dropped (the output holds them)."""
    with store._write() as db:
        db.executemany(
            "UPDATE batch_items SET written = 1, result = NULL WHERE job_id = ? AND line = ?",
            [(job_id, line) for line in lines],
        )
        db.execute(
            "UPDATE batch_jobs SET output_bytes = ?, updated = ? WHERE id = ?",
            (output_bytes, iso_time(datetime.now(UTC)), job_id),
        )


def job_counts(store: Store, job_id: str) -> JobCounts:
    """Done and failed lines of the job, with their tokens and known cost."""
    [(done, failed, inp, out, unpriced)] = store._read(
        "SELECT COALESCE(SUM(status = 'done'), 0), COALESCE(SUM(status = 'failed'), 0), "
        "COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
        "COALESCE(SUM(status = 'done' AND cost IS NULL), 0) "
        "FROM batch_items WHERE job_id = ?",
        (job_id,),
    )
    costs = store._read(
        "SELECT cost FROM batch_items WHERE job_id = ? AND cost IS NOT NULL", (job_id,)
    )
    total = sum((Decimal(c) for (c,) in costs), Decimal(0))
    return JobCounts(done, failed, inp, out, total, unpriced)


def failed_items(store: Store, job_id: str) -> list[tuple[int, str, str]]:
    """(line, id JSON, error JSON) of every failed line, by line."""
    rows = store._read(
        "SELECT line, item_id, error FROM batch_items WHERE job_id = ? AND status = 'failed' "
        "ORDER BY line",
        (job_id,),
    )
    return [(line, item_id, error) for line, item_id, error in rows]


__all__ = [
    "BatchJob",
    "ItemOutcome",
    "JobCounts",
    "all_jobs",
    "create_job",
    "delete_job",
    "failed_items",
    "find_job",
    "finished_lines",
    "job_counts",
    "mark_written",
    "record_outcomes",
    "unwritten_results",
]
