"""The batch input: a JSON Lines file, one request per line, read a line at a time.

A line is an object with ``prompt`` (a string) or ``messages`` (role/content objects), and
optionally ``id`` (any JSON value, kept in the output; the line number when absent),
``model`` (``provider/model``; the batch's default when absent), ``system``, ``metadata``
(copied to the output as is) and call parameters (``max_tokens``, ``temperature``, ``top_p``,
``stop``, ``seed``, ``tools``, ``tool_choice``, ``response_format`` …). Any other field goes
into the request body untouched, as ``extra_body``. OpenAI Batch API lines
(``{"custom_id": …, "body": {…}}``) are read too: ``custom_id`` is the id, ``body`` the
request. Blank lines are skipped but counted, so line numbers match an editor's.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Fields that are call parameters (the rest of an unknown field goes to extra_body).
PARAMETERS = frozenset(
    {
        "system",
        "max_tokens",
        "temperature",
        "top_p",
        "top_k",
        "stop",
        "seed",
        "n",
        "user",
        "tools",
        "tool_choice",
        "response_format",
        "cache",
        "extra_body",
        "extra_headers",
    }
)
_OWN = frozenset({"id", "model", "prompt", "messages", "metadata"})


@dataclass(frozen=True, slots=True)
class BatchItem:
    """One input line, ready to send."""

    line: int
    id: Any
    model: str | None
    messages: Any  # a prompt string or a list of message objects
    params: dict[str, Any] = field(default_factory=dict)
    metadata: Any = None


@dataclass(frozen=True, slots=True)
class BadLine:
    """An input line that cannot be sent; ``message`` says why and how to fix it."""

    line: int
    id: Any
    message: str


def scan(path: Path) -> tuple[str, int]:
    """The input's sha256 and how many non-blank lines it has (one streamed pass)."""
    digest = hashlib.sha256()
    count = 0
    with path.open("rb") as f:
        for raw in f:  # binary lines end at "\n" only, like read_items' lines
            digest.update(raw)
            count += bool(raw.strip())
    return digest.hexdigest(), count


def read_items(path: Path, skip: Iterator[int]) -> Iterator[BatchItem | BadLine]:
    """Every non-blank line of ``path`` as a BatchItem (or a BadLine), except the line
    numbers ``skip`` yields (ascending)."""
    next_skip = next(skip, None)
    with path.open("r", encoding="utf-8", errors="replace", newline="\n") as f:
        for number, text in enumerate(f, start=1):
            while next_skip is not None and next_skip < number:
                next_skip = next(skip, None)
            if next_skip == number or not text.strip():
                continue
            yield parse_line(number, text)


def parse_line(number: int, text: str) -> BatchItem | BadLine:
    """One line of input as a request, or the reason it is not one."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return BadLine(number, number, f"line {number} is not JSON ({exc.msg})")
    if not isinstance(value, dict):
        return BadLine(number, number, f"line {number} must be a JSON object")
    if "custom_id" in value and isinstance(value.get("body"), dict):
        value = {**value["body"], "id": value["custom_id"]}
    item_id = value.get("id", number)
    prompt, messages = value.get("prompt"), value.get("messages")
    if (prompt is None) == (messages is None):
        return BadLine(number, item_id, f'line {number} needs "prompt" (text) or "messages"')
    if prompt is not None and not isinstance(prompt, str):
        return BadLine(number, item_id, f'line {number}: "prompt" must be a string')
    if messages is not None and not isinstance(messages, list):
        return BadLine(number, item_id, f'line {number}: "messages" must be a list')
    model = value.get("model")
    if model is not None and not isinstance(model, str):
        return BadLine(number, item_id, f'line {number}: "model" must be a string')
    params = {k: v for k, v in value.items() if k in PARAMETERS}
    extra = {k: v for k, v in value.items() if k not in PARAMETERS and k not in _OWN}
    if extra:
        params["extra_body"] = {**extra, **params.get("extra_body", {})}
    return BatchItem(
        line=number,
        id=item_id,
        model=model,
        messages=prompt if prompt is not None else messages,
        params=params,
        metadata=value.get("metadata"),
    )
