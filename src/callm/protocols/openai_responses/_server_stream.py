"""Writing a callm event stream as the OpenAI Responses typed event stream, for a caller's SDK.

Every event is ``event: <type>`` and a ``data:`` line holding its ``type`` and a
``sequence_number``, in the order the API sends them: ``response.created`` and
``response.in_progress``; per output item ``response.output_item.added``, its content
(``content_part.added``, ``output_text.delta`` …, ``output_text.done``,
``content_part.done``; ``function_call_arguments.delta`` … ``.done``;
``reasoning_summary_text.delta`` …) and ``response.output_item.done``; then
``response.completed`` (or ``response.incomplete``) with the whole response object and its
usage. The openai SDK checks that an item keeps its id from ``added`` to ``done`` and in the
final response, so the ids handed out while streaming are the ones the final object uses.
An error after the stream began is ``response.failed``, carrying ``error.code`` and
``error.message``, as the API ends a response that fails mid-way.
"""

from __future__ import annotations

from typing import Any

from ..._core.errors import CallmError
from ..._core.types import (
    FinishEvent,
    Part,
    PartialOutput,
    Reasoning,
    ReasoningDelta,
    RefusalDelta,
    Response,
    StreamEvent,
    TextDelta,
    ToolCall,
    ToolCallDelta,
    ToolCallEvent,
    ToolResultEvent,
    UsageEvent,
)
from .._shared.ingress import dumps
from ._server_reply import (
    OutputWriter,
    arguments_of,
    failure,
    function_call_item,
    message_item,
    new_id,
    response_object,
    status_of,
)


class _Item:
    """An output item the stream has opened: where it is and what it has said so far."""

    __slots__ = ("body", "index", "kind", "open_part", "pieces")

    def __init__(self, index: int, kind: str, body: dict[str, Any]) -> None:
        self.index = index
        self.kind = kind  # "message", "reasoning" or "function_call"
        self.body = body
        self.pieces: list[str] = []  # the open part's text, or a call's arguments
        self.open_part: str | None = None  # "output_text" or "refusal" within a message

    @property
    def id(self) -> str:
        return str(self.body["id"])


class StreamEncoder:
    """One streamed reply as Responses events: ``start``, ``encode`` per event, ``finish``
    with the final Response (or ``error``)."""

    def __init__(self, *, model: str, include_usage: bool = True) -> None:
        # The Responses API always ends with usage: include_usage is accepted for the interface.
        self.model = model
        self.id = new_id("resp_")
        self._seq = 0
        self._started = False
        self._items: list[_Item] = []
        self._open: _Item | None = None  # the open message or reasoning item
        self._calls: dict[int, _Item] = {}  # callm tool index -> its open function call
        self._call_ids: dict[str, int] = {}  # call id -> callm tool index
        self._calls_done: set[int] = set()

    # --- the interface ----------------------------------------------------------------------

    def start(self) -> bytes:
        """``response.created`` and ``response.in_progress``: the response, nothing in it yet."""
        if self._started:
            return b""
        self._started = True
        empty = response_object(self.id, self.model, [], status="in_progress")
        return self._event("response.created", response=empty) + self._event(
            "response.in_progress", response=empty
        )

    def encode(self, event: StreamEvent) -> bytes:
        """The events for one callm stream event (none for usage: it comes at the end)."""
        head = self.start()
        match event:
            case TextDelta(text=text):
                return head + (self._text("output_text", text) if text else b"")
            case RefusalDelta(text=text):
                return head + (self._text("refusal", text) if text else b"")
            case ReasoningDelta(text=text):
                return head + (self._reasoning(text) if text else b"")
            case ToolCallDelta():
                return head + self._tool_delta(event)
            case ToolCallEvent(tool_call=call):
                return head + self._tool_done(call)
            case UsageEvent() | FinishEvent() | ToolResultEvent() | PartialOutput():
                return head
        return head

    def finish(self, response: Response) -> bytes:
        """Close what is open, send the items that never streamed, then the whole response."""
        frames = [self.start(), self._close()]
        for tool_index in list(self._calls):
            frames.append(self._close_call(tool_index, None))
        ids = _FinalIds(self._items)
        output = ids.output(response.content)
        for item in output:
            if item.get("id") not in ids.sent:  # whole items: server tools, bare reasoning data
                index = len(self._items)
                self._items.append(_Item(index, str(item.get("type")), item))
                frames.append(
                    self._event("response.output_item.added", output_index=index, item=item)
                )
                frames.append(
                    self._event("response.output_item.done", output_index=index, item=item)
                )
        status, incomplete = status_of(response.finish_reason)
        final = response_object(
            self.id, self.model, output, status=status, usage=response.usage, incomplete=incomplete
        )
        kind = "response.completed" if status == "completed" else "response.incomplete"
        frames.append(self._event(kind, response=final))
        return b"".join(frames)

    def error(self, error: CallmError) -> bytes:
        """``response.failed``: how the API ends a response that fails after it began."""
        output = [item.body for item in self._items]
        failed = response_object(self.id, self.model, output, status="failed", error=failure(error))
        return self.start() + self._event("response.failed", response=failed)

    # --- items --------------------------------------------------------------------------

    def _text(self, kind: str, text: str) -> bytes:
        frames = b""
        item = self._open
        if item is None or item.kind != "message":
            frames = self._close()
            item, added = self._begin("message", message_item(new_id("msg_"), [], "in_progress"))
            frames += added
        if item.open_part != kind:
            frames += self._close_part(item)
            item.open_part = kind
            part = {"type": "output_text", "text": "", "annotations": []}
            if kind == "refusal":
                part = {"type": "refusal", "refusal": ""}
            frames += self._event("response.content_part.added", **self._at(item), part=part)
        item.pieces.append(text)
        where = self._at(item)
        if kind == "refusal":
            return frames + self._event("response.refusal.delta", **where, delta=text)
        return frames + self._event("response.output_text.delta", **where, delta=text, logprobs=[])

    def _reasoning(self, text: str) -> bytes:
        frames = b""
        item = self._open
        if item is None or item.kind != "reasoning":
            frames = self._close()
            body = {"id": new_id("rs_"), "type": "reasoning", "summary": []}
            item, added = self._begin("reasoning", body)
            frames += added
            empty = {"type": "summary_text", "text": ""}
            frames += self._event(
                "response.reasoning_summary_part.added", **self._summary_at(item), part=empty
            )
        item.pieces.append(text)
        return frames + self._event(
            "response.reasoning_summary_text.delta", **self._summary_at(item), delta=text
        )

    def _tool_delta(self, event: ToolCallDelta) -> bytes:
        frames = b""
        item = self._calls.get(event.index)
        if item is None:
            call = ToolCall(event.id or new_id("call_"), event.name or "", {}, raw_arguments="")
            body = function_call_item(call, new_id("fc_"), "in_progress")
            body["arguments"] = ""
            frames = self._close()
            item, added = self._begin("function_call", body, hold=False)
            self._calls[event.index] = item
            frames += added
            self._call_ids[str(body["call_id"])] = event.index
        if not event.arguments:
            return frames
        item.pieces.append(event.arguments)
        return frames + self._event(
            "response.function_call_arguments.delta",
            item_id=item.id,
            output_index=item.index,
            delta=event.arguments,
        )

    def _tool_done(self, call: ToolCall) -> bytes:
        tool_index = self._call_ids.get(call.id)
        if tool_index is None or tool_index in self._calls_done:
            tool_index = next((i for i in self._calls if i not in self._calls_done), None)
        if tool_index is not None:
            return self._close_call(tool_index, call)
        # A call that arrived whole: its item, its arguments in one piece, done.
        body = function_call_item(call, new_id("fc_"), "in_progress")
        body["arguments"] = ""
        tool_index = -1 - len(self._calls_done)  # a slot no upstream index can take
        frames = self._close()
        item, added = self._begin("function_call", body, hold=False)
        self._calls[tool_index] = item
        frames += added
        arguments = arguments_of(call)
        item.pieces.append(arguments)
        frames += self._event(
            "response.function_call_arguments.delta",
            item_id=item.id,
            output_index=item.index,
            delta=arguments,
        )
        return frames + self._close_call(tool_index, call)

    def _close_call(self, tool_index: int, call: ToolCall | None) -> bytes:
        item = self._calls.pop(tool_index)
        self._calls_done.add(tool_index)
        arguments = arguments_of(call) if call is not None else "".join(item.pieces)
        item.body.update(status="completed", arguments=arguments)
        if call is not None and call.name:
            item.body["name"] = call.name
        frames = self._event(
            "response.function_call_arguments.done",
            item_id=item.id,
            output_index=item.index,
            name=item.body["name"],
            arguments=arguments,
        )
        return frames + self._event(
            "response.output_item.done", output_index=item.index, item=item.body
        )

    def _begin(self, kind: str, body: dict[str, Any], hold: bool = True) -> tuple[_Item, bytes]:
        """A new output item, and its ``output_item.added`` event."""
        item = _Item(len(self._items), kind, body)
        self._items.append(item)
        if hold:
            self._open = item
        return item, self._event("response.output_item.added", output_index=item.index, item=body)

    def _close(self) -> bytes:
        """Close the open message or reasoning item."""
        item, self._open = self._open, None
        if item is None:
            return b""
        if item.kind == "message":
            frames = self._close_part(item)
        else:
            text = "".join(item.pieces)
            part = {"type": "summary_text", "text": text}
            where = self._summary_at(item)
            frames = self._event("response.reasoning_summary_text.done", **where, text=text)
            frames += self._event("response.reasoning_summary_part.done", **where, part=part)
            item.body["summary"] = [part]
        item.body["status"] = "completed"
        if item.kind == "reasoning":
            del item.body["status"]  # reasoning items carry no status here
        return frames + self._event(
            "response.output_item.done", output_index=item.index, item=item.body
        )

    def _close_part(self, item: _Item) -> bytes:
        kind, item.open_part = item.open_part, None
        if kind is None:
            return b""
        text = "".join(item.pieces)
        item.pieces = []
        where = self._at(item)
        if kind == "refusal":
            part: dict[str, Any] = {"type": "refusal", "refusal": text}
            frames = self._event("response.refusal.done", **where, refusal=text)
        else:
            part = {"type": "output_text", "text": text, "annotations": []}
            frames = self._event("response.output_text.done", **where, text=text, logprobs=[])
        item.body["content"].append(part)
        return frames + self._event("response.content_part.done", **where, part=part)

    # --- frames -------------------------------------------------------------------------

    def _at(self, item: _Item) -> dict[str, Any]:
        return {
            "item_id": item.id,
            "output_index": item.index,
            "content_index": len(item.body["content"]),
        }

    def _summary_at(self, item: _Item) -> dict[str, Any]:
        return {"item_id": item.id, "output_index": item.index, "summary_index": 0}

    def _event(self, kind: str, **fields: Any) -> bytes:
        number = self._seq
        self._seq += 1
        payload = dumps(fields)[1:]  # the fields after type and sequence number
        separator = "," if len(payload) > 1 else ""
        head = f'event: {kind}\ndata: {{"type":"{kind}","sequence_number":{number}'
        return f"{head}{separator}{payload}\n\n".encode()


class _FinalIds:
    """The ids of the final response's items: the ones the stream already used, in order.

    A part that streamed (text, reasoning with text, a tool call) takes the id its item had
    in the stream, unless the upstream (of this protocol) gave it one: a caller sends items
    back by the upstream's ids, so that one is kept and remembered as already sent.
    Anything else is new, and goes out whole before the stream ends.
    """

    def __init__(self, items: list[_Item]) -> None:
        self._messages = [i.id for i in items if i.kind == "message"]
        self._reasoning = [i.id for i in items if i.kind == "reasoning"]
        self._calls = {str(i.body["call_id"]): i.id for i in items if i.kind == "function_call"}
        self._calls_in_order = [i.id for i in items if i.kind == "function_call"]
        self.sent = {i.id for i in items}

    def output(self, parts: tuple[Part, ...]) -> list[dict[str, Any]]:
        return OutputWriter(self._id).items(parts)

    def _id(self, prefix: str, part: Part, preferred: str | None) -> str:
        streamed = self._streamed(prefix, part)
        if preferred:
            if streamed is not None:
                self.sent.add(preferred)  # the same item, sent under the stream's id
            return preferred
        return streamed or new_id(prefix)

    def _streamed(self, prefix: str, part: Part) -> str | None:
        """The id the stream gave this part's item, if it streamed."""
        if isinstance(part, ToolCall):
            found = self._calls.pop(part.id, None)
            if found is not None:
                self._calls_in_order.remove(found)
                return found
            return self._calls_in_order.pop(0) if self._calls_in_order else None
        if isinstance(part, Reasoning):
            return self._reasoning.pop(0) if part.text and self._reasoning else None
        if prefix == "msg_" and self._messages:
            return self._messages.pop(0)
        return None
