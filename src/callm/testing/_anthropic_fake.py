"""The fake's Anthropic Messages routes: ``POST /v1/messages`` and ``/v1/messages/count_tokens``.

Faithful to the real API where a client can tell: ``x-api-key`` auth (401
``authentication_error``), a required ``anthropic-version`` header, required ``model``,
``messages`` and ``max_tokens``, error bodies shaped ``{"type": "error", "error": {"type",
"message"}, "request_id"}`` with a ``request-id`` header, and streams of named events
(``event: message_start`` …, a ``ping`` after the first block starts, ``message_stop`` last,
no ``[DONE]``). Scripted :class:`Reply` / :class:`Fault` items are taken one per
``/v1/messages`` call; with none queued the offline model answers, through a translation of
the request into the Chat Completions shape it reads. Token counting takes no scripted item.
The same Messages API answers at Vertex AI's ``…/publishers/anthropic/models/{model}:rawPredict``
and ``:streamRawPredict`` (``anthropic_version: vertex-2023-10-16`` in the body, an OAuth 2.0
bearer token).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring

from aiohttp import web

from .._core.json import as_object, get_int, get_list, get_object, get_str
from . import local_model
from ._google_oauth import check_token
from ._http import _SSE_HEADERS, AddRoute, Rejected, _drop, _whole, record_request
from ._script import FakeToolCall, Fault, Reply, split_fragments
from ._state import ServerState
from ._wire import dumps

_JSON = "application/json"
VERTEX_VERSION = "vertex-2023-10-16"
_ARGUMENT_PIECE = 8
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}
# Types a Fault may name to override the one its status implies. "invalid_request_error" is
# not among them: it is also OpenAI's default, which the status maps more faithfully.
_KNOWN_TYPES = frozenset(_ERROR_TYPES.values()) - {"invalid_request_error"}
# Finish reasons a Reply may give in OpenAI's words, and the stop_reason Anthropic sends.
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
# Fields /v1/messages takes but count_tokens refuses ("Extra inputs are not permitted").
_NOT_COUNTED = (
    "max_tokens",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
)
_SYSTEM_ROLE = (
    'messages: Unexpected role "system". The Messages API accepts a top-level `system` '
    'parameter, not "system" as an input message role.'
)


def register(add: AddRoute, state: ServerState) -> None:
    """Add this protocol's routes to the fake server's application."""
    routes = _Routes(state)
    add("POST", "/v1/messages", routes.messages)
    add("POST", "/v1/messages/count_tokens", routes.count_tokens)
    vertex = "/v1/projects/{project}/locations/{location}/publishers/anthropic/models/{target}"
    add("POST", vertex, routes.vertex)


def error_response(
    status: int,
    message: str,
    request_id: str,
    *,
    type: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> web.Response:
    """An error in Anthropic's shape, the error type derived from the status if not given."""
    kind = type or _error_type(status)
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": request_id}
    return web.Response(
        status=status,
        body=dumps(body).encode(),
        headers={"Content-Type": _JSON, "request-id": request_id, **(headers or {})},
    )


def _error_type(status: int) -> str:
    return _ERROR_TYPES.get(status) or ("api_error" if status >= 500 else "invalid_request_error")


class _Routes:
    def __init__(self, state: ServerState) -> None:
        self._state = state

    async def messages(self, request: web.Request) -> web.StreamResponse:
        body, request_id = await self._admit(request)
        return await self._answer(request, body, request_id)

    async def vertex(self, request: web.Request) -> web.StreamResponse:
        """Vertex AI's ``{model}:rawPredict`` / ``:streamRawPredict`` and
        ``count-tokens:rawPredict``: the Messages API, the model in the URL (counting: in the
        body), ``anthropic_version`` in the body instead of a header, OAuth 2.0 tokens."""
        record = await record_request(request)
        self._state.record(record)
        request_id = "req_vrtx_" + self._state.new_id()
        refused = check_token(self._state, record.headers)
        if refused is not None:
            raise Rejected(refused)
        model, _, method = request.match_info["target"].rpartition(":")
        body: dict[str, object] = record.json if isinstance(record.json, dict) else {}
        problem = _vertex_problem(body, model, method)
        if problem is not None:
            raise Rejected(error_response(400, problem, request_id))
        body = {k: v for k, v in body.items() if k != "anthropic_version"}
        if model == "count-tokens":
            _require(body, request_id, counting=True)
            count = local_model.prompt_tokens(to_chat_request(body))
            return web.Response(
                body=dumps({"input_tokens": count}).encode(),
                headers={"Content-Type": _JSON, "request-id": request_id},
            )
        return await self._answer(request, {**body, "model": model}, request_id)

    async def _answer(
        self, request: web.Request, body: dict[str, object], request_id: str
    ) -> web.StreamResponse:
        _require(body, request_id, counting=False)
        chat = to_chat_request(body)
        item = self._state.pop()
        fault = item if isinstance(item, Fault) else None
        if fault is not None and fault.kind == "status":
            raise Rejected(_fault_status(fault, request_id))
        if fault is not None and fault.kind == "disconnect":
            return _drop(request, web.StreamResponse())
        reply, stop_sequence = _reply(item, chat)
        message = MessageBuilder(
            "msg_" + self._state.new_id(),
            reply.model or str(body["model"]),
            reply,
            local_model.prompt_tokens(chat),
            stop_sequence,
        )
        headers = {"request-id": request_id, **reply.headers}
        if fault is not None and fault.kind == "slow_first_byte":
            await asyncio.sleep(fault.seconds)
        if body.get("stream") is True:
            return await _stream(request, message.events(), headers, fault)
        if fault is not None and fault.kind == "stream_error":
            error = fault.error or {}
            status = fault.status_code
            raise Rejected(error_response(status, str(error.get("message")), request_id))
        return await _whole(request, dumps(message.body()).encode(), headers, fault)

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        body, request_id = await self._admit(request)
        _require(body, request_id, counting=True)
        count = local_model.prompt_tokens(to_chat_request(body))
        payload = dumps({"input_tokens": count}).encode()
        return web.Response(body=payload, headers={"Content-Type": _JSON, "request-id": request_id})

    async def _admit(self, request: web.Request) -> tuple[dict[str, object], str]:
        """Record the request, then check its key, its version header and its JSON body."""
        record = await record_request(request)
        self._state.record(record)
        request_id = "req_" + self._state.new_id()
        key = self._state.api_key
        given = _given_key(record.headers)
        if key is not None and given != key:
            message = "x-api-key header is required" if given is None else "invalid x-api-key"
            raise Rejected(error_response(401, message, request_id))
        if not record.headers.get("anthropic-version"):
            raise Rejected(error_response(400, "anthropic-version: header is required", request_id))
        if not isinstance(record.json, dict):
            message = "There was an error parsing the body of your request: not a JSON object"
            raise Rejected(error_response(400, message, request_id))
        return record.json, request_id


def _vertex_problem(body: Mapping[str, object], model: str, method: str) -> str | None:
    """What Vertex AI refuses in an Anthropic request, as it words it."""
    if method not in ("rawPredict", "streamRawPredict") or not model:
        return f"Method not found: {method or '(none)'}"
    if body.get("anthropic_version") != VERTEX_VERSION:
        return f"anthropic_version: Input should be '{VERTEX_VERSION}'"
    if model != "count-tokens" and "model" in body:
        return "model: Extra inputs are not permitted"
    if (method == "streamRawPredict") != (body.get("stream") is True):
        return "stream: streamRawPredict streams, rawPredict does not"
    return None


def _given_key(headers: Mapping[str, str]) -> str | None:
    """``x-api-key``, or a bearer token: Anthropic's SDK 2.x sends API keys that way."""
    key = headers.get("x-api-key")
    if key is not None:
        return key
    authorization = headers.get("authorization")
    if authorization is not None and authorization.startswith("Bearer "):
        return authorization[len("Bearer ") :]
    return None


# --- request checks and translation ------------------------------------------------------


def _require(body: Mapping[str, object], request_id: str, *, counting: bool) -> None:
    """Refuse what the real API refuses, with its wording."""
    problem = _problem(body, counting)
    if problem is not None:
        raise Rejected(error_response(400, problem, request_id))


def _problem(body: Mapping[str, object], counting: bool) -> str | None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list):
        return "messages: Field required"
    if counting:
        extra = next((k for k in _NOT_COUNTED if k in body), None)
        return f"{extra}: Extra inputs are not permitted" if extra else _messages_problem(messages)
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        return "max_tokens: Field required"
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        return "max_tokens: Input should be a valid integer greater than or equal to 1"
    if "stream" in body and not isinstance(body["stream"], bool):
        return "stream: Input should be a valid boolean"
    return _messages_problem(messages)


def _messages_problem(messages: list[object]) -> str | None:
    for i, item in enumerate(messages):
        message = as_object(item) or {}
        role = message.get("role")
        if role == "system":
            return _SYSTEM_ROLE
        if role not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
        blocks = _blocks(message)
        for block in blocks:
            if isinstance(block, dict) and block.get("type") == "text" and not block.get("text"):
                return "messages: text content blocks must be non-empty"
    return None


def to_chat_request(body: Mapping[str, object]) -> dict[str, object]:
    """The Messages request in the Chat Completions shape the offline model reads."""
    chat: dict[str, object] = {"model": body.get("model"), "messages": _chat_messages(body)}
    tools = [_chat_tool(t) for t in get_list(body, "tools") if isinstance(t, dict)]
    tools = [t for t in tools if t is not None]
    if tools:
        chat["tools"] = tools
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        chat["tool_choice"] = _chat_tool_choice(choice)
    if body.get("max_tokens") is not None:
        chat["max_tokens"] = body["max_tokens"]
    if stops := get_list(body, "stop_sequences"):
        chat["stop"] = list(stops)
    output_format = get_object(get_object(body, "output_config"), "format")
    if output_format.get("type") == "json_schema":
        schema = output_format.get("schema") or {}
        chat["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive"):
        chat["reasoning_effort"] = "medium"  # the offline model then thinks aloud
    return chat


def _chat_messages(body: Mapping[str, object]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    system = _text_of(body.get("system"))
    if system:
        out.append({"role": "system", "content": system})
    for item in get_list(body, "messages"):
        message = as_object(item) or {}
        blocks = _blocks(message)
        if message.get("role") == "assistant":
            out.append(_chat_assistant(blocks))
        else:
            out.extend(_chat_user(blocks))
    return out


def _blocks(message: Mapping[str, object]) -> list[Mapping[str, object]]:
    """A message's content blocks; a string content is one text block."""
    content = message.get("content")
    if not isinstance(content, list):
        return [{"type": "text", "text": content}]
    return [b for b in content if isinstance(b, dict)]


def _chat_assistant(blocks: list[Mapping[str, object]]) -> dict[str, object]:
    text = "".join(get_str(b, "text") for b in blocks if b.get("type") == "text")
    entry: dict[str, object] = {"role": "assistant", "content": text}
    calls = [
        {
            "id": b.get("id"),
            "type": "function",
            "function": {"name": b.get("name"), "arguments": json.dumps(b.get("input") or {})},
        }
        for b in blocks
        if b.get("type") == "tool_use"
    ]
    if calls:
        entry["tool_calls"] = calls
    return entry


def _chat_user(blocks: list[Mapping[str, object]]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = [
        {
            "role": "tool",
            "tool_call_id": b.get("tool_use_id"),
            "content": _text_of(b.get("content")),
        }
        for b in blocks
        if b.get("type") == "tool_result"
    ]
    parts = [
        {"type": "text", "text": b.get("text") or ""}
        if b.get("type") == "text"
        else {"type": str(b.get("type"))}  # images, documents: counted, not read
        for b in blocks
        if b.get("type") != "tool_result"
    ]
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _text_of(content: object) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text") or "" for b in content if isinstance(b, dict))
    return ""


def _chat_tool(tool: Mapping[str, object]) -> dict[str, object] | None:
    if "input_schema" not in tool:  # a server tool (web search, code execution …)
        return None
    function = {
        "name": tool.get("name"),
        "description": tool.get("description") or "",
        "parameters": tool.get("input_schema") or {},
    }
    return {"type": "function", "function": function}


def _chat_tool_choice(choice: Mapping[str, object]) -> object:
    kind = choice.get("type")
    if kind == "tool":
        return {"type": "function", "function": {"name": choice.get("name")}}
    return {"any": "required", "none": "none"}.get(str(kind), "auto")


def _reply(item: Reply | Fault | None, chat: dict[str, object]) -> tuple[Reply, str | None]:
    """The reply, and the stop sequence that ended it (for ``stop_reason: stop_sequence``)."""
    if isinstance(item, Reply):
        return item, None
    if item is not None and item.reply is not None:
        return item.reply, None
    reply = local_model.reply_to(chat)
    stops = [s for s in get_list(chat, "stop") if isinstance(s, str)]
    if not stops or reply.finish_reason is not None or reply.tool_calls:
        return reply, None
    # The offline model cut its text at a stop sequence if the uncut text runs on past it.
    uncut = local_model.reply_to({**chat, "stop": None, "max_tokens": None}).full_text()
    rest = uncut[len(reply.full_text()) :]
    return reply, next((s for s in stops if rest.startswith(s)), None)


# --- replies -----------------------------------------------------------------------------


class MessageBuilder:
    """One reply as Anthropic's message body, or as its stream of named events."""

    def __init__(
        self, id: str, model: str, reply: Reply, prompt_tokens: int, stop_sequence: str | None
    ) -> None:
        self.id = id
        self.model = model
        self.reply = reply
        self.prompt_tokens = prompt_tokens
        self.stop_sequence = stop_sequence

    def stop_reason(self) -> str:
        reason = self.reply.finish_reason
        if reason is not None:
            return _STOP_REASONS.get(reason, reason)  # Anthropic's own names pass through
        if self.reply.refusal is not None:
            return "refusal"
        if self.reply.tool_calls:
            return "tool_use"
        return "stop_sequence" if self.stop_sequence is not None else "end_turn"

    def usage(self) -> dict[str, object]:
        given = self.reply.usage
        if given is not None and "input_tokens" in given:
            return {"cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, **given}
        if given is not None:  # OpenAI-shaped: the cached part is a cache read
            cached = get_int(get_object(given, "prompt_tokens_details"), "cached_tokens")
            prompt = get_int(given, "prompt_tokens")
            return _usage(prompt - cached, cached, get_int(given, "completion_tokens"))
        reply = self.reply
        output = len(reply.fragments()) + len(_fragments(reply.reasoning))
        output += len(_fragments(reply.refusal))
        output += sum(1 + len(_pieces(c)) for c in reply.tool_calls)
        return _usage(self.prompt_tokens, 0, output)

    def blocks(self) -> list[dict[str, object]]:
        """The content blocks, complete."""
        reply = self.reply
        blocks: list[dict[str, object]] = []
        if reply.reasoning is not None:
            blocks.append(
                {"type": "thinking", "thinking": reply.reasoning, "signature": _sig(reply)}
            )
        text = reply.full_text() + (reply.refusal or "")
        if text or not reply.tool_calls:
            blocks.append({"type": "text", "text": text})
        for index, call in enumerate(reply.tool_calls):
            blocks.append(
                {
                    "type": "tool_use",
                    "id": _call_id(call, index),
                    "name": call.name,
                    "input": _input(call),
                }
            )
        return blocks

    def body(self) -> dict[str, object]:
        return {
            **self._head(self.blocks(), self.stop_reason(), self.stop_sequence),
            "usage": self.usage(),
        }

    def _head(
        self,
        content: Sequence[Mapping[str, object]],
        stop_reason: str | None,
        stop_sequence: str | None,
    ) -> dict[str, object]:
        return {
            "id": self.id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": stop_sequence,
        }

    def events(self) -> list[str]:
        """Every SSE frame of the stream, ``event:`` lines included, in order."""
        usage = self.usage()
        start = {**self._head([], None, None), "usage": {**usage, "output_tokens": 1}}
        frames = [_frame("message_start", {"type": "message_start", "message": start})]
        for index, block in enumerate(self.blocks()):
            frames += _block_frames(index, block, self.reply)
            if index == 0:  # the real API pings once the first block has started
                frames.insert(2, _PING)
        if len(frames) == 1:
            frames.append(_PING)
        delta = {"stop_reason": self.stop_reason(), "stop_sequence": self.stop_sequence}
        frames.append(
            _frame("message_delta", {"type": "message_delta", "delta": delta, "usage": usage})
        )
        frames.append(_frame("message_stop", {"type": "message_stop"}))
        return frames


def _usage(fresh: int, cache_read: int, output: int) -> dict[str, object]:
    return {
        "input_tokens": fresh,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cache_read,
        "output_tokens": output,
    }


def _frame(name: str, data: Mapping[str, object]) -> str:
    return f"event: {name}\ndata: {dumps(data)}\n\n"


_PING = 'event: ping\ndata: {"type": "ping"}\n\n'


def _block_frames(index: int, block: Mapping[str, object], reply: Reply) -> list[str]:
    kind = block["type"]
    if kind == "text":
        pieces = reply.fragments() + _fragments(reply.refusal)
        deltas = [f'{{"type":"text_delta","text":{encode_basestring(p)}}}' for p in pieces]
        empty: dict[str, object] = {"type": "text", "text": ""}
    elif kind == "thinking":
        deltas = [
            f'{{"type":"thinking_delta","thinking":{encode_basestring(p)}}}'
            for p in _fragments(get_str(block, "thinking"))
        ]
        deltas.append(dumps({"type": "signature_delta", "signature": block["signature"]}))
        empty = {"type": "thinking", "thinking": "", "signature": ""}
    else:
        text = block["input"] if isinstance(block["input"], str) else dumps(block["input"])
        pieces = [""] + [
            text[i : i + _ARGUMENT_PIECE] for i in range(0, len(text), _ARGUMENT_PIECE)
        ]
        deltas = [dumps({"type": "input_json_delta", "partial_json": p}) for p in pieces]
        empty = {**block, "input": {}}
    head = (
        f'event: content_block_delta\ndata: {{"type":"content_block_delta","index":{index},"delta":'
    )
    start = {"type": "content_block_start", "index": index, "content_block": empty}
    return [
        _frame("content_block_start", start),
        *(f"{head}{d}}}\n\n" for d in deltas),
        _frame("content_block_stop", {"type": "content_block_stop", "index": index}),
    ]


def _fragments(text: str | None) -> list[str]:
    if not text:
        return []
    return split_fragments(text) or [text]


def _pieces(call: FakeToolCall) -> list[str]:
    text = call.arguments_json()
    return [text[i : i + _ARGUMENT_PIECE] for i in range(0, len(text), _ARGUMENT_PIECE)]


def _input(call: FakeToolCall) -> object:
    """The tool input object; arguments scripted as malformed JSON go out as the raw string."""
    if not isinstance(call.arguments, str):
        return dict(call.arguments)
    try:
        parsed = json.loads(call.arguments)
    except ValueError:
        return call.arguments
    return parsed if isinstance(parsed, dict) else call.arguments


def _call_id(call: FakeToolCall, index: int) -> str:
    if call.id is None:
        return f"toolu_fake{index}"
    # The offline model names its calls call_…; Anthropic's ids read toolu_….
    return "toolu_" + call.id[5:] if call.id.startswith("call_") else call.id


def _sig(reply: Reply) -> str:
    digest = hashlib.sha256((reply.reasoning or "").encode()).hexdigest()
    return "fakesig_" + digest[:32]


# --- faults ------------------------------------------------------------------------------


def _fault_status(fault: Fault, request_id: str) -> web.Response:
    error = fault.error or {}
    given = error.get("type")
    kind = str(given) if given in _KNOWN_TYPES else _error_type(fault.status_code)
    message = str(error.get("message") or "")
    return error_response(fault.status_code, message, request_id, type=kind, headers=fault.headers)


async def _stream(
    request: web.Request, frames: list[str], headers: dict[str, str], fault: Fault | None
) -> web.StreamResponse:
    """An SSE answer, written in one go unless a fault needs to cut it."""
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
        return _drop(request, response)
    if fault.kind == "stall":
        await asyncio.sleep(fault.seconds)
    await response.write(_stream_rest(fault, frames[cut:]).encode())
    await response.write_eof()
    return response


def _stream_rest(fault: Fault, rest: list[str]) -> str:
    if fault.kind == "stream_error":
        error = fault.error or {}
        given = error.get("type")
        kind = str(given) if given in _KNOWN_TYPES else _error_type(fault.status_code)
        body = {"type": "error", "error": {"type": kind, "message": str(error.get("message"))}}
        return _frame("error", body)  # and the stream ends there, as Anthropic's does
    if fault.kind == "malformed_json":
        return "event: content_block_delta\ndata: {not json\n\n"
    return "".join(rest)  # after a stall
