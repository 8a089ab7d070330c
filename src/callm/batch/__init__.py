"""Run many requests from a JSON Lines file: concurrently, under rate limits, resumably.

::

    import callm.batch

    summary = callm.batch.run("questions.jsonl", "answers.jsonl", concurrency=32, rpm=500)
    print(summary.progress.done, summary.progress.failed, summary.progress.cost)

Each input line is a request (``prompt`` or ``messages``, ``model``, parameters, an optional
``id``); each answered line becomes one output line with the same ``id``, its text, usage,
cost and latency. The state is kept in callm's SQLite store, keyed by the output file: after
an interruption — Ctrl-C, a crash, ``kill -9``, a power cut — the same call finishes the rest,
writing no answer twice and sending no line whose answer was already stored. Lines that
failed (after the client's retries) are recorded with their error (:func:`status`) and sent
again with ``retry_failed=True``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ._job import BatchError
from ._runner import (
    BatchOptions,
    BatchProgress,
    BatchSummary,
    ProgressFn,
    run_batch_async,
)
from ._status import BatchStatus, FailedLine, status

if TYPE_CHECKING:
    from .._client import AsyncClient

__all__ = [
    "BatchError",
    "BatchOptions",
    "BatchProgress",
    "BatchStatus",
    "BatchSummary",
    "FailedLine",
    "arun",
    "run",
    "status",
]


def run(
    input: str | Path,
    output: str | Path,
    *,
    model: str | None = None,
    concurrency: int = 16,
    rpm: float | None = None,
    tpm: float | None = None,
    max_retries: int = 4,
    retry_failed: bool = False,
    restart: bool = False,
    log: bool = False,
    on_progress: ProgressFn | None = None,
    provider_batch: bool = False,
    wait: bool = True,
    on_event: Callable[[str], None] | None = None,
) -> BatchSummary:
    """Answer every line of ``input`` into ``output`` and return the summary.

    ``model`` is used for lines that name none. ``concurrency`` requests are in flight at
    once, within ``rpm`` requests and ``tpm`` tokens a minute for the whole batch; each is
    retried up to ``max_retries`` times on rate limits, overloads, 5xx and dropped
    connections. ``retry_failed`` sends the lines that failed in an earlier run again;
    ``restart`` forgets the job and overwrites ``output``. ``log`` also writes each call to
    the call log (``callm logs``). ``on_progress`` is called a few times a second.

    ``provider_batch`` sends the lines through the providers' own Batch APIs instead (OpenAI,
    Anthropic, Gemini: half the price, answers within 24 hours): they are submitted, their
    batch ids stored, then polled until they end (unless ``wait`` is False) and collected
    into ``output`` in the same format. A later call picks up the stored batches: nothing is
    submitted or collected twice. ``on_event`` gets a line for each submission and collection.
    """
    options = BatchOptions(
        model=model,
        concurrency=concurrency,
        rpm=rpm,
        tpm=tpm,
        max_retries=max_retries,
        retry_failed=retry_failed,
        restart=restart,
        log=log,
    )
    if provider_batch:
        from ._provider import run_provider_batch

        return run_provider_batch(input, output, options=options, wait=wait, report=on_event)
    return asyncio.run(run_batch_async(input, output, options=options, on_progress=on_progress))


async def arun(
    input: str | Path,
    output: str | Path,
    *,
    client: AsyncClient | None = None,
    on_progress: ProgressFn | None = None,
    **options: Any,
) -> BatchSummary:
    """:func:`run` in a running event loop; ``client`` (an AsyncClient) makes the calls
    with its own retries, limits and hooks when given (``rpm``, ``tpm``, ``max_retries``
    are then the client's business)."""
    return await run_batch_async(
        input, output, options=BatchOptions(**options), client=client, on_progress=on_progress
    )
