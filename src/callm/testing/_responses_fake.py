"""The fake's OpenAI Responses routes: ``POST /v1/responses`` (and ``/openai/v1/responses``).

Answers are built from the same scripted :class:`Reply` / :class:`Fault` queue as the Chat
routes, or from the offline model, which reads the request translated into the Chat
Completions shape (:func:`chat_shaped`). Replies come back as a response object, or as the
typed event stream (``event:`` + ``data:`` lines, each JSON with its ``type`` and a
``sequence_number``, no ``[DONE]``), the way api.openai.com sends them.

Faults: a ``status`` fault answers in OpenAI's error envelope; ``disconnect`` closes the
connection; ``drop_mid_stream`` cuts the body after ``after_chunks`` events; ``stall``
pauses there; ``slow_first_byte`` delays the status line; ``malformed_json`` sends a
``data: {not json`` event (a truncated JSON body when not streaming); ``stream_error``
ends the stream with ``response.failed`` — the terminal event the real API sends when a
response fails after streaming began, carrying ``status: "failed"`` and
``error: {code, message}``, the code by the fault's status (``rate_limit_exceeded`` for 429,
``invalid_prompt`` for 400, else ``server_error``; a plain HTTP error when not streaming).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring

from aiohttp import web

from .._core.json import as_object, get_int, get_list, get_object, get_str
from . import _http, local_model
from ._script import FakeToolCall, Fault, Reply, invalid_key_message, split_fragments
from ._state import ServerState
from ._wire import dumps

_JSON = "application/json"
_SSE_HEADERS = {"Content-Type": "text/event-stream; charset=utf-8", "Cache-Control": "no-cache"}
_ARGUMENT_PIECE = 8
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
# Chat Completions fields the Responses API refuses, with the name it wants instead.
_CHAT_ONLY = {
    "messages": "input",
    "max_tokens": "max_output_tokens",
    "max_completion_tokens": "max_output_tokens",
    "stop": None,
    "response_format": "text.format",
    "n": None,
    "seed": None,
}
_ORPHAN_REASONING = (
    "Item '{}' of type 'reasoning' was provided without its required following item."
)


def register(add: _http.AddRoute, state: ServerState) -> None:
    """Add this protocol's routes to the fake server's application."""
    handler = _Handler(state).responses
    for path in ("/v1/responses", "/openai/v1/responses", "/openai/responses"):
        add("POST", path, handler)


class _Handler:
    def __init__(self, state: ServerState) -> None:
        self._state = state

    async def responses(self, request: web.Request) -> web.StreamResponse:
        record = await _http.record_request(request)
        self._state.record(record)
        request_id = "req_" + self._state.new_id()
        key = self._state.api_key
        if key is not None:
            given = _http._given_key(record.headers)
            if given != key:
                message = _NO_KEY if given is None else invalid_key_message()
                raise _http.Rejected(_http._error(401, message, request_id, code="invalid_api_key"))
        body = _http._body(record, request_id)
        _validate(body, request_id)
        item = self._state.pop()
        fault = item if isinstance(item, Fault) else None
        if fault is not None and fault.kind == "status":
            return _http._fault_status(fault, request_id)
        if fault is not None and fault.kind == "disconnect":
            return _http._drop(request, web.StreamResponse())
        chat = chat_shaped(body)
        reply = _http._reply(item, chat)
        builder = _Builder(self._state, body, reply, local_model.prompt_tokens(chat))
        headers = {"x-request-id": request_id, **reply.headers}
        if fault is not None and fault.kind == "slow_first_byte":
            await asyncio.sleep(fault.seconds)
        if body.get("stream") is True:
            return await _stream(request, builder, headers, fault)
        return await _http._whole(request, dumps(builder.response()).encode(), headers, fault)


# response.error.code of a failed response, by the HTTP status of the same failure.
_FAILURE_CODES = {429: "rate_limit_exceeded", 400: "invalid_prompt"}


def _validate(body: Mapping[str, object], request_id: str) -> None:
    """The checks the real API makes that a client is most likely to trip."""
    model = body.get("model")
    if not isinstance(model, str) or not model:
        message = "Missing required parameter: 'model'."
        raise _http.Rejected(
            _http._error(400, message, request_id, param="model", code="missing_required_parameter")
        )
    for name, instead in _CHAT_ONLY.items():
        if name in body:
            hint = (
                f" In the Responses API, this parameter has moved to '{instead}'."
                if instead
                else ""
            )
            message = f"Unsupported parameter: '{name}'.{hint}"
            raise _http.Rejected(
                _http._error(400, message, request_id, param=name, code="unsupported_parameter")
            )
    items = body.get("input")
    if body.get("store") is False or not isinstance(items, list):
        return
    for index, item in enumerate(items):
        if isinstance(item, dict) and item.get("type") == "reasoning":
            following = items[index + 1] if index + 1 < len(items) else None
            if not isinstance(following, dict) or not following.get("id"):
                message = _ORPHAN_REASONING.format(item.get("id"))
                raise _http.Rejected(_http._error(400, message, request_id, param="input"))


# --- the request, as the offline model reads it -------------------------------------------


def chat_shaped(body: Mapping[str, object]) -> dict[str, object]:
    """A Responses request body translated into the Chat Completions shape."""
    messages: list[dict[str, object]] = []
    if instructions := get_str(body, "instructions"):
        messages.append({"role": "system", "content": instructions})
    items = body.get("input")
    if isinstance(items, str):
        messages.append({"role": "user", "content": items})
    elif isinstance(items, list):
        for item in items:
            if isinstance(item, dict):
                _add_item(messages, item)
    chat: dict[str, object] = {"model": body.get("model"), "messages": messages}
    tools = [_chat_tool(t) for t in get_list(body, "tools") if isinstance(t, dict)]
    if tools:
        chat["tools"] = [t for t in tools if t is not None]
    if "tool_choice" in body:
        chat["tool_choice"] = _chat_tool_choice(body["tool_choice"])
    if isinstance(body.get("max_output_tokens"), int):
        chat["max_tokens"] = body["max_output_tokens"]
    fmt = as_object(get_object(body, "text").get("format"))
    if fmt is not None:
        chat["response_format"] = _chat_format(fmt)
    reasoning = body.get("reasoning")
    if isinstance(reasoning, dict) and reasoning.get("effort"):
        chat["reasoning_effort"] = reasoning["effort"]
    return chat


def _add_item(messages: list[dict[str, object]], item: dict[str, object]) -> None:
    kind = item.get("type", "message")
    if kind == "message":
        messages.append({"role": item.get("role"), "content": _chat_content(item.get("content"))})
    elif kind == "function_call":
        call = {
            "id": item.get("call_id"),
            "type": "function",
            "function": {"name": item.get("name"), "arguments": item.get("arguments")},
        }
        last = messages[-1] if messages else None
        if last is None or last.get("role") != "assistant":
            last = {"role": "assistant", "content": None}
            messages.append(last)
        calls = last.setdefault("tool_calls", [])
        if isinstance(calls, list):
            calls.append(call)
    elif kind == "function_call_output":
        output = item.get("output")
        content = output if isinstance(output, str) else _chat_content(output)
        messages.append({"role": "tool", "tool_call_id": item.get("call_id"), "content": content})


def _chat_content(content: object) -> object:
    if not isinstance(content, list):
        return content
    parts = []
    for part in content:
        if not isinstance(part, dict):
            continue
        kind = part.get("type")
        if kind in ("input_text", "output_text"):
            parts.append({"type": "text", "text": part.get("text")})
        elif kind == "refusal":
            parts.append({"type": "text", "text": part.get("refusal")})
        elif kind == "input_image":
            parts.append({"type": "image_url", "image_url": {"url": part.get("image_url")}})
        else:
            parts.append({"type": "file", "file": part})
    return parts


def _chat_tool(tool: Mapping[str, object]) -> dict[str, object] | None:
    if tool.get("type") != "function" or not tool.get("name"):
        return None
    function = {k: tool[k] for k in ("name", "description", "parameters") if k in tool}
    return {"type": "function", "function": function}


def _chat_tool_choice(choice: object) -> object:
    if isinstance(choice, dict) and choice.get("type") == "function":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return choice


def _chat_format(fmt: Mapping[str, object]) -> Mapping[str, object]:
    if fmt.get("type") != "json_schema":
        return fmt
    return {"type": "json_schema", "json_schema": {k: v for k, v in fmt.items() if k != "type"}}


# --- the answer ---------------------------------------------------------------------------


class _Builder:
    """One reply as a response object and as the event stream that builds it."""

    def __init__(self, state: ServerState, body: Mapping[str, object], reply: Reply, prompt: int):
        self.body = body
        self.reply = reply
        self.prompt_tokens = prompt
        self.id = "resp_" + state.new_id()
        self.created = int(time.time())
        self.items = _items(state, body, reply)
        self._seq = 0

    def response(
        self, status: str | None = None, output: Sequence[object] | None = None
    ) -> dict[str, object]:
        """The response object; ``status`` given for the in-progress and failed copies."""
        final = status is None
        status = status or self._status()
        body = self.body
        reason = _incomplete_reason(self.reply)
        return {
            "id": self.id,
            "object": "response",
            "created_at": self.created,
            "status": status,
            "background": False,
            "error": None,
            "incomplete_details": {"reason": reason} if final and reason else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"),
            "model": self.reply.model or body.get("model"),
            "output": list(self.items if output is None else output),
            "parallel_tool_calls": body.get("parallel_tool_calls", True),
            "previous_response_id": body.get("previous_response_id"),
            "reasoning": {"effort": get_object(body, "reasoning").get("effort"), "summary": None},
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": body.get("text") or {"format": {"type": "text"}},
            "tool_choice": body.get("tool_choice", "auto"),
            "tools": body.get("tools") or [],
            "top_p": body.get("top_p", 1.0),
            "truncation": "disabled",
            "usage": self._usage() if final else None,
            "user": body.get("user"),
            "metadata": body.get("metadata") or {},
        }

    def _status(self) -> str:
        return "incomplete" if _incomplete_reason(self.reply) else "completed"

    def _usage(self) -> dict[str, object]:
        given = self.reply.usage
        if given is not None and "prompt_tokens" not in given:
            return dict(given)  # already in the Responses shape
        if given is not None:
            prompt, output = get_int(given, "prompt_tokens"), get_int(given, "completion_tokens")
            reasoning = get_int(get_object(given, "completion_tokens_details"), "reasoning_tokens")
        else:
            reasoning = len(split_fragments(self.reply.reasoning or ""))
            calls = sum(1 + len(_argument_pieces(c)) for c in self.reply.tool_calls)
            prompt, output = self.prompt_tokens, len(self.reply.fragments()) + reasoning + calls
        return {
            "input_tokens": prompt,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": output,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": prompt + output,
        }

    # --- the event stream ----------------------------------------------------------------

    def frame(self, kind: str, fields: str) -> str:
        """One event; ``fields`` is the JSON of the fields after ``type`` and the number."""
        self._seq += 1
        number = self._seq - 1
        return f'event: {kind}\ndata: {{"type":"{kind}","sequence_number":{number}{fields}}}\n\n'

    def event(self, kind: str, **fields: object) -> str:
        return self.frame(kind, "," + dumps(fields)[1:-1] if fields else "")

    def events(self) -> list[str]:
        """Every event of the stream, terminal event included."""
        frames = [
            self.event("response.created", response=self.response("in_progress", ())),
            self.event("response.in_progress", response=self.response("in_progress", ())),
        ]
        for index, item in enumerate(self.items):
            frames += _ITEM_EVENTS[get_str(item, "type")](self, index, item)
        terminal = "response.incomplete" if self._status() == "incomplete" else "response.completed"
        frames.append(self.event(terminal, response=self.response()))
        return frames

    def failed(self, message: str, status: int = 500) -> str:
        """The ``response.failed`` event that ends a stream the server gave up on."""
        response = self.response("failed", ())
        response["error"] = {"code": _FAILURE_CODES.get(status, "server_error"), "message": message}
        return self.event("response.failed", response=response)

    def _message_events(self, index: int, item: dict[str, object]) -> list[str]:
        item_id = get_str(item, "id")
        frames = [self._added(index, {**item, "status": "in_progress", "content": []})]
        at = f',"item_id":{encode_basestring(item_id)},"output_index":{index}'
        parts = (as_object(part) or {} for part in get_list(item, "content"))
        for position, part in enumerate(parts):
            where = f'{at},"content_index":{position}'
            if part["type"] == "output_text":
                empty = {**part, "text": ""}
                frames.append(
                    self.event(
                        "response.content_part.added",
                        item_id=item_id,
                        output_index=index,
                        content_index=position,
                        part=empty,
                    )
                )
                for fragment in self.reply.fragments():
                    frames.append(
                        self.frame(
                            "response.output_text.delta",
                            f'{where},"delta":{encode_basestring(fragment)},"logprobs":[]',
                        )
                    )
                frames.append(
                    self.frame(
                        "response.output_text.done",
                        f'{where},"text":{encode_basestring(get_str(part, "text"))},"logprobs":[]',
                    )
                )
            else:
                empty = {**part, "refusal": ""}
                frames.append(
                    self.event(
                        "response.content_part.added",
                        item_id=item_id,
                        output_index=index,
                        content_index=position,
                        part=empty,
                    )
                )
                refusal = get_str(part, "refusal")
                for fragment in split_fragments(refusal) or [refusal]:
                    frames.append(
                        self.frame(
                            "response.refusal.delta",
                            f'{where},"delta":{encode_basestring(fragment)}',
                        )
                    )
                frames.append(
                    self.frame(
                        "response.refusal.done",
                        f'{where},"refusal":{encode_basestring(refusal)}',
                    )
                )
            frames.append(
                self.event(
                    "response.content_part.done",
                    item_id=item_id,
                    output_index=index,
                    content_index=position,
                    part=part,
                )
            )
        frames.append(self._done(index, item))
        return frames

    def _call_events(self, index: int, item: dict[str, object]) -> list[str]:
        frames = [self._added(index, {**item, "status": "in_progress", "arguments": ""})]
        at = f',"item_id":{encode_basestring(get_str(item, "id"))},"output_index":{index}'
        text = get_str(item, "arguments")
        for start in range(0, len(text), _ARGUMENT_PIECE):
            piece = text[start : start + _ARGUMENT_PIECE]
            frames.append(
                self.frame(
                    "response.function_call_arguments.delta",
                    f'{at},"delta":{encode_basestring(piece)}',
                )
            )
        frames.append(
            self.frame(
                "response.function_call_arguments.done",
                f'{at},"arguments":{encode_basestring(text)}',
            )
        )
        frames.append(self._done(index, item))
        return frames

    def _reasoning_events(self, index: int, item: dict[str, object]) -> list[str]:
        frames = [self._added(index, {**item, "summary": []})]
        at = f',"item_id":{encode_basestring(get_str(item, "id"))},"output_index":{index}'
        at += ',"summary_index":0'
        summary = as_object(get_list(item, "summary")[0]) or {}
        text = get_str(summary, "text")
        empty = {"type": "summary_text", "text": ""}
        frames.append(
            self.frame("response.reasoning_summary_part.added", f'{at},"part":{dumps(empty)}')
        )
        for fragment in split_fragments(text):
            frames.append(
                self.frame(
                    "response.reasoning_summary_text.delta",
                    f'{at},"delta":{encode_basestring(fragment)}',
                )
            )
        frames.append(
            self.frame(
                "response.reasoning_summary_text.done", f'{at},"text":{encode_basestring(text)}'
            )
        )
        frames.append(
            self.frame("response.reasoning_summary_part.done", f'{at},"part":{dumps(summary)}')
        )
        frames.append(self._done(index, item))
        return frames

    def _added(self, index: int, item: dict[str, object]) -> str:
        return self.event("response.output_item.added", output_index=index, item=item)

    def _done(self, index: int, item: dict[str, object]) -> str:
        return self.event("response.output_item.done", output_index=index, item=item)


_ITEM_EVENTS = {
    "message": _Builder._message_events,
    "function_call": _Builder._call_events,
    "reasoning": _Builder._reasoning_events,
}


def _items(state: ServerState, body: Mapping[str, object], reply: Reply) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    if reply.reasoning:
        reasoning_id = "rs_" + state.new_id()
        reasoning: dict[str, object] = {
            "id": reasoning_id,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": reply.reasoning}],
        }
        if "reasoning.encrypted_content" in get_list(body, "include"):
            reasoning["encrypted_content"] = "fake-encrypted-" + reasoning_id
        items.append(reasoning)
    text = reply.full_text()
    if text or reply.refusal is not None or not reply.tool_calls:
        content: list[dict[str, object]] = []
        if text or reply.refusal is None:
            content.append({"type": "output_text", "annotations": [], "logprobs": [], "text": text})
        if reply.refusal is not None:
            content.append({"type": "refusal", "refusal": reply.refusal})
        items.append(
            {
                "id": "msg_" + state.new_id(),
                "type": "message",
                "status": "completed",
                "content": content,
                "role": "assistant",
            }
        )
    items += [_call_item(state, call, i) for i, call in enumerate(reply.tool_calls)]
    return items


def _call_item(state: ServerState, call: FakeToolCall, index: int) -> dict[str, object]:
    return {
        "id": "fc_" + state.new_id(),
        "type": "function_call",
        "status": "completed",
        "arguments": call.arguments_json(),
        "call_id": call.id if call.id is not None else f"call_fake{index}",
        "name": call.name,
    }


def _argument_pieces(call: FakeToolCall) -> list[str]:
    text = call.arguments_json()
    return [text[i : i + _ARGUMENT_PIECE] for i in range(0, len(text), _ARGUMENT_PIECE)]


def _incomplete_reason(reply: Reply) -> str | None:
    if reply.finish_reason == "length":
        return "max_output_tokens"
    if reply.finish_reason == "content_filter":
        return "content_filter"
    return None


async def _stream(
    request: web.Request, builder: _Builder, headers: dict[str, str], fault: Fault | None
) -> web.StreamResponse:
    """The event stream, written in one go unless a fault needs to cut it."""
    frames = builder.events()
    response = web.StreamResponse(headers={**_SSE_HEADERS, **headers})
    response.enable_chunked_encoding()
    await response.prepare(request)
    if fault is None or fault.kind == "slow_first_byte":
        await response.write("".join(frames).encode())
        await response.write_eof()
        return response
    cut = min(fault.after_chunks, len(frames))
    if cut:
        await response.write("".join(frames[:cut]).encode())
    if fault.kind == "drop_mid_stream":
        return _http._drop(request, response)
    if fault.kind == "stall":
        await asyncio.sleep(fault.seconds)
        rest = "".join(frames[cut:])
    elif fault.kind == "stream_error":
        rest = builder.failed(str((fault.error or {}).get("message")), fault.status_code)
    else:  # malformed_json
        rest = "event: response.output_text.delta\ndata: {not json\n\n"
    await response.write(rest.encode())
    await response.write_eof()
    return response
