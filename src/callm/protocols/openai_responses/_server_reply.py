"""Writing OpenAI Responses replies and errors for a caller: the response object and its
output items, shared by whole replies and the event stream (see ``server.py``)."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, assert_never

from ..._core.errors import CallmError
from ..._core.json import get_list
from ..._core.types import (
    Document,
    FinishReason,
    Image,
    Part,
    RawPart,
    Reasoning,
    Refusal,
    Response,
    Text,
    ToolCall,
    ToolResult,
    Usage,
)
from .._shared.errors import twin_status
from .._shared.ingress import dumps
from .._shared.reasoning import is_foreign, seal
from ..openai_chat import server as chat_server
from .client import ANNOTATIONS, CONTENT_PART, PROTOCOL


def new_id(prefix: str) -> str:
    """A fresh id of the kind the API uses (``resp_``, ``msg_``, ``fc_``, ``rs_``)."""
    return prefix + os.urandom(12).hex()


# --- usage, status --------------------------------------------------------------------------


def encode_usage(usage: Usage) -> dict[str, object]:
    """Usage in the Responses shape, cached and reasoning tokens included."""
    return {
        "input_tokens": usage.input_tokens,
        "input_tokens_details": {
            "cached_tokens": usage.cached_input_tokens,
            "cache_write_tokens": usage.cache_write_tokens,
        },
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": usage.total_tokens,
    }


# callm's finish reason -> why a response is "incomplete" (the rest are "completed").
_INCOMPLETE: Mapping[FinishReason, str] = {
    "length": "max_output_tokens",
    "content_filter": "content_filter",
}


def status_of(reason: FinishReason | None) -> tuple[str, dict[str, str] | None]:
    """The response ``status`` and ``incomplete_details`` for a finish reason."""
    incomplete = _INCOMPLETE.get(reason) if reason is not None else None
    if incomplete is None:
        return "completed", None
    return "incomplete", {"reason": incomplete}


def response_object(
    response_id: str,
    model: str,
    output: Sequence[Mapping[str, object]],
    *,
    status: str,
    usage: Usage | None = None,
    incomplete: Mapping[str, str] | None = None,
    error: Mapping[str, object] | None = None,
    created: int | None = None,
) -> dict[str, object]:
    """A ``response`` object with the fields the SDK's ``Response`` type requires."""
    return {
        "id": response_id,
        "object": "response",
        "created_at": created if created is not None else int(time.time()),
        "status": status,
        "background": False,
        "error": dict(error) if error is not None else None,
        "incomplete_details": dict(incomplete) if incomplete is not None else None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": list(output),
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": False,
        "temperature": None,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": None,
        "truncation": "disabled",
        "usage": encode_usage(usage) if usage is not None else None,
        "metadata": {},
    }


def encode_response(response: Response, *, model: str) -> dict[str, object]:
    """The response object an OpenAI SDK reads for ``response``."""
    status, incomplete = status_of(response.finish_reason)
    upstream = response.id
    response_id = upstream if upstream.startswith("resp_") else new_id("resp_")
    output = OutputWriter().items(response.content)
    return response_object(
        response_id, model, output, status=status, usage=response.usage, incomplete=incomplete
    )


# --- output items ---------------------------------------------------------------------------


class OutputWriter:
    """Turns a reply's parts into output items, in order.

    Texts and refusals that follow one another share one ``message`` item; a tool call is a
    ``function_call`` item, reasoning a ``reasoning`` item (another protocol's companions
    sealed into ``encrypted_content``), and this protocol's unmodelled items go back as they
    came. ``ids`` gives an item its id (a stream hands out the ids it already sent).
    """

    def __init__(self, ids: Callable[[str, Part, str | None], str] | None = None) -> None:
        # ids(prefix, part, preferred): the item's id; preferred is the id the upstream gave
        # it (a caller sends this protocol's items back by their ids), else None.
        self._ids = ids or (lambda prefix, part, preferred: preferred or new_id(prefix))
        self._out: list[dict[str, Any]] = []
        self._content: list[dict[str, Any]] | None = None
        self._next_id: str | None = None  # the id a native reasoning item says follows it

    def items(self, parts: Sequence[Part]) -> list[dict[str, Any]]:
        for part in parts:
            self.add(part)
        return self._out

    def add(self, part: Part) -> None:
        match part:
            case Text(text=text):
                self._text({"type": "output_text", "text": text, "annotations": []}, part)
            case Refusal(text=text):
                self._text({"type": "refusal", "refusal": text}, part)
            case ToolCall():
                self._item(function_call_item(part, self._take_id("fc_", part)))
            case Reasoning():
                self._reasoning(part)
            case RawPart(protocol=protocol, type=kind, data=data):
                if protocol != PROTOCOL:
                    return  # another protocol's record: nothing in this format holds it
                if kind == ANNOTATIONS:
                    if self._content and self._content[-1].get("type") == "output_text":
                        self._content[-1]["annotations"] = list(get_list(data, "annotations"))
                elif kind == CONTENT_PART:
                    self._text(dict(data), part)
                else:
                    self._item(dict(data))
            case Image() | Document() | ToolResult():
                return  # a reply's media and results have no output item here
            case _:
                assert_never(part)

    def _text(self, entry: dict[str, Any], part: Part) -> None:
        if self._content is None:
            self._content = []
            message_id = self._take_id("msg_", part)
            self._item(message_item(message_id, self._content), keep_open=True)
        self._content.append(entry)

    def _reasoning(self, part: Reasoning) -> None:
        native = part.protocol in (None, PROTOCOL) and bool(part.id)
        self._item(reasoning_item(part, self._ids("rs_", part, part.id if native else None)))
        self._next_id = part.signature if native else None

    def _take_id(self, prefix: str, part: Part) -> str:
        given, self._next_id = self._next_id, None
        return self._ids(prefix, part, given)

    def _item(self, item: dict[str, Any], keep_open: bool = False) -> None:
        if not keep_open:
            self._content = None
        self._out.append(item)


def message_item(
    item_id: str, content: list[dict[str, Any]], status: str = "completed"
) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": status,
        "content": content,
    }


def function_call_item(call: ToolCall, item_id: str, status: str = "completed") -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "function_call",
        "status": status,
        "call_id": call.id,
        "name": call.name,
        "arguments": arguments_of(call),
    }


def arguments_of(call: ToolCall) -> str:
    """The arguments as the model sent them (kept verbatim when they were not JSON)."""
    if call.raw_arguments is not None and (call.invalid_arguments or call.raw_arguments):
        return call.raw_arguments
    return dumps(dict(call.arguments))


def reasoning_item(part: Reasoning, item_id: str) -> dict[str, Any]:
    """A ``reasoning`` item: this protocol's own id and data, or another's sealed."""
    item: dict[str, Any] = {"id": item_id, "type": "reasoning", "summary": []}
    if part.text:
        item["summary"] = [{"type": "summary_text", "text": part.text}]
    if is_foreign(part, PROTOCOL):
        item["encrypted_content"] = seal(part)
    elif part.data is not None:
        item["encrypted_content"] = part.data
    return item


# --- errors -------------------------------------------------------------------------------


def encode_error(error: CallmError, *, status: int | None = None) -> tuple[int, dict[str, object]]:
    """The status and ``{"error": {"message", "type", "param", "code"}}`` body (the same
    envelope as Chat Completions)."""
    return chat_server.encode_error(error, status=status)


# response.error.code of a failed response, by the HTTP status of the same failure.
_FAILURE_CODES: Mapping[int, str] = {429: "rate_limit_exceeded", 400: "invalid_prompt"}


def failure(error: CallmError) -> dict[str, object]:
    """``response.error`` of a response that failed after its stream began: the error's own
    code when it is one a client can type, else the code the API gives such a failure."""
    status, body = encode_error(error)
    inner = body["error"]
    assert isinstance(inner, dict)
    code = inner.get("code")
    if not (isinstance(code, str) and twin_status({"code": code})):
        code = _FAILURE_CODES.get(status, "server_error")
    return {"code": code, "message": inner.get("message") or ""}
