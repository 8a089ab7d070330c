"""How ``callm logs`` shows a call: a header line and its sections, or every field as JSON."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from .._store import CallRecord
from ._output import money


def record_json(record: CallRecord) -> dict[str, Any]:
    """Every field of a record, JSON-ready: the cost as an exact string, the time in ISO."""
    return {f.name: _json_value(getattr(record, f.name)) for f in fields(record)}


def _json_value(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {k: _json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v) for v in value]
    return value


def render_record(record: CallRecord) -> str:
    """One call as Markdown-ish text: a ``#`` header line, then its sections."""
    lines = [f"# {header(record)}"]
    for title, body in sections(record):
        lines += ["", f"## {title}", body]
    return "\n".join(lines)


def header(record: CallRecord) -> str:
    """Time, model, status, tokens, cost, latency, markers and request id, on one line."""
    parts = [
        record.time.astimezone().isoformat(timespec="seconds"),
        f"{record.provider}/{record.model}",
        record.status,
        _tokens(record),
        _cost(record),
        _latency(record),
        "cached" if record.cached else "",
        "streamed" if record.streamed else "",
        record.request_id or "",
        f"id {record.id}",
    ]
    return " · ".join(p for p in parts if p)


def _tokens(record: CallRecord) -> str:
    if not record.usage_reported:
        return "tokens unknown"
    return f"{record.input_tokens:,} in / {record.output_tokens:,} out tokens"


def _cost(record: CallRecord) -> str:
    if record.cost is not None:
        return money(record.cost)
    # A call that failed before using any tokens cost nothing worth calling unknown.
    used = record.input_tokens + record.output_tokens
    return "cost unknown" if used or record.ok or not record.usage_reported else ""


def _latency(record: CallRecord) -> str:
    if record.latency_s is None:
        return ""
    if record.ttft_s is None:
        return f"{record.latency_s:.2f}s"
    return f"{record.latency_s:.2f}s (first token {record.ttft_s:.2f}s)"


def sections(record: CallRecord) -> Iterator[tuple[str, str]]:
    """The titled parts of a call worth reading: system, prompt, reply, tool calls, error."""
    messages: Sequence[Mapping[str, Any]] = record.request.get("messages", ())
    system = [_text(m) for m in messages if m.get("role") == "system"]
    if system:
        yield "System", "\n\n".join(system)
    yield from _prompt(messages)
    embed = record.request.get("embed")
    if isinstance(embed, Mapping):  # an embeddings call keeps its input count, not the inputs
        dimensions = record.request.get("parameters", {}).get("dimensions")
        shown = f"{embed.get('inputs')} inputs" + (
            f", {dimensions} dimensions" if dimensions else ""
        )
        yield "Embeddings", shown
    if record.response_text:
        yield "Reply", record.response_text
    if record.tool_calls:
        yield "Tool calls", "\n".join(_tool_call(c) for c in record.tool_calls)
    if record.error is not None:
        yield "Error", f"{record.status}: {record.error}"


def _prompt(messages: Sequence[Mapping[str, Any]]) -> Iterator[tuple[str, str]]:
    """The last user message, saying how many messages came before it."""
    users = [i for i, m in enumerate(messages) if m.get("role") == "user"]
    if not users:
        return
    last = users[-1]
    earlier = sum(1 for m in messages[:last] if m.get("role") != "system")
    title = f"Prompt (after {earlier} earlier messages)" if earlier else "Prompt"
    yield title, _text(messages[last])


def _text(message: Mapping[str, Any]) -> str:
    """A message's text; any other part is shown as its kind, e.g. ``[image]``."""
    return "".join(
        part.get("text", "") if part.get("kind") == "text" else f"[{part.get('kind')}]"
        for part in message.get("content", ())
    )


def _tool_call(call: Mapping[str, Any]) -> str:
    arguments = call.get("raw_arguments") or json.dumps(call.get("arguments"), ensure_ascii=False)
    return f"{call.get('name')}({arguments})"
