"""What the command line prints: streamed text that ends its line, and responses as JSON."""

from __future__ import annotations

import json
from dataclasses import asdict
from decimal import Decimal
from typing import Any, Protocol

import click

from .._core.types import Response, Usage


class LineWriter:
    """Writes fragments to stdout as they arrive, and ends the line exactly once at the end."""

    def __init__(self) -> None:
        self._last = ""

    def write(self, fragment: str) -> None:
        """Print a fragment now (flushed, so the user sees it at once)."""
        if fragment:
            click.echo(fragment, nl=False)
            self._last = fragment

    def end_line(self) -> bool:
        """Finish the current line if anything is on it; True when something was written."""
        if self._last and not self._last.endswith("\n"):
            click.echo()
            self._last = "\n"
        return bool(self._last)


class Writer(Protocol):
    """Prints an answer as it arrives: LineWriter, or MarkdownWriter on a terminal."""

    def write(self, fragment: str) -> None: ...

    def end_line(self) -> bool: ...


def answer_writer(markdown: bool) -> Writer:
    """A MarkdownWriter (rich, loaded only then) when ``markdown``, else a LineWriter."""
    if markdown:
        from ._markdown import MarkdownWriter

        return MarkdownWriter()
    return LineWriter()


def usage_line(response: Response) -> str:
    """``12 in / 34 out tokens · $0.0001 · 1.23s · first token 0.20s`` (what is known)."""
    usage = response.usage
    known = f"{usage.input_tokens:,} in / {usage.output_tokens:,} out tokens"
    parts = [known if usage.reported else "tokens unknown (the provider reported none)"]
    parts.append("cost unknown" if response.cost is None else money(response.cost))
    if response.latency_s is not None:
        parts.append(f"{response.latency_s:.2f}s")
    if response.ttft_s is not None:
        parts.append(f"first token {response.ttft_s:.2f}s")
    return " · ".join(parts)


def response_json(response: Response) -> dict[str, object]:
    """The normalised Response as a JSON-ready dict (what ``callm --json`` prints)."""
    return {
        "text": response.text,
        "finish_reason": response.finish_reason,
        "model": response.model,
        "provider": response.provider,
        "id": response.id,
        "request_id": response.request_id,
        "usage": _usage_json(response.usage),
        "tool_calls": [
            {"id": call.id, "name": call.name, "arguments": dict(call.arguments)}
            for call in response.tool_calls
        ],
        "latency_s": response.latency_s,
        "ttft_s": response.ttft_s,
        "cost": None if response.cost is None else str(response.cost),
    }


def _usage_json(usage: Usage) -> dict[str, object]:
    """The token counts, each None when the provider reported no usage (unknown, not 0)."""
    counts = {**asdict(usage), "total_tokens": usage.total_tokens}
    reported = counts.pop("reported")
    return counts if reported else dict.fromkeys(counts)


def dumps(value: Any) -> str:
    """Pretty JSON for people and for ``jq`` alike."""
    return json.dumps(value, indent=2, ensure_ascii=False)


def money(amount: Decimal) -> str:
    """An exact USD amount without trailing zeros or exponent: ``$0.00015``, ``$12``."""
    return f"${amount.normalize():f}"
