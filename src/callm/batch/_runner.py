"""Run a batch: every input line through ``AsyncClient.complete``, concurrently, resumably.

A reader feeds a bounded queue, ``concurrency`` workers call the model, and a committer
writes the outcomes every ``_FLUSH_S``: first into the store, then onto the output (synced),
then the store records the output's new length (see :mod:`callm._store._batches`). Memory
stays flat whatever the input's size: at most ``2 * concurrency`` lines are read ahead and
one flush's worth of results is held.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._core.errors import APIError, CallmError
from .._store._batches import (
    ItemOutcome,
    JobCounts,
    job_counts,
)
from ._commit import commit_outcomes
from ._input import BadLine, BatchItem, read_items
from ._job import BatchError, open_output, prepare_job, skipped_lines

if TYPE_CHECKING:
    from .._client import AsyncClient
    from .._core.types import Response
    from .._store import Store

_FLUSH_S = 0.1
_encode = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": ")).encode


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """Where a batch stands: lines in the input, finished (this run or earlier), failed,
    tokens and known cost of the finished ones, and the seconds this run has taken."""

    total: int
    done: int
    failed: int
    skipped: int  # lines already finished when this run began
    input_tokens: int
    output_tokens: int
    cost: Decimal
    elapsed_s: float

    @property
    def finished(self) -> int:
        return self.done + self.failed

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@dataclass(frozen=True, slots=True)
class BatchSummary:
    """The result of :func:`run_batch`: the final progress and what to do next."""

    output: Path
    progress: BatchProgress
    sent: int  # lines sent to a model in this run
    interrupted: bool = False

    @property
    def complete(self) -> bool:
        """Every line is answered (failed lines count as unfinished)."""
        return self.progress.done == self.progress.total


ProgressFn = Callable[[BatchProgress], None]


@dataclass(frozen=True, slots=True)
class BatchOptions:
    """How a batch runs (see :func:`run_batch` for each option)."""

    model: str | None = None
    concurrency: int = 16
    rpm: float | None = None
    tpm: float | None = None
    max_retries: int = 4
    retry_failed: bool = False
    restart: bool = False
    log: bool = False

    def __post_init__(self) -> None:
        if self.concurrency < 1:
            raise ValueError("concurrency must be at least 1")


async def run_batch_async(
    input: str | Path,
    output: str | Path,
    *,
    options: BatchOptions | None = None,
    client: AsyncClient | None = None,
    on_progress: ProgressFn | None = None,
    store: Store | None = None,
) -> BatchSummary:
    """Answer every line of ``input`` into ``output`` (see :func:`callm.batch.run`)."""
    options = options or BatchOptions()
    owned = client is None
    if client is None:
        client = _client(options)
    try:
        return await _Run(
            Path(input), Path(output), options, client=client, on_progress=on_progress, store=store
        ).go()
    finally:
        if owned:
            await client.close()


def _client(options: BatchOptions) -> AsyncClient:
    from .._client import AsyncClient
    from .._policies.ratelimit import RateLimit

    limits = None
    if options.rpm is not None or options.tpm is not None:
        # One budget for the whole batch, waited for as long as it takes.
        limits = RateLimit(rpm=options.rpm, tpm=options.tpm, max_wait=math.inf, shared=True)
    return AsyncClient(max_retries=options.max_retries, rate_limits=limits)


class _Run:
    """One run of a batch job."""

    def __init__(
        self,
        input: Path,
        output: Path,
        options: BatchOptions,
        *,
        client: AsyncClient,
        on_progress: ProgressFn | None,
        store: Store | None,
    ) -> None:
        self.input, self.output, self.options = input, output, options
        self.client, self.on_progress = client, on_progress
        self._store = store
        self._pending: list[ItemOutcome] = []
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="callm-batch-writer")
        self._commits: list[asyncio.Future[None]] = []  # started, not yet seen to finish
        self._started = time.monotonic()
        self._sent = 0

    async def go(self) -> BatchSummary:
        from .._store import Store

        store = self._store or Store(self.client.settings.home / "callm.db")
        try:
            # Durable at every commit, power cuts included: commits are a few a second.
            store._read("PRAGMA synchronous=FULL")
            job = prepare_job(store, self.input, self.output, self.options)
            with open_output(store, job) as out:
                self.store, self.job, self.out = store, job, out
                self._base = job_counts(store, job.id)
                self._counts = _Counts.of(self._base, self.options.retry_failed)
                try:
                    interrupted = await self._work()
                finally:
                    # Whatever happened, no commit may outlive the output it appends to.
                    self._executor.shutdown(wait=True)
                return BatchSummary(self.output, self.progress(), self._sent, interrupted)
        finally:
            if self._store is None:
                store.close()

    async def _work(self) -> bool:
        """Run every pending line; True when cancelled (Ctrl-C) before the end."""
        queue: asyncio.Queue[BatchItem | BadLine | None] = asyncio.Queue(
            self.options.concurrency * 2
        )
        workers = [
            asyncio.ensure_future(self._worker(queue)) for _ in range(self.options.concurrency)
        ]
        tasks = [asyncio.ensure_future(self._read(queue)), *workers]
        ticker = asyncio.ensure_future(self._tick())
        try:
            await asyncio.gather(*tasks)
        except asyncio.CancelledError:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            return True
        finally:
            ticker.cancel()
            await asyncio.gather(ticker, return_exceptions=True)
            await asyncio.shield(self._flush())
            self._report()
        return False

    async def _read(self, queue: asyncio.Queue[BatchItem | BadLine | None]) -> None:
        skip = skipped_lines(self.store, self.job, self.options.retry_failed)
        for item in read_items(self.input, skip):
            await queue.put(item)
        for _ in range(self.options.concurrency):
            await queue.put(None)

    async def _worker(self, queue: asyncio.Queue[BatchItem | BadLine | None]) -> None:
        while (item := await queue.get()) is not None:
            if isinstance(item, BadLine):
                outcome = failure_outcome(item.line, item.id, "InvalidInput", item.message, None)
            else:
                self._sent += 1
                outcome = await self._call(item)
            self._pending.append(outcome)
            self._counts.add(outcome)

    async def _call(self, item: BatchItem) -> ItemOutcome:
        model = item.model or self.options.model
        try:
            response = await self.client.complete(
                model, item.messages, **item.params, log=self.options.log
            )
        except (CallmError, ValueError, TypeError) as exc:
            status = exc.status_code if isinstance(exc, APIError) else None
            return failure_outcome(item.line, item.id, type(exc).__name__, str(exc), status)
        return success_outcome(item, response)

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(_FLUSH_S)
            await self._flush()
            self._report()

    async def _flush(self) -> None:
        """Commit what is pending, and wait for every commit started so far.

        Once taken from ``_pending`` a batch must reach the store and the output even if the
        task that took it is cancelled (the ticker at the end of a run, Ctrl-C): the commit
        is shielded, and stays listed until a flush sees it finish. So the last flush of a
        run also waits for the ticker's commit still in the writer thread, rather than
        finding nothing pending and letting the output close under it.
        """
        batch, self._pending = self._pending, []
        if batch:
            loop = asyncio.get_running_loop()
            self._commits.append(loop.run_in_executor(self._executor, self._commit, batch))
        while self._commits:
            await asyncio.shield(self._commits[0])
            self._commits.pop(0)

    def _commit(self, batch: list[ItemOutcome]) -> None:
        commit_outcomes(self.store, self.job.id, self.out, batch)

    def progress(self) -> BatchProgress:
        c = self._counts
        return BatchProgress(
            total=self.job.total,
            done=c.done,
            failed=c.failed,
            skipped=c.skipped,
            input_tokens=c.input_tokens,
            output_tokens=c.output_tokens,
            cost=c.cost,
            elapsed_s=time.monotonic() - self._started,
        )

    def _report(self) -> None:
        if self.on_progress is not None:
            self.on_progress(self.progress())


@dataclass(slots=True)
class _Counts:
    """Running totals of a run, starting from what earlier runs finished."""

    done: int
    failed: int
    skipped: int
    input_tokens: int
    output_tokens: int
    cost: Decimal

    @classmethod
    def of(cls, base: JobCounts, retry_failed: bool) -> _Counts:
        # Failed lines to be retried start uncounted: they are pending again.
        failed = 0 if retry_failed else base.failed
        return cls(base.done, failed, base.done + failed, base.input_tokens,
                   base.output_tokens, base.cost)  # fmt: skip

    def add(self, outcome: ItemOutcome) -> None:
        if outcome.status == "done":
            self.done += 1
        else:
            self.failed += 1
        self.input_tokens += outcome.input_tokens
        self.output_tokens += outcome.output_tokens
        if outcome.cost is not None:
            self.cost += outcome.cost


def success_outcome(item: BatchItem, response: Response) -> ItemOutcome:
    """The committed form of an answered line: its output line, tokens and cost."""
    usage = response.usage
    line: dict[str, Any] = {
        "id": item.id,
        "model": f"{response.provider}/{response.model}",
        "text": response.text,
        "finish_reason": response.finish_reason,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cached_input_tokens": usage.cached_input_tokens,
            "reasoning_tokens": usage.reasoning_tokens,
        },
        "cost": None if response.cost is None else format(response.cost, "f"),
        "latency_s": None if response.latency_s is None else round(response.latency_s, 4),
        "request_id": response.request_id,
    }
    if response.tool_calls:
        line["tool_calls"] = [
            {"id": c.id, "name": c.name, "arguments": dict(c.arguments)}
            for c in response.tool_calls
        ]
    if item.metadata is not None:
        line["metadata"] = item.metadata
    return ItemOutcome(
        line=item.line,
        item_id=_encode(item.id),
        status="done",
        result=_encode(line),
        error=None,
        input_tokens=usage.input_tokens,
        output_tokens=usage.output_tokens,
        cost=response.cost,
    )


def failure_outcome(
    line: int, item_id: Any, kind: str, message: str, status: int | None
) -> ItemOutcome:
    """The committed form of a failed line: its error's type, message and HTTP status."""
    error = {"type": kind, "message": message, "status_code": status}
    return ItemOutcome(line, _encode(item_id), "failed", None, _encode(error))


__all__ = [
    "BatchError",
    "BatchOptions",
    "BatchProgress",
    "BatchSummary",
    "ProgressFn",
    "failure_outcome",
    "run_batch_async",
    "success_outcome",
]
