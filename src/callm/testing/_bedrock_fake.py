"""The fake's Amazon Bedrock routes: Converse, ConverseStream, CountTokens, ListFoundationModels.

* ``POST /model/{modelId}/converse`` — one JSON reply (``output.message``, ``stopReason``,
  ``usage``, ``metrics``), no model name and no id, as Bedrock answers.
* ``POST /model/{modelId}/converse-stream`` — ``application/vnd.amazon.eventstream``:
  binary frames with CRCs, ``messageStart``, ``contentBlockStart`` (tool use only),
  ``contentBlockDelta`` …, ``contentBlockStop``, ``messageStop``, then ``metadata`` with the
  usage, each payload padded with a ``p`` field as AWS pads them.
* ``POST /model/{modelId}/count-tokens`` and ``GET /foundation-models``.

Auth is AWS Signature V4 (see :func:`~callm.testing._aws_wire.check_auth`: recomputed for the
access keys given to :meth:`FakeOpenAIServer.accept_aws_key`) or a Bedrock API key as a
bearer token (the server's ``api_key`` when it has one). Errors are Bedrock's: a JSON
``message`` with the exception type in ``x-amzn-ErrorType``; a status Fault becomes the
exception its status means (429 ``ThrottlingException``, 503 ``ServiceUnavailableException``
…) unless its ``type`` names an AWS exception itself (``ExpiredTokenException`` …). A
``stream_error`` Fault sends an exception frame mid-stream; ``malformed_json`` a frame whose
payload is not JSON. With nothing queued, the offline model answers.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from itertools import pairwise
from typing import Any

from aiohttp import web

from . import local_model
from ._aws_wire import EVENTSTREAM, aws_error, check_auth, event_frame, exception_frame, frame
from ._http import AddRoute, Rejected, _drop, _whole, record_request
from ._script import FakeToolCall, Fault, Reply, split_fragments
from ._state import ServerState

_JSON = "application/json"
BEDROCK_MODELS = (
    "anthropic.claude-3-5-haiku-20241022-v1:0",
    "us.anthropic.claude-sonnet-4-5-20250929-v1:0",
    "amazon.nova-lite-v1:0",
    "meta.llama3-1-8b-instruct-v1:0",
)
_EXCEPTIONS = {
    400: "ValidationException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    408: "ModelTimeoutException",
    424: "ModelErrorException",
    429: "ThrottlingException",
    500: "InternalServerException",
    503: "ServiceUnavailableException",
}
_STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "content_filtered",
}
_ARGUMENT_PIECE = 8
# Bedrock's own wordings of what its validation refuses.
_MALFORMED = "Malformed input request, please reformat your input and try again."
_FIRST_USER = (
    "A conversation must start with a user message. Try again with a conversation that "
    "starts with a user message."
)
_ALTERNATE = (
    "A conversation must alternate between user and assistant roles. Make sure the "
    "conversation alternates between user and assistant roles and try again."
)
_BLANK = (
    "The text field in the ContentBlock object is blank. Add text to the text field, and try again."
)
_NO_TOOL_CONFIG = (
    "The toolConfig field must be defined when using toolUse and toolResult content blocks."
)
_BAD_MAX_TOKENS = "The maximum tokens you requested exceeds the model limit or is below 1."


def register(add: AddRoute, state: ServerState) -> None:
    """Add the Bedrock routes to the fake server's application."""
    routes = _Routes(state)
    add("POST", "/model/{model}/converse", routes.converse)
    add("POST", "/model/{model}/converse-stream", routes.converse_stream)
    add("POST", "/model/{model}/count-tokens", routes.count_tokens)
    add("GET", "/foundation-models", routes.models)


def exception_name(fault: Fault) -> str:
    """The AWS exception a Fault stands for: its own type when it names one, else its status's."""
    given = str((fault.error or {}).get("type") or "")
    if given.endswith(("Exception", "Failure")) or given == "ExpiredToken":
        return given
    status = fault.status_code
    return _EXCEPTIONS.get(status) or (
        "InternalServerException" if status >= 500 else "ValidationException"
    )


class _Routes:
    def __init__(self, state: ServerState) -> None:
        self._state = state

    async def _admit(self, request: web.Request) -> tuple[Any, str]:
        record = await record_request(request)
        self._state.record(record)
        request_id = self._state.new_uuid()
        refused = check_auth(
            request,
            record.headers,
            record.body,
            api_key=self._state.api_key,
            aws_keys=self._state.aws_keys(),
            request_id=request_id,
        )
        if refused is not None:
            raise Rejected(refused)
        return record.json, request_id

    async def converse(self, request: web.Request) -> web.StreamResponse:
        return await self._converse(request, stream=False)

    async def converse_stream(self, request: web.Request) -> web.StreamResponse:
        return await self._converse(request, stream=True)

    async def count_tokens(self, request: web.Request) -> web.StreamResponse:
        body, request_id = await self._admit(request)
        converse = ((body or {}).get("input") or {}).get("converse")
        if not isinstance(converse, dict):
            raise Rejected(
                aws_error(400, "ValidationException", "input.converse is required", request_id)
            )
        count = local_model.prompt_tokens(to_chat_request(converse))
        return _json({"inputTokens": count}, request_id)

    async def models(self, request: web.Request) -> web.StreamResponse:
        _, request_id = await self._admit(request)
        summaries = [
            {
                "modelId": m,
                "modelArn": f"arn:aws:bedrock:us-east-1::foundation-model/{m}",
                "modelName": m,
                "providerName": m.split(".")[-2].split("-")[0].capitalize() if "." in m else "Fake",
                "inputModalities": ["TEXT"],
                "outputModalities": ["TEXT"],
                "responseStreamingSupported": True,
            }
            for m in BEDROCK_MODELS
        ]
        return _json({"modelSummaries": summaries}, request_id)

    async def _converse(self, request: web.Request, *, stream: bool) -> web.StreamResponse:
        body, request_id = await self._admit(request)
        problem = _problem(body)
        if problem is not None:
            raise Rejected(aws_error(400, "ValidationException", problem, request_id))
        chat = to_chat_request(body)
        item = self._state.pop()
        fault = item if isinstance(item, Fault) else None
        if fault is not None and fault.kind == "status":
            raise Rejected(_fault_status(fault, request_id))
        if fault is not None and fault.kind == "disconnect":
            return _drop(request, web.StreamResponse())
        reply = item if isinstance(item, Reply) else (fault and fault.reply)
        reply = reply or local_model.reply_to(chat)
        builder = ConverseBuilder(
            reply, local_model.prompt_tokens(chat), _stop_sequence(reply, chat)
        )
        headers = {"x-amzn-RequestId": request_id, **reply.headers}
        if fault is not None and fault.kind == "slow_first_byte":
            await asyncio.sleep(fault.seconds)
        if stream:
            return await _stream(request, builder.frames(), headers, fault)
        if fault is not None and fault.kind == "stream_error":
            error = fault.error or {}
            raise Rejected(
                aws_error(
                    fault.status_code, exception_name(fault), str(error.get("message")), request_id
                )
            )
        payload = json.dumps(builder.body()).encode()
        return await _whole(request, payload, headers, fault)


def _json(value: Any, request_id: str) -> web.Response:
    return web.Response(
        body=json.dumps(value).encode(),
        headers={"Content-Type": _JSON, "x-amzn-RequestId": request_id},
    )


def _fault_status(fault: Fault, request_id: str) -> web.Response:
    error = fault.error or {}
    response = aws_error(
        fault.status_code, exception_name(fault), str(error.get("message") or ""), request_id
    )
    response.headers.update(fault.headers)
    return response


# --- request checks and translation ------------------------------------------------------


def _problem(body: Any) -> str | None:
    """What Bedrock's validation would refuse, in its words."""
    if not isinstance(body, dict):
        return _MALFORMED
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return _FIRST_USER
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    if roles[0] != "user":
        return _FIRST_USER
    if any(a == b for a, b in pairwise(roles)):
        return _ALTERNATE
    for message in messages:
        problem = _blocks_problem(message.get("content") or (), "toolConfig" in body)
        if problem is not None:
            return problem
    max_tokens = (body.get("inferenceConfig") or {}).get("maxTokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
        return _BAD_MAX_TOKENS
    return None


def _blocks_problem(blocks: Any, has_tools: bool) -> str | None:
    for block in blocks:
        if not isinstance(block, dict):
            return _MALFORMED
        if "text" in block and not str(block["text"]).strip():
            return _BLANK
        if ("toolUse" in block or "toolResult" in block) and not has_tools:
            return _NO_TOOL_CONFIG
    return None


def to_chat_request(body: Mapping[str, Any]) -> dict[str, Any]:
    """The Converse request in the Chat Completions shape the offline model reads."""
    chat: dict[str, Any] = {"messages": _chat_messages(body)}
    config = body.get("inferenceConfig") or {}
    if config.get("maxTokens") is not None:
        chat["max_tokens"] = config["maxTokens"]
    if config.get("stopSequences"):
        chat["stop"] = list(config["stopSequences"])
    tool_config = body.get("toolConfig") or {}
    tools = [
        {
            "type": "function",
            "function": {
                "name": t["toolSpec"].get("name"),
                "description": t["toolSpec"].get("description") or "",
                "parameters": (t["toolSpec"].get("inputSchema") or {}).get("json") or {},
            },
        }
        for t in tool_config.get("tools") or ()
        if isinstance(t, dict) and isinstance(t.get("toolSpec"), dict)
    ]
    if tools:
        chat["tools"] = tools
    choice = tool_config.get("toolChoice")
    if isinstance(choice, dict):
        chat["tool_choice"] = _chat_tool_choice(choice)
    text_format = (body.get("outputConfig") or {}).get("textFormat") or {}
    schema_text = ((text_format.get("structure") or {}).get("jsonSchema") or {}).get("schema")
    if isinstance(schema_text, str):
        schema = json.loads(schema_text)
        chat["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
    return chat


def _chat_tool_choice(choice: Mapping[str, Any]) -> Any:
    if isinstance(choice.get("tool"), dict):
        return {"type": "function", "function": {"name": choice["tool"].get("name")}}
    return "required" if "any" in choice else "auto"


def _chat_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    system = "\n".join(
        b["text"] for b in body.get("system") or () if isinstance(b, dict) and "text" in b
    )
    if system:
        out.append({"role": "system", "content": system})
    for message in body.get("messages") or ():
        blocks = [b for b in message.get("content") or () if isinstance(b, dict)]
        if message.get("role") == "assistant":
            out.append(_chat_assistant(blocks))
        else:
            out.extend(_chat_user(blocks))
    return out


def _chat_assistant(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    text = "".join(b["text"] for b in blocks if "text" in b)
    entry: dict[str, Any] = {"role": "assistant", "content": text}
    calls = [
        {
            "id": b["toolUse"].get("toolUseId"),
            "type": "function",
            "function": {
                "name": b["toolUse"].get("name"),
                "arguments": json.dumps(b["toolUse"].get("input") or {}),
            },
        }
        for b in blocks
        if isinstance(b.get("toolUse"), dict)
    ]
    if calls:
        entry["tool_calls"] = calls
    return entry


def _chat_user(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = [
        {
            "role": "tool",
            "tool_call_id": b["toolResult"].get("toolUseId"),
            "content": " ".join(
                c.get("text") or json.dumps(c.get("json"))
                for c in b["toolResult"].get("content") or ()
            ),
        }
        for b in blocks
        if isinstance(b.get("toolResult"), dict)
    ]
    parts = [
        {"type": "text", "text": b["text"]} if "text" in b else {"type": next(iter(b))}
        for b in blocks
        if "toolResult" not in b and "cachePoint" not in b
    ]
    if parts:
        out.append({"role": "user", "content": parts})
    return out


def _stop_sequence(reply: Reply, chat: Mapping[str, Any]) -> bool:
    """Whether the offline model's text was cut at one of the request's stop sequences."""
    stops = chat.get("stop") or []
    if not stops or reply.finish_reason is not None or reply.tool_calls:
        return False
    uncut = local_model.reply_to({**chat, "stop": None, "max_tokens": None}).full_text()
    rest = uncut[len(reply.full_text()) :]
    return any(rest.startswith(s) for s in stops)


# --- replies -----------------------------------------------------------------------------


class ConverseBuilder:
    """One reply as a Converse body, or as ConverseStream's event frames."""

    def __init__(self, reply: Reply, prompt_tokens: int, stopped_at_sequence: bool) -> None:
        self.reply = reply
        self.prompt_tokens = prompt_tokens
        self.stopped_at_sequence = stopped_at_sequence

    def stop_reason(self) -> str:
        reason = self.reply.finish_reason
        if reason is not None:
            return _STOP_REASONS.get(reason, reason)  # Bedrock's own names pass through
        if self.reply.tool_calls:
            return "tool_use"
        return "stop_sequence" if self.stopped_at_sequence else "end_turn"

    def usage(self) -> dict[str, object]:
        given = self.reply.usage
        if given is not None and "inputTokens" in given:
            return dict(given)
        reply = self.reply
        output = len(reply.fragments()) + len(_fragments(reply.reasoning))
        output += sum(1 + len(_pieces(c)) for c in reply.tool_calls)
        return {
            "inputTokens": self.prompt_tokens,
            "outputTokens": output,
            "totalTokens": self.prompt_tokens + output,
        }

    def blocks(self) -> list[dict[str, Any]]:
        reply = self.reply
        blocks: list[dict[str, Any]] = []
        if reply.reasoning is not None:
            signature = "fakesig-" + str(len(reply.reasoning))
            thought = {"text": reply.reasoning, "signature": signature}
            blocks.append({"reasoningContent": {"reasoningText": thought}})
        text = reply.full_text() + (reply.refusal or "")
        if text or not reply.tool_calls:
            blocks.append({"text": text})
        for index, call in enumerate(reply.tool_calls):
            use = {"toolUseId": _call_id(call, index), "name": call.name, "input": _input(call)}
            blocks.append({"toolUse": use})
        return blocks

    def body(self) -> dict[str, Any]:
        return {
            "output": {"message": {"role": "assistant", "content": self.blocks()}},
            "stopReason": self.stop_reason(),
            "usage": self.usage(),
            "metrics": {"latencyMs": 1},
        }

    def frames(self) -> list[bytes]:
        """Every frame of the stream, in order."""
        frames = [event_frame("messageStart", {"role": "assistant"})]
        for index, block in enumerate(self.blocks()):
            frames += _block_frames(index, block, self.reply)
        frames.append(event_frame("messageStop", {"stopReason": self.stop_reason()}))
        metadata = {"usage": self.usage(), "metrics": {"latencyMs": 1}}
        frames.append(event_frame("metadata", metadata))
        return frames


def _block_frames(index: int, block: Mapping[str, Any], reply: Reply) -> list[bytes]:
    frames: list[bytes] = []
    deltas: list[dict[str, Any]]
    if "text" in block:
        deltas = [{"text": p} for p in reply.fragments() + _fragments(reply.refusal)]
    elif "reasoningContent" in block:
        text = block["reasoningContent"]["reasoningText"]
        deltas = [{"reasoningContent": {"text": p}} for p in _fragments(text["text"])]
        deltas.append({"reasoningContent": {"signature": text["signature"]}})
    else:
        use = block["toolUse"]
        start = {"toolUse": {"toolUseId": use["toolUseId"], "name": use["name"]}}
        frames.append(
            event_frame("contentBlockStart", {"start": start, "contentBlockIndex": index})
        )
        text = use["input"] if isinstance(use["input"], str) else json.dumps(use["input"])
        pieces = [text[i : i + _ARGUMENT_PIECE] for i in range(0, len(text), _ARGUMENT_PIECE)]
        deltas = [{"toolUse": {"input": p}} for p in pieces]
    for delta in deltas:
        frames.append(
            event_frame("contentBlockDelta", {"delta": delta, "contentBlockIndex": index})
        )
    frames.append(event_frame("contentBlockStop", {"contentBlockIndex": index}))
    return frames


def _fragments(text: str | None) -> list[str]:
    if not text:
        return []
    return split_fragments(text) or [text]


def _pieces(call: FakeToolCall) -> list[str]:
    text = call.arguments_json()
    return [text[i : i + _ARGUMENT_PIECE] for i in range(0, len(text), _ARGUMENT_PIECE)]


def _input(call: FakeToolCall) -> Any:
    if not isinstance(call.arguments, str):
        return dict(call.arguments)
    try:
        parsed = json.loads(call.arguments)
    except ValueError:
        return call.arguments
    return parsed if isinstance(parsed, dict) else call.arguments


def _call_id(call: FakeToolCall, index: int) -> str:
    if call.id is None:
        return f"tooluse_fake{index}"
    return "tooluse_" + call.id[5:] if call.id.startswith("call_") else call.id


async def _stream(
    request: web.Request, frames: list[bytes], headers: dict[str, str], fault: Fault | None
) -> web.StreamResponse:
    """An event-stream answer, written in one go unless a fault needs to cut it."""
    response = web.StreamResponse(headers={"Content-Type": EVENTSTREAM, **headers})
    response.enable_chunked_encoding()
    await response.prepare(request)
    if fault is None or fault.kind == "slow_first_byte":
        await response.write(b"".join(frames))
        await response.write_eof()
        return response
    cut = min(fault.after_chunks, len(frames))
    if cut:
        await response.write(b"".join(frames[:cut]))
    if fault.kind == "drop_mid_stream":
        return _drop(request, response)
    if fault.kind == "stall":
        await asyncio.sleep(fault.seconds)
    await response.write(_stream_rest(fault, frames[cut:]))
    await response.write_eof()
    return response


def _stream_rest(fault: Fault, rest: list[bytes]) -> bytes:
    if fault.kind == "stream_error":
        name = exception_name(fault)
        message = str((fault.error or {}).get("message"))
        return exception_frame(name[:1].lower() + name[1:], message)  # camelCase in streams
    if fault.kind == "malformed_json":
        headers = {
            ":event-type": "contentBlockDelta",
            ":content-type": _JSON,
            ":message-type": "event",
        }
        return frame(headers, b"{not json")
    return b"".join(rest)  # after a stall
