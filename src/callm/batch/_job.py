"""Starting or resuming a batch job: check the input and output, repair the output.

The output file names the job. Running the same command again resumes it; a different
input for the same output is refused (``restart`` starts over), and so is an output callm
did not write. On resume the output is cut back to the length the store recorded (dropping
a line half-written at a crash) and answers committed but not yet written are written.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .._core.errors import CallmError
from .._store._batches import (
    BatchJob,
    create_job,
    delete_job,
    find_job,
    finished_lines,
    mark_written,
    unwritten_results,
)
from ._input import scan

if TYPE_CHECKING:
    from .._store import Store


_MODES = {"direct": "direct calls", "provider": "providers' Batch APIs"}


class BatchError(CallmError):
    """A batch cannot start or go on as asked; the message says what to do."""


def prepare_job(
    store: Store, input: Path, output: Path, options: Any, *, mode: str = "direct"
) -> BatchJob:
    """The job writing ``output``: resumed when it answers this same input, else new.

    ``mode`` is ``"direct"`` (calls made here) or ``"provider"`` (the providers' Batch
    APIs); a job keeps its mode: resuming it the other way is refused.
    """
    if not input.is_file():
        raise BatchError(f"{input}: no such input file")
    fingerprint, total = scan(input)
    out = str(output.resolve())
    if options.restart:
        delete_job(store, out)
        output.unlink(missing_ok=True)
    job = find_job(store, out)
    if job is not None and job.fingerprint != fingerprint:
        raise BatchError(
            f"{output} holds the answers to another input ({job.input}, or an earlier version "
            f"of it); run with --restart to start over, or choose another -o"
        )
    if job is not None and job.mode != mode:
        flag = "with" if job.mode == "provider" else "without"
        raise BatchError(
            f"{output} is being answered through the {_MODES[job.mode]}; run it again {flag} "
            "--provider-batch, or --restart it"
        )
    if job is None:
        if output.exists() and output.stat().st_size > 0:
            raise BatchError(
                f"{output} already exists and was not written by callm batch; choose another "
                "-o, or pass --restart to overwrite it"
            )
        settings = {k: v for k, v in asdict(options).items() if k not in ("restart",)}
        job = create_job(
            store,
            output=out,
            input=str(input.resolve()),
            fingerprint=fingerprint,
            total=total,
            mode=mode,
            options=settings,
        )
    return job


@contextlib.contextmanager
def open_output(store: Store, job: BatchJob) -> Iterator[BinaryIO]:
    """The output file, locked for this process, repaired, positioned at its end."""
    fd = os.open(job.output, os.O_RDWR | os.O_CREAT, 0o644)
    out = os.fdopen(fd, "r+b")
    try:
        _lock(out, job.output)
        size = out.seek(0, os.SEEK_END)
        if size < job.output_bytes:
            raise BatchError(
                f"{job.output} is shorter than the answers callm wrote to it ({size} bytes, "
                f"not {job.output_bytes}): was it edited? Run with --restart to start over"
            )
        out.truncate(job.output_bytes)
        out.seek(job.output_bytes)
        _write_unwritten(store, job, out)
        yield out
    finally:
        out.close()


def _lock(out: BinaryIO, name: str) -> None:
    try:
        import fcntl
    except ImportError:  # Windows: no advisory locks; one writer is the user's to ensure
        return
    try:
        fcntl.flock(out.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise BatchError(f"another callm batch is writing {name}; wait for it to end") from None


def _write_unwritten(store: Store, job: BatchJob, out: BinaryIO) -> None:
    """Write the answers a crash left committed but not in the output."""
    results = unwritten_results(store, job.id)
    if results:
        out.write("".join(f"{text}\n" for _, text in results).encode())
        out.flush()
        os.fsync(out.fileno())
        mark_written(store, job.id, [line for line, _ in results], out.tell())


def skipped_lines(store: Store, job: BatchJob, retry_failed: bool) -> Iterator[int]:
    """The lines not to send: the answered ones, and the failed ones unless retried."""
    return finished_lines(store, job.id, include_failed=not retry_failed)
