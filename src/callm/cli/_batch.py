"""``callm batch IN.jsonl -o OUT.jsonl``: many requests, concurrent, resumable; and
``callm batch status OUT.jsonl``."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ._group import EXIT_API_ERROR, EXIT_INTERRUPTED, DefaultGroup, debug_option
from ._output import dumps, money

if TYPE_CHECKING:
    from ..batch import BatchProgress, BatchStatus, BatchSummary, FailedLine

batch_group = DefaultGroup(
    "batch",
    default_command="run",
    default_usage="[OPTIONS] IN.jsonl -o OUT.jsonl",
    short_help="Answer a JSONL file of requests: concurrent, resumable.",
    help="""Send every line of IN.jsonl to a model and write the answers to OUT.jsonl.

    \b
    Examples:
      callm batch questions.jsonl -o answers.jsonl -m openai/gpt-4o-mini
      callm batch big.jsonl -o out.jsonl --concurrency 64 --rpm 5000 --tpm 2000000
      callm batch big.jsonl -o out.jsonl            (again, after Ctrl-C or a crash: resumes)
      callm batch big.jsonl -o out.jsonl --retry-failed
      callm batch status out.jsonl --failed
    """,
)


@batch_group.command("run")
@click.argument("input", type=click.Path(dir_okay=False, path_type=Path), metavar="IN.jsonl")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    metavar="OUT.jsonl",
    help="Where the answers go, one JSON line per answered input line (in order of arrival).",
)
@click.option("-m", "--model", metavar="PROVIDER/MODEL", help="The model of lines that name none.")
@click.option(
    "-j",
    "--concurrency",
    type=click.IntRange(min=1, max=4096),
    default=16,
    show_default=True,
    help="Requests in flight at once.",
)
@click.option(
    "--rpm", type=click.FloatRange(min=0, min_open=True), help="Requests a minute, at most."
)
@click.option(
    "--tpm", type=click.FloatRange(min=0, min_open=True), help="Tokens a minute, at most."
)
@click.option(
    "--max-retries",
    type=click.IntRange(min=0),
    default=4,
    show_default=True,
    help="Retries of a line on rate limits, overloads, 5xx and dropped connections.",
)
@click.option("--retry-failed", is_flag=True, help="Send again the lines that failed before.")
@click.option(
    "--restart", is_flag=True, help="Forget earlier runs into OUT.jsonl and overwrite it."
)
@click.option("--log", is_flag=True, help="Also write every call to the call log (callm logs).")
@click.option(
    "--provider-batch",
    is_flag=True,
    help="Send the lines through the providers' Batch APIs (OpenAI, Anthropic, Gemini: half "
    "the price, answers within 24 hours) instead of calling the models directly.",
)
@click.option(
    "--no-wait",
    is_flag=True,
    help="With --provider-batch: submit and return; `callm batch status OUT.jsonl` follows "
    "the batches and the same command again collects them.",
)
@debug_option
def run_batch(
    input: Path, output: Path, provider_batch: bool, no_wait: bool, **options: Any
) -> None:
    """Answer every line of IN.jsonl into OUT.jsonl.

    A line is a JSON object: "prompt" (text) or "messages" (role/content objects), and
    optionally "id" (kept in the output; the line number when absent), "model", "system",
    "metadata" (copied to the output) and parameters such as "max_tokens" or "temperature".
    OpenAI Batch API lines ({"custom_id": …, "body": {…}}) work too.

    Each output line holds the id, the model, the text, finish reason, usage, cost and
    latency. Progress is kept in callm's store: after Ctrl-C, a crash or a power cut, the
    same command finishes the rest; nothing already answered is sent or written again.
    Lines that still fail after the retries are recorded (`callm batch status OUT.jsonl`)
    and sent again with --retry-failed. Exit status: 0 all answered, 1 some failed,
    130 interrupted.

    \b
    Example input line:
      {"id": "q1", "model": "openai/gpt-4o-mini", "prompt": "Capital of Peru?", "max_tokens": 20}
    """
    if provider_batch:
        _provider_batch(input, output, wait=not no_wait, **options)
        return
    if no_wait:
        raise click.UsageError("--no-wait goes with --provider-batch")
    from ..batch import arun as run_async

    progress = _progress_display(sys.stderr.isatty())
    with progress:
        summary = asyncio.run(run_async(input, output, on_progress=progress.update, **options))
    click.echo(summary_line(summary), err=True)
    if summary.interrupted:
        raise click.exceptions.Exit(EXIT_INTERRUPTED)
    if not summary.complete:  # failed lines (or, never expected, lines left unanswered)
        raise click.exceptions.Exit(EXIT_API_ERROR)


def _provider_batch(input: Path, output: Path, *, wait: bool, **options: Any) -> None:
    """Submit, wait for and collect the providers' batches, saying each step on stderr."""
    from ..batch import run

    def say(message: str) -> None:
        click.echo(f"callm batch: {message}", err=True)

    summary = run(input, output, provider_batch=True, wait=wait, on_event=say, **options)
    if not wait:
        click.echo(
            f"callm batch: follow with `callm batch status {output}`; run the same command "
            "again to collect the answers",
            err=True,
        )
        return
    click.echo(summary_line(summary), err=True)
    if summary.progress.failed:
        raise click.exceptions.Exit(EXIT_API_ERROR)


def summary_line(summary: BatchSummary) -> str:
    """The one line said at the end of a run (and instead of the bar when not a terminal)."""
    p = summary.progress
    rate = summary.sent / p.elapsed_s if p.elapsed_s > 0 else 0.0
    parts = [f"{p.done:,}/{p.total:,} answered"]
    if p.failed:
        parts.append(f"{p.failed:,} failed (callm batch status {summary.output} --failed)")
    if p.skipped:
        parts.append(f"{p.skipped:,} done by earlier runs")
    parts.append(f"{summary.sent:,} sent in {p.elapsed_s:.1f}s ({rate:,.0f}/s)")
    parts.append(f"{p.tokens:,} tokens, {money(p.cost)}")
    head = "interrupted" if summary.interrupted else "done" if summary.complete else "finished"
    tail = "; run the same command to finish the rest" if summary.interrupted else ""
    return f"callm batch {head}: {', '.join(parts)} -> {summary.output}{tail}"


class _Quiet:
    """No live display (stderr is not a terminal): the summary line says it all."""

    def __enter__(self) -> _Quiet:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def update(self, progress: BatchProgress) -> None:
        return None


class _Bar(_Quiet):
    """A rich progress bar on stderr: done / total, rate, ETA, tokens, cost."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[usage]}"),
            console=Console(stderr=True),
            refresh_per_second=8,
        )
        self._task = self._progress.add_task("batch", total=None, rate="", usage="")

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, progress: BatchProgress) -> None:
        sent = progress.finished - progress.skipped
        rate = sent / progress.elapsed_s if progress.elapsed_s > 0 else 0.0
        failed = f"{progress.failed:,} failed · " if progress.failed else ""
        self._progress.update(
            self._task,
            total=progress.total,
            completed=progress.finished,
            rate=f"{rate:,.0f}/s",
            usage=f"{failed}{progress.tokens:,} tokens · {money(progress.cost)}",
        )


def _progress_display(terminal: bool) -> _Quiet:
    return _Bar() if terminal else _Quiet()


@batch_group.command("status")
@click.argument("output", type=click.Path(dir_okay=False, path_type=Path), metavar="OUT.jsonl")
@click.option("--failed", "show_failed", is_flag=True, help="List every failed line and its error.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
@debug_option
def batch_status(output: Path, show_failed: bool, as_json: bool) -> None:
    """Show how far the batch writing OUT.jsonl got: answered, failed, pending, tokens, cost,
    and any provider batches still running.

    \b
    Examples:
      callm batch status answers.jsonl
      callm batch status answers.jsonl --failed --json | jq '.failures[].message'
    """
    from ..batch import status

    state = status(output, refresh=True)
    if as_json:
        click.echo(dumps(status_json(state)))
        return
    click.echo(status_text(state))
    if show_failed:
        for f in state.failures:
            code = f" {f.status_code}" if f.status_code else ""
            click.echo(f"line {f.line} (id {f.id!r}): {f.error_type}{code}: {f.message}")


def status_text(state: BatchStatus) -> str:
    lines = [
        f"{state.output}  <-  {state.input}",
        f"{state.done:,}/{state.total:,} answered, {state.failed:,} failed, "
        f"{state.pending:,} pending; {state.input_tokens + state.output_tokens:,} tokens, "
        f"{money(state.cost)}{' (some unpriced)' if state.unpriced else ''}",
    ]
    for b in state.provider_batches:
        lines.append(f"{b['provider']} batch {b['batch_id']} ({b['model']}): {b['state']}")
    if state.failed:
        again = f"callm batch {state.input} -o {state.output} --retry-failed"
        lines.append(f"Send the failed lines again: {again}")
    return "\n".join(lines)


def status_json(state: BatchStatus) -> dict[str, Any]:
    return {
        "output": state.output,
        "input": state.input,
        "mode": state.mode,
        "total": state.total,
        "done": state.done,
        "failed": state.failed,
        "pending": state.pending,
        "input_tokens": state.input_tokens,
        "output_tokens": state.output_tokens,
        "cost": str(state.cost),
        "created": state.created.isoformat(),
        "updated": state.updated.isoformat(),
        "failures": [_failure_json(f) for f in state.failures],
        "provider_batches": list(state.provider_batches),
    }


def _failure_json(f: FailedLine) -> dict[str, Any]:
    return {
        "line": f.line,
        "id": f.id,
        "type": f.error_type,
        "message": f.message,
        "status_code": f.status_code,
    }


__all__ = ["batch_group"]
