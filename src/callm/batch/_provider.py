"""``--provider-batch``: a batch job sent through the providers' own Batch APIs.

The pending lines are grouped by model and submitted as provider batches, whose ids go into
the store at once; then each batch is polled until it ends and its answers are collected
into the output exactly like a direct run's (same line format, same commit-then-write
protocol). Any later run of the same command — or ``callm batch status`` — picks the stored
batches up again: nothing is submitted twice, nothing collected twice. Prices are the
providers' batch prices: half the price of a direct call.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from .._core.errors import APIError, CallmError
from .._core.http import HttpResponse
from .._store._batches import (
    BatchJob,
    ItemOutcome,
    job_counts,
)
from ._apis import BatchAPI, Poll, batch_api, poll_interval
from ._commit import commit_outcomes
from ._input import BadLine, BatchItem, read_items
from ._job import open_output, prepare_job, skipped_lines
from ._runner import BatchOptions, BatchProgress, BatchSummary, failure_outcome, success_outcome

if TYPE_CHECKING:
    from .._client import Client
    from .._store import Store

BATCH_DISCOUNT = Decimal("0.5")  # the Batch APIs charge half the price of a direct call
MAX_PER_BATCH = 10_000  # requests per provider batch (every provider takes at least this)
_DEFAULT_POLL_S = 15.0


@dataclass(frozen=True, slots=True)
class ProviderBatch:
    """A provider batch of a job, as stored."""

    provider: str
    batch_id: str
    model: str
    lines: dict[str, list[Any]]  # custom id -> [line, id, metadata]
    state: str  # "submitted" | "collected"
    detail: dict[str, Any]


def stored_batches(store: Store, job_id: str) -> list[ProviderBatch]:
    rows = store._read(
        "SELECT provider, batch_id, model, lines, state, detail FROM provider_batches "
        "WHERE job_id = ? ORDER BY submitted",
        (job_id,),
    )
    return [
        ProviderBatch(p, b, m, json.loads(lines), s, json.loads(d)) for p, b, m, lines, s, d in rows
    ]


def _save(store: Store, job_id: str, batch: ProviderBatch) -> None:
    from datetime import UTC, datetime

    from .._store import iso_time

    with store._write() as db:
        db.execute(
            "INSERT INTO provider_batches (job_id, provider, batch_id, model, lines, state, "
            "detail, submitted) VALUES (?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (job_id, batch_id) DO UPDATE SET state = excluded.state, "
            "detail = excluded.detail",
            (job_id, batch.provider, batch.batch_id, batch.model, json.dumps(batch.lines),
             batch.state, json.dumps(batch.detail), iso_time(datetime.now(UTC))),
        )  # fmt: skip


Report = Callable[[str], None]


class ProviderRun:
    """One run of a provider-batch job: collect what ended, submit what is pending, wait."""

    def __init__(
        self, client: Client, store: Store, options: BatchOptions, report: Report | None
    ) -> None:
        self.client, self.store, self.options = client, store, options
        self.report = report or (lambda message: None)
        self._apis: dict[str, BatchAPI] = {}

    def go(self, input: Path, output: Path, *, wait: bool) -> BatchSummary:
        started = time.monotonic()
        job = prepare_job(self.store, input, output, self.options, mode="provider")
        with open_output(self.store, job) as out:
            base = job_counts(self.store, job.id)
            self.refresh(job, out)
            sent = self.submit(job, out)
            while wait and self.refresh(job, out):
                time.sleep(poll_interval(_DEFAULT_POLL_S))
        counts = job_counts(self.store, job.id)
        progress = BatchProgress(
            total=job.total,
            done=counts.done,
            failed=counts.failed,
            skipped=base.done + base.failed,
            input_tokens=counts.input_tokens,
            output_tokens=counts.output_tokens,
            cost=counts.cost,
            elapsed_s=time.monotonic() - started,
        )
        return BatchSummary(output, progress, sent)

    # -- submitting -------------------------------------------------------------------------

    def submit(self, job: BatchJob, out: BinaryIO) -> int:
        """Submit every line that is neither finished nor in a running batch; return how many."""
        in_flight = {
            line
            for batch in stored_batches(self.store, job.id)
            if batch.state == "submitted"
            for line, _, _ in batch.lines.values()
        }
        groups: dict[str, list[BatchItem]] = {}
        bad: list[ItemOutcome] = []
        for item in read_items(
            Path(job.input), skipped_lines(self.store, job, self.options.retry_failed)
        ):
            if item.line in in_flight:
                continue
            if isinstance(item, BadLine):
                bad.append(failure_outcome(item.line, item.id, "InvalidInput", item.message, None))
                continue
            model = item.model or self.options.model or self.client.settings.default_model()[0]
            groups.setdefault(model, []).append(item)
        if bad:
            commit_outcomes(self.store, job.id, out, bad)
        sent = 0
        for model, items in groups.items():
            for start in range(0, len(items), MAX_PER_BATCH):
                sent += self._submit_group(job, out, model, items[start : start + MAX_PER_BATCH])
        return sent

    def _submit_group(
        self, job: BatchJob, out: BinaryIO, model: str, items: list[BatchItem]
    ) -> int:
        try:
            endpoint, api, requests, failed = self._encode(model, items)
        except CallmError as exc:  # an unknown provider, no key, no Batch API: every line fails
            outcomes = [
                failure_outcome(i.line, i.id, type(exc).__name__, str(exc), None) for i in items
            ]
            commit_outcomes(self.store, job.id, out, outcomes)
            self.report(f"{model}: {exc}")
            return 0
        if failed:
            commit_outcomes(self.store, job.id, out, failed)
        if not requests:
            return 0
        batch_id, detail = api.submit(model, [(c, h) for c, h, _ in requests])
        lines = {cid: [item.line, item.id, item.metadata] for cid, _, item in requests}
        batch = ProviderBatch(endpoint.provider, batch_id, model, lines, "submitted", detail)
        _save(self.store, job.id, batch)
        self.report(f"submitted {len(requests):,} lines to {endpoint.provider} as batch {batch_id}")
        return len(requests)

    def _encode(
        self, model: str, items: list[BatchItem]
    ) -> tuple[Any, BatchAPI, list[Any], list[ItemOutcome]]:
        """Each line as the exact HTTP request a direct call would send, ready to submit."""
        endpoint, _ = self.client.resolve_model(model)
        api = self._api(endpoint)
        requests, failed = [], []
        for item in items:
            try:
                http = self.client.http_request(model, item.messages, **item.params)
                requests.append((str(item.line), http, item))
            except (CallmError, ValueError, TypeError) as exc:
                failed.append(
                    failure_outcome(item.line, item.id, type(exc).__name__, str(exc), None)
                )
        return endpoint, api, requests, failed

    def _api(self, endpoint: Any) -> BatchAPI:
        api = self._apis.get(endpoint.provider)
        if api is None:
            api = self._apis[endpoint.provider] = batch_api(self.client, endpoint)
        return api

    # -- polling and collecting -------------------------------------------------------------

    def refresh(self, job: BatchJob, out: BinaryIO) -> int:
        """Poll every running batch, collect those that ended; return how many still run."""
        running = 0
        for batch in stored_batches(self.store, job.id):
            if batch.state != "submitted":
                continue
            endpoint, _ = self.client.resolve_model(batch.model)
            api = self._api(endpoint)
            poll = api.poll(batch.batch_id, batch.detail)
            if not poll.ended:
                _save(self.store, job.id, replace(batch, detail=poll.detail))
                running += 1
                continue
            self._collect(job, out, api, replace(batch, detail=poll.detail), poll)
        return running

    def _collect(
        self, job: BatchJob, out: BinaryIO, api: BatchAPI, batch: ProviderBatch, poll: Poll
    ) -> None:
        outcomes = list(self._outcomes(api, batch, poll))
        commit_outcomes(self.store, job.id, out, outcomes)
        _save(self.store, job.id, replace(batch, state="collected"))
        failed = sum(o.status == "failed" for o in outcomes)
        self.report(
            f"collected {batch.provider} batch {batch.batch_id} ({poll.status}): "
            f"{len(outcomes) - failed:,} answered, {failed:,} failed"
        )

    def _outcomes(self, api: BatchAPI, batch: ProviderBatch, poll: Poll) -> Iterator[ItemOutcome]:
        seen: set[str] = set()
        if not poll.failed:
            for custom_id, status, body in api.results(batch.batch_id, poll.detail):
                entry = batch.lines.get(custom_id)
                if entry is None or custom_id in seen:
                    continue
                seen.add(custom_id)
                yield self._outcome(api, batch, entry, status, body)
        for custom_id, (line, item_id, _) in batch.lines.items():
            if custom_id not in seen:  # the provider returned nothing for it
                message = f"the provider's batch ended {poll.status} without an answer for it"
                yield failure_outcome(line, item_id, "BatchIncomplete", message, None)

    def _outcome(
        self, api: BatchAPI, batch: ProviderBatch, entry: list[Any], status: int, body: Any
    ) -> ItemOutcome:
        from ..protocols import protocol_for

        line, item_id, metadata = entry
        wire = protocol_for(api.endpoint.protocol)
        reply = HttpResponse(
            status, {"content-type": "application/json"}, json.dumps(body).encode()
        )
        if status >= 400:
            error: APIError = wire.decode_failure(api.endpoint, reply)
            return failure_outcome(line, item_id, type(error).__name__, str(error), status)
        try:
            response = wire.decode(api.endpoint, reply, None)
        except CallmError as exc:
            return failure_outcome(line, item_id, type(exc).__name__, str(exc), status)
        response = replace(response, cost=_batch_cost(api.endpoint, response))
        item = BatchItem(line=line, id=item_id, model=batch.model, messages="", metadata=metadata)
        return success_outcome(item, response)


def poll_only(client: Client, store: Store, job: BatchJob) -> None:
    """Ask the providers how the job's running batches are doing; store what they say."""
    for batch in stored_batches(store, job.id):
        if batch.state != "submitted":
            continue
        endpoint, _ = client.resolve_model(batch.model)
        poll = batch_api(client, endpoint).poll(batch.batch_id, batch.detail)
        _save(store, job.id, replace(batch, detail=poll.detail))


def _batch_cost(endpoint: Any, response: Any) -> Decimal | None:
    from .._policies.cost import cost_of

    cost = cost_of(endpoint.provider, response.model, response.usage, protocol=endpoint.protocol)
    return None if cost is None else cost * BATCH_DISCOUNT


def run_provider_batch(
    input: str | Path,
    output: str | Path,
    *,
    options: BatchOptions,
    wait: bool = True,
    report: Report | None = None,
    client: Client | None = None,
    store: Store | None = None,
) -> BatchSummary:
    """Submit, poll and collect ``input`` through the providers' Batch APIs."""
    from .._client import Client
    from .._store import Store

    own_client = client is None
    client = client or Client(max_retries=options.max_retries)
    own_store = store is None
    store = store or Store(client.settings.home / "callm.db")
    try:
        store._read("PRAGMA synchronous=FULL")
        return ProviderRun(client, store, options, report).go(Path(input), Path(output), wait=wait)
    finally:
        if own_store:
            store.close()
        if own_client:
            client.close()
