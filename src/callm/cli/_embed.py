"""``callm embed``: embedding vectors of texts, one JSON line per input."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from decimal import Decimal
from itertools import islice
from typing import IO, Any

import click

from .._client import Client
from .._core.json import dumps
from .._core.types import Usage
from ._group import CLIUsageError, debug_option
from ._output import money

# Lines read from a file at a time: enough for several concurrent requests of the largest
# provider limit (OpenAI's 2048), few enough that a huge file never sits in memory.
CHUNK = 8192


@click.command("embed")
@click.argument("texts", nargs=-1)
@click.option(
    "-m", "--model", metavar="MODEL", help="The embedding model, as provider/model (required)."
)
@click.option(
    "-i",
    "--input",
    "source",
    type=click.File("r", encoding="utf-8"),
    help="Embed each line of this file ('-' for standard input); blank lines are skipped.",
)
@click.option("-d", "--dimensions", type=click.IntRange(min=1), help="Shorter vectors.")
@click.option(
    "--float",
    "as_float",
    is_flag=True,
    help="Ask for vectors as JSON numbers instead of base64 (for a server that refuses it).",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Requests in flight when the inputs take several.",
)
@click.option("-u", "--usage", is_flag=True, help="Print inputs, tokens and cost to stderr.")
@debug_option
def embed_command(
    *,
    texts: tuple[str, ...],
    model: str | None,
    source: IO[str] | None,
    dimensions: int | None,
    as_float: bool,
    concurrency: int,
    usage: bool,
) -> None:
    """Print the embedding vector of each TEXT, or of each line of a file, as JSON lines:
    ``{"index": 0, "text": "…", "embedding": [0.012, …]}`` in input order.

    A file is read as it goes, CHUNK lines at a time, each chunk split under the provider's
    per-request limit and sent concurrently; with no TEXT and no -i, lines are read from a
    pipe. ``local/…`` embeds offline (a deterministic hashing model) with no key.

    \b
    Examples:
      callm embed -m openai/text-embedding-3-small "The cat sat on the mat."
      callm embed -m gemini/gemini-embedding-001 -d 768 -i docs.txt > vectors.jsonl
      cat titles.txt | callm embed -m ollama/nomic-embed-text -u
      callm embed -m local/hash "offline" "no key needed" | jq '.embedding | length'
    """
    if not model:
        raise CLIUsageError(
            "give the embedding model with -m, e.g. -m openai/text-embedding-3-small"
        )
    params: dict[str, Any] = {"max_concurrency": concurrency}
    if as_float:
        params["encoding_format"] = "float"
    totals = _embed_all(model, _inputs(texts, source), dimensions, params)
    if usage:
        click.echo(totals.line(), err=True)


def _embed_all(
    model: str, lines: Iterator[str], dimensions: int | None, params: dict[str, Any]
) -> _Totals:
    """Embed the lines chunk by chunk, printing each chunk's vectors as it comes back."""
    totals = _Totals()
    with Client() as client:
        for chunk in _chunks(lines, CHUNK):
            result = client.embed(model, chunk, dimensions, **params)
            out = sys.stdout
            for text, vector in zip(chunk, result, strict=True):
                out.write(dumps({"index": totals.inputs, "text": text, "embedding": vector}))
                out.write("\n")
                totals.inputs += 1
            out.flush()
            totals.add(result.requests, result.usage, result.cost, result.usage_estimated)
    return totals


def _inputs(texts: tuple[str, ...], source: IO[str] | None) -> Iterator[str]:
    if texts and source is not None:
        raise CLIUsageError("give TEXT arguments or -i FILE, not both")
    if texts:
        return iter(texts)
    if source is None:
        if sys.stdin.isatty():
            raise CLIUsageError("nothing to embed: give TEXT, -i FILE, or pipe lines in")
        source = sys.stdin
    return (line.rstrip("\r\n") for line in source if line.strip())


def _chunks(lines: Iterable[str], size: int) -> Iterator[list[str]]:
    it = iter(lines)
    while chunk := list(islice(it, size)):
        yield chunk


class _Totals:
    """What ``-u`` prints: inputs, requests, tokens and cost over every chunk."""

    def __init__(self) -> None:
        self.inputs = self.requests = 0
        self.usage = Usage()
        self.cost: Decimal | None = Decimal(0)
        self.estimated = False

    def add(self, requests: int, usage: Usage, cost: Decimal | None, estimated: bool) -> None:
        self.requests += requests
        self.estimated |= estimated
        self.usage += usage
        self.cost = None if self.cost is None or cost is None else self.cost + cost

    def line(self) -> str:
        cost = "cost unknown" if self.cost is None else money(self.cost)
        tokens = f"{self.usage.input_tokens} tokens" + (" (estimated)" if self.estimated else "")
        return f"{self.inputs} inputs, {self.requests} requests, {tokens}, {cost}"
