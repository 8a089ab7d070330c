"""Helpers the server codec tests share: wire round trips, replaying streams, strategies.

Nothing here calls the server codecs' own helpers: expected values come from the client
codecs, the recordings or the test's own construction.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from callm._config.providers import BUILTIN, build_endpoint
from callm._core.endpoint import Endpoint
from callm._core.http import HttpResponse
from callm._core.types import (
    FinishEvent,
    Part,
    Reasoning,
    ReasoningDelta,
    RefusalDelta,
    Response,
    StreamEvent,
    Text,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from callm.protocols._shared.sse import SSEDecoder

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "recorded"
MISSING = f"recorded fixtures not found at {FIXTURES} (a checkout without ../shared)"


def endpoint(provider: str, base_url: str = "https://upstream.test") -> Endpoint:
    return build_endpoint(BUILTIN[provider], base_url, "test-key")


def wire(value: Any) -> Any:
    """A value as it arrives over the wire: serialised to JSON text and parsed back."""
    return json.loads(json.dumps(value))


def http_json(body: Any, status: int = 200) -> HttpResponse:
    return HttpResponse(status, {"content-type": "application/json"}, json.dumps(body).encode())


def plain_calls(parts: Iterable[Part]) -> tuple[Part, ...]:
    """Parts with tool calls reduced to id, name and arguments (the raw text is the wire's)."""
    return tuple(
        ToolCall(p.id, p.name, dict(p.arguments)) if isinstance(p, ToolCall) else p for p in parts
    )


def feed_stream(data: bytes, decoder: Any, cuts: Sequence[int] = ()) -> list[StreamEvent]:
    """Feed SSE bytes, cut at the given offsets, through an SSE decoder into ``decoder``."""
    sse = SSEDecoder()
    events: list[StreamEvent] = []
    start = 0
    for cut in [*sorted(c for c in cuts if 0 < c < len(data)), len(data)]:
        for event in sse.feed(data[start:cut]):
            events.extend(decoder.feed(event))
        start = cut
    sse.close()
    return events


def upstream_events(response: Response, pieces: int = 3) -> list[StreamEvent]:
    """The events a client stream decoder emits for ``response``: text, reasoning and tool
    arguments in fragments, each call completed after its fragments, then usage and finish."""
    events: list[StreamEvent] = []
    tools = 0
    for part in response.content:
        if part.kind == "text":
            events += [TextDelta(t) for t in split(part.text, pieces)]
        elif part.kind == "refusal":
            events += [RefusalDelta(t) for t in split(part.text, pieces)]
        elif isinstance(part, Reasoning):
            events += [ReasoningDelta(t) for t in split(part.text, pieces)]
        elif isinstance(part, ToolCall):
            events.append(ToolCallDelta(tools, part.id, part.name, ""))
            arguments = json.dumps(dict(part.arguments))
            events += [ToolCallDelta(tools, None, None, t) for t in split(arguments, pieces)]
            events.append(ToolCallEvent(part))
            tools += 1
    return [*events, UsageEvent(response.usage), FinishEvent(response.finish_reason)]


def split(text: str, pieces: int) -> list[str]:
    if not text:
        return []
    size = max(1, -(-len(text) // pieces))
    return [text[i : i + size] for i in range(0, len(text), size)]


def joined(events: Iterable[StreamEvent]) -> list[tuple[str, Any]]:
    """Events with neighbouring text (or reasoning) fragments joined: how they were cut
    into fragments is the transport's business, what they say is not."""
    out: list[tuple[str, Any]] = []
    for event in events:
        if isinstance(event, TextDelta | ReasoningDelta | RefusalDelta):
            if out and out[-1][0] == event.type:
                out[-1] = (event.type, out[-1][1] + event.text)
            else:
                out.append((event.type, event.text))
        elif isinstance(event, ToolCallEvent):
            out.append(("tool_call", plain_calls([event.tool_call])[0]))
        elif isinstance(event, ToolCallDelta):
            if event.id or event.name:
                out.append(("tool_start", (event.index, event.id, event.name)))
            if event.arguments:
                if out and out[-1][0] == "arguments" and out[-1][1][0] == event.index:
                    out[-1] = ("arguments", (event.index, out[-1][1][1] + event.arguments))
                else:
                    out.append(("arguments", (event.index, event.arguments)))
        elif isinstance(event, UsageEvent | FinishEvent):
            continue  # compared on the final Response, where they are complete
        else:
            out.append((event.type, event))
    return out


def streamed_content(
    content: Sequence[Part], whole: Callable[[Part], bool], protocol: str
) -> tuple[Part, ...]:
    """What a caller accumulates from a stream: deltas in order (neighbours of a kind share
    one block), then the parts that never stream as deltas, sent whole as it closes."""
    out: list[Part] = []
    for part in content:
        if whole(part):
            continue
        last = out[-1] if out else None
        if isinstance(part, Text) and isinstance(last, Text):
            out[-1] = Text(last.text + part.text)
        elif isinstance(part, Reasoning):
            text = part.text
            if isinstance(last, Reasoning):
                text = last.text + text
                out.pop()
            out.append(Reasoning(text, protocol=protocol))
        else:
            out.append(part)
    return (*out, *(p for p in content if whole(p)))


def unsigned(parts: Iterable[Part]) -> tuple[Part, ...]:
    return tuple(replace(p, signature=None) if isinstance(p, Reasoning) else p for p in parts)


# --- strategies ---------------------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9_]{0,12}", fullmatch=True)
ids = st.from_regex(r"[A-Za-z0-9_]{4,16}", fullmatch=True)
texts = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=40)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(10**6), 10**6)
    | st.floats(allow_nan=False, allow_infinity=False, width=32)
    | texts
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(names, inner, max_size=3),
    max_leaves=6,
)
arguments = st.dictionaries(names, json_values, max_size=4)
schemas = st.fixed_dictionaries(
    {
        "type": st.just("object"),
        "properties": st.dictionaries(
            names, st.sampled_from([{"type": "string"}, {"type": "integer"}]), max_size=3
        ),
    }
)
usages = st.builds(
    lambda fresh, out, cached, written, reasoning: Usage(
        fresh + cached + written, out + reasoning, cached, written, reasoning
    ),
    st.integers(0, 5000),
    st.integers(0, 5000),
    st.integers(0, 3000),
    st.integers(0, 3000),
    st.integers(0, 2000),
)


def raw_parts_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)
