"""The OpenAI Responses event stream: typed SSE events in, callm stream events out.

The decoder keeps the output items as the server describes them (``output_item.added`` /
``.done``) plus the text fragments of the items still open, and builds its Response with
the same :func:`~callm.protocols.openai_responses.client.output_parts` that reads whole replies.
Once ``response.completed`` (or ``response.incomplete``) arrives, the full response object
it carries is the authority: its output, usage and status make the final Response.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping

from ..._core.endpoint import Endpoint
from ..._core.errors import APIError
from ..._core.json import as_list, get_int, get_list, get_str, loads
from ..._core.types import (
    FinishEvent,
    ReasoningDelta,
    RefusalDelta,
    Response,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    ToolCallEvent,
    UsageEvent,
)
from .._shared.errors import in_stream_error, unreadable_event
from .._shared.sse import SSEEvent
from .client import failure_error, response_of, tool_call_of

_TEXT_DELTA = "response.output_text.delta"


class _OpenItem:
    """The fragments of one output item that has not sent its ``output_item.done`` yet."""

    __slots__ = ("arguments", "content", "reasoning", "summary")

    def __init__(self) -> None:
        # (content_index, part type) -> text fragments
        self.content: dict[tuple[int, str], list[str]] = {}
        self.arguments: list[str] | None = None
        self.summary: dict[int, list[str]] = {}
        self.reasoning: dict[int, list[str]] = {}

    def apply(self, item: dict[str, object]) -> dict[str, object]:
        """A copy of ``item`` with the fragments received so far filled in."""
        item = dict(item)
        if self.arguments is not None:
            item["arguments"] = "".join(self.arguments)
        if self.content:
            item["content"] = _fill(item.get("content"), self.content.items(), "text")
        if self.summary:
            pieces = (((i, "summary_text"), self.summary[i]) for i in self.summary)
            item["summary"] = _fill(item.get("summary"), pieces, "text")
        if self.reasoning:
            pieces = (((i, "reasoning_text"), self.reasoning[i]) for i in self.reasoning)
            item["content"] = _fill(item.get("content"), pieces, "text")
        return item


def _fill(
    entries: object, pieces: Iterable[tuple[tuple[int, str], list[str]]], field: str
) -> list[dict[str, object]]:
    out: list[dict[str, object]] = [dict(e) for e in as_list(entries) if isinstance(e, Mapping)]
    for (index, kind), fragments in sorted(pieces):
        while len(out) <= index:
            out.append({"type": kind})
        key = "refusal" if kind == "refusal" else field
        out[index] = {**out[index], "type": out[index].get("type") or kind, key: "".join(fragments)}
    return out


class ResponsesStreamDecoder:
    """Turns a Responses event stream into stream events, accumulating the Response."""

    def __init__(self, endpoint: Endpoint, request_id: str | None = None) -> None:
        self.endpoint = endpoint
        self.request_id = request_id
        self.done = False
        self._response: Mapping[str, object] = {}
        self._final: Mapping[str, object] | None = None
        self._items: dict[int, dict[str, object]] = {}
        self._open: dict[int, _OpenItem] = {}
        # output_index of a function call -> its index among the reply's tool calls
        self._tools: dict[int, int] = {}
        self._tools_sent: set[int] = set()
        self._call_ids_sent: set[str] = set()

    @property
    def finished(self) -> bool:
        """True once ``response.completed`` (or ``.incomplete``) has arrived."""
        return self.done

    def feed(self, event: SSEEvent) -> list[StreamEvent]:
        """Decode one SSE event; an error sent in the stream raises its typed APIError.

        Nothing after the terminal event (``response.completed``, ``.incomplete`` or
        ``.failed``) is decoded.
        """
        if self.done or event.data[:6] == "[DONE]":  # compatible servers send [DONE]
            return []
        try:
            data = loads(event.data)
        except ValueError:
            raise unreadable_event(self, event.data) from None
        if not isinstance(data, dict):
            raise unreadable_event(self, event.data, "a JSON object")
        kind = data.get("type") or event.event
        if kind == _TEXT_DELTA:  # most events of a stream: keep them cheap
            delta = data.get("delta")
            if not delta:
                return []
            self._fragments(data, data.get("content_index") or 0, "output_text").append(delta)
            return [TextDelta(delta)]
        handler = _HANDLERS.get(kind)
        if handler is not None:
            return handler(self, data)
        if kind == "error" or event.event == "error" or isinstance(data.get("error"), Mapping):
            raise self._in_stream_error(data)
        return []  # progress events of server tools, annotations …: the final items carry them

    def response(self) -> Response:
        """The Response accumulated so far (complete once the stream has finished)."""
        output = self._output()
        if self._final is not None:
            final_output = get_list(self._final, "output")
            return response_of(
                self.endpoint,
                self._final,
                self.request_id,
                output=final_output if final_output else output,
            )
        return response_of(self.endpoint, self._response, self.request_id, output=output)

    # --- handlers ------------------------------------------------------------------------

    def _started(self, data: Mapping[str, object]) -> list[StreamEvent]:
        response = data.get("response")
        if isinstance(response, Mapping):
            self._response = response
        return []

    def _item_added(self, data: Mapping[str, object]) -> list[StreamEvent]:
        item = data.get("item")
        if not isinstance(item, Mapping):
            return []
        index = _output_index(data)
        self._items[index] = dict(item)
        if item.get("type") != "function_call":
            return []
        ordinal = self._tools.setdefault(index, len(self._tools))
        arguments = get_str(item, "arguments")
        self._open_item(index).arguments = [arguments]
        call_id, name = get_str(item, "call_id", None), get_str(item, "name", None)
        return [ToolCallDelta(ordinal, call_id, name, arguments)]

    def _item_done(self, data: Mapping[str, object]) -> list[StreamEvent]:
        item = data.get("item")
        if not isinstance(item, Mapping):
            return []
        index = _output_index(data)
        self._items[index] = dict(item)
        self._open.pop(index, None)
        return self._tool_call_done(index, item)

    def _tool_call_done(self, index: int, item: Mapping[str, object]) -> list[StreamEvent]:
        if item.get("type") != "function_call" or index in self._tools_sent:
            return []
        # The final response may list a call at another index than the stream gave it (a
        # proxy that sent an unstreamed item late): a call id already sent is not sent again.
        call_id = get_str(item, "call_id")
        if call_id and call_id in self._call_ids_sent:
            return []
        if call_id:
            self._call_ids_sent.add(call_id)
        self._tools_sent.add(index)
        self._tools.setdefault(index, len(self._tools))
        return [ToolCallEvent(tool_call_of(item))]

    def _refusal_delta(self, data: Mapping[str, object]) -> list[StreamEvent]:
        delta = get_str(data, "delta")
        if not delta:
            return []
        self._fragments(data, get_int(data, "content_index"), "refusal").append(delta)
        return [RefusalDelta(delta)]

    def _arguments_delta(self, data: Mapping[str, object]) -> list[StreamEvent]:
        delta = get_str(data, "delta")
        index = _output_index(data)
        item = self._open_item(index)
        if item.arguments is None:
            item.arguments = []
        item.arguments.append(delta)
        ordinal = self._tools.setdefault(index, len(self._tools))
        return [ToolCallDelta(ordinal, None, None, delta)] if delta else []

    def _arguments_done(self, data: Mapping[str, object]) -> list[StreamEvent]:
        arguments = data.get("arguments")
        if isinstance(arguments, str):
            self._open_item(_output_index(data)).arguments = [arguments]
        return []

    def _summary_delta(self, data: Mapping[str, object]) -> list[StreamEvent]:
        delta = get_str(data, "delta")
        if not delta:
            return []
        index = get_int(data, "summary_index")
        summaries = self._open_item(_output_index(data)).summary
        fragments = summaries.get(index)
        if fragments is None:
            fragments = summaries[index] = []
            # Summary parts are joined by a blank line, in the stream as in the Response.
            shown = "\n\n" + delta if index else delta
        else:
            shown = delta
        fragments.append(delta)
        return [ReasoningDelta(shown)]

    def _reasoning_delta(self, data: Mapping[str, object]) -> list[StreamEvent]:
        delta = get_str(data, "delta")
        if not delta:
            return []
        index = get_int(data, "content_index")
        self._open_item(_output_index(data)).reasoning.setdefault(index, []).append(delta)
        return [ReasoningDelta(delta)]

    def _completed(self, data: Mapping[str, object]) -> list[StreamEvent]:
        final = data.get("response")
        self._final = final if isinstance(final, Mapping) else dict(self._response)
        self.done = True
        events: list[StreamEvent] = []
        for index, item in enumerate(get_list(self._final, "output")):
            if isinstance(item, Mapping):
                events += self._tool_call_done(index, item)
        response = self.response()
        events.append(UsageEvent(response.usage))
        events.append(FinishEvent(response.finish_reason))
        return events

    def _failed(self, data: Mapping[str, object]) -> list[StreamEvent]:
        final = data.get("response")
        self._final = final if isinstance(final, Mapping) else dict(self._response)
        self.done = True
        raise failure_error(self.endpoint, self._final, self.response(), self.request_id)

    # --- helpers -------------------------------------------------------------------------

    def _open_item(self, index: int) -> _OpenItem:
        item = self._open.get(index)
        if item is None:
            item = self._open[index] = _OpenItem()
            self._items.setdefault(index, {"type": "message", "role": "assistant"})
        return item

    def _fragments(self, data: Mapping[str, object], content_index: int, kind: str) -> list[str]:
        content = self._open_item(_output_index(data)).content
        fragments = content.get((content_index, kind))
        if fragments is None:
            fragments = content[(content_index, kind)] = []
        return fragments

    def _output(self) -> list[dict[str, object]]:
        out = []
        for index in sorted(self._items):
            item = self._items[index]
            open_item = self._open.get(index)
            out.append(item if open_item is None else open_item.apply(item))
        return out

    def _in_stream_error(self, data: Mapping[str, object]) -> APIError:
        error = data.get("error")
        error = error if isinstance(error, Mapping) else data
        return in_stream_error(self, error, dict(data))


def _output_index(data: Mapping[str, object]) -> int:
    index = data.get("output_index")
    return index if isinstance(index, int) else 0


_Handler = Callable[[ResponsesStreamDecoder, Mapping[str, object]], list[StreamEvent]]
_HANDLERS: Mapping[str, _Handler] = {
    "response.created": ResponsesStreamDecoder._started,
    "response.in_progress": ResponsesStreamDecoder._started,
    "response.queued": ResponsesStreamDecoder._started,
    "response.output_item.added": ResponsesStreamDecoder._item_added,
    "response.output_item.done": ResponsesStreamDecoder._item_done,
    "response.refusal.delta": ResponsesStreamDecoder._refusal_delta,
    "response.function_call_arguments.delta": ResponsesStreamDecoder._arguments_delta,
    "response.function_call_arguments.done": ResponsesStreamDecoder._arguments_done,
    "response.reasoning_summary_text.delta": ResponsesStreamDecoder._summary_delta,
    "response.reasoning_text.delta": ResponsesStreamDecoder._reasoning_delta,
    "response.completed": ResponsesStreamDecoder._completed,
    "response.incomplete": ResponsesStreamDecoder._completed,
    "response.failed": ResponsesStreamDecoder._failed,
}


def stream_decoder(endpoint: Endpoint, request_id: str | None) -> ResponsesStreamDecoder:
    """A decoder for one Responses event stream."""
    return ResponsesStreamDecoder(endpoint, request_id)
