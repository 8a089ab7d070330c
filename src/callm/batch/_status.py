"""Where a batch job stands, read from the store: counts, failures, provider batches."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._store._batches import failed_items, find_job, job_counts
from ._job import BatchError

if TYPE_CHECKING:
    from .._store import Store


@dataclass(frozen=True, slots=True)
class FailedLine:
    """An input line that failed after every retry."""

    line: int
    id: Any
    error_type: str
    message: str
    status_code: int | None


@dataclass(frozen=True, slots=True)
class BatchStatus:
    """A batch job as stored: its files, counts, spend and failed lines."""

    output: str
    input: str
    mode: str
    total: int
    done: int
    failed: int
    input_tokens: int
    output_tokens: int
    cost: Decimal
    unpriced: int
    created: datetime
    updated: datetime
    failures: tuple[FailedLine, ...]
    provider_batches: tuple[dict[str, Any], ...] = ()

    @property
    def pending(self) -> int:
        return self.total - self.done - self.failed


def status(output: str | Path, *, refresh: bool = False, store: Store | None = None) -> BatchStatus:
    """The stored state of the job that writes ``output``; BatchError when there is none.

    ``refresh`` first asks the providers how their batches of the job are doing (for a
    ``--provider-batch`` job), so the states shown are current; nothing is collected.
    """
    from .._config.settings import callm_home
    from .._store import Store

    own = store is None
    db = store or Store(callm_home() / "callm.db")
    try:
        if refresh:
            _refresh(db, Path(output))
        return _status(db, Path(output))
    finally:
        if own:
            db.close()


def _refresh(store: Store, output: Path) -> None:
    job = find_job(store, str(output.resolve()))
    if job is None or job.mode != "provider":
        return
    from .._client import Client
    from ._provider import poll_only

    with Client() as client:
        poll_only(client, store, job)


def _status(store: Store, output: Path) -> BatchStatus:
    job = find_job(store, str(output.resolve()))
    if job is None:
        raise BatchError(f"no batch writes to {output}; start one with `callm batch IN -o OUT`")
    counts = job_counts(store, job.id)
    failures = tuple(
        _failed(line, item_id, error) for line, item_id, error in failed_items(store, job.id)
    )
    rows = store._read(
        "SELECT provider, batch_id, model, state, detail, submitted FROM provider_batches "
        "WHERE job_id = ? ORDER BY submitted",
        (job.id,),
    )
    batches = tuple(
        {"provider": p, "batch_id": b, "model": m, "state": s, "submitted": t, **json.loads(d)}
        for p, b, m, s, d, t in rows
    )
    return BatchStatus(
        output=job.output,
        input=job.input,
        mode=job.mode,
        total=job.total,
        done=counts.done,
        failed=counts.failed,
        input_tokens=counts.input_tokens,
        output_tokens=counts.output_tokens,
        cost=counts.cost,
        unpriced=counts.unpriced,
        created=job.created,
        updated=job.updated,
        failures=failures,
        provider_batches=batches,
    )


def _failed(line: int, item_id: str, error: str) -> FailedLine:
    detail = json.loads(error)
    return FailedLine(
        line=line,
        id=json.loads(item_id),
        error_type=detail.get("type", "Error"),
        message=detail.get("message", ""),
        status_code=detail.get("status_code"),
    )
