"""Replay real recorded Anthropic Messages traffic (api.anthropic.com, via pydantic-ai's VCR files).

Every expected value is read from the recording by code written here, independently of the
decoder: text, reasoning, tool calls, usage, stop reason, server-side blocks kept as RawPart,
errors, token counts. Streams are replayed whole and cut into small pieces. Recorded
requests whose content callm can express are rebuilt as callm Requests and re-encoded, and
the body must match the one the recording sent.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

import callm  # noqa: E402
from callm._config.providers import BUILTIN, build_endpoint  # noqa: E402
from callm._core.endpoint import Endpoint  # noqa: E402
from callm._core.http import HttpResponse  # noqa: E402
from callm._core.types import (  # noqa: E402
    Document,
    FinishEvent,
    Image,
    Message,
    Part,
    RawPart,
    Reasoning,
    ReasoningDelta,
    Request,
    Response,
    Text,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallEvent,
    ToolResult,
    Usage,
    UsageEvent,
)
from callm.protocols._shared.sse import SSEDecoder  # noqa: E402
from callm.protocols.anthropic import client as anthropic  # noqa: E402
from callm.protocols.anthropic.stream import AnthropicStreamDecoder  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
RECORDED = FIXTURES / "recorded" / "anthropic"
MISSING = f"recorded fixtures not found at {RECORDED} (a checkout without ../shared)"
HOST = "https://api.anthropic.com/"
MODELLED = {"text", "thinking", "redacted_thinking", "tool_use"}


@functools.cache
def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return [i for i in data.get("interactions") or () if i["request"]["uri"].startswith(HOST)]


def files() -> list[Any]:
    if not RECORDED.is_dir():
        return [pytest.param(None, id="fixtures-missing")]
    return [pytest.param(p, id=p.name) for p in sorted(RECORDED.glob("*.yaml")) if load(p)]


FILES = files()


def interactions(path: Path | None) -> list[dict[str, Any]]:
    if path is None:
        pytest.skip(MISSING)
    return load(path)


def endpoint() -> Endpoint:
    return build_endpoint(BUILTIN["anthropic"], "https://api.anthropic.com", "test-key")


def path_of(interaction: Mapping[str, Any]) -> str:
    return interaction["request"]["uri"][len(HOST) - 1 :].split("?", 1)[0]


def headers_of(response: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, values in (response.get("headers") or {}).items():
        headers[name.lower()] = str(values[0] if isinstance(values, list) else values)
    return headers


def raw_body(response: Mapping[str, Any]) -> bytes:
    if "parsed_body" in response:
        return json.dumps(response["parsed_body"]).encode()
    body = (response.get("body") or {}).get("string", "")
    return body if isinstance(body, bytes) else body.encode()


# --- expectations, computed from the recording --------------------------------------------

STOP = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "refusal",
    "pause_turn": "length",
    "model_context_window_exceeded": "length",
}


def expected_usage(usage: Mapping[str, Any]) -> Usage:
    written = usage.get("cache_creation_input_tokens") or 0
    read = usage.get("cache_read_input_tokens") or 0
    return Usage(
        input_tokens=usage["input_tokens"] + written + read,
        output_tokens=usage["output_tokens"],
        cached_input_tokens=read,
        cache_write_tokens=written,
        reasoning_tokens=(usage.get("output_tokens_details") or {}).get("thinking_tokens") or 0,
    )


def check_message(resp: Response, message: Mapping[str, Any]) -> None:
    """Everything a user sees in ``resp`` against the recorded message body."""
    blocks = message["content"]
    texts = [b["text"] for b in blocks if b["type"] == "text"]
    thoughts = [b for b in blocks if b["type"] in ("thinking", "redacted_thinking")]
    calls = [b for b in blocks if b["type"] == "tool_use"]
    assert resp.text == "".join(texts)
    # Redacted (or empty) thinking shows no text: reasoning is None then, the data is kept.
    assert resp.reasoning == ("".join(b.get("thinking", "") for b in thoughts) or None)
    reasoning = [p for p in resp.content if isinstance(p, Reasoning)]
    assert [r.signature for r in reasoning] == [b.get("signature") for b in thoughts]
    assert [r.data for r in reasoning] == [b.get("data") for b in thoughts]
    assert [(c.id, c.name, dict(c.arguments)) for c in resp.tool_calls] == [
        (b["id"], b["name"], b["input"]) for b in calls
    ]
    assert not any(c.invalid_arguments for c in resp.tool_calls)
    # Blocks callm does not model are kept, verbatim and in order.
    raw = [p for p in resp.content if isinstance(p, RawPart) and p.type != "citations"]
    unmodelled = [b for b in blocks if b["type"] not in MODELLED]
    assert [(p.protocol, p.type, dict(p.data)) for p in raw] == [
        ("anthropic", b["type"], b) for b in unmodelled
    ]
    kinds = [p.kind for p in resp.content if not (isinstance(p, RawPart) and p.type == "citations")]
    assert kinds == [KIND.get(b["type"], "raw") for b in blocks]
    assert resp.native_finish_reason == message["stop_reason"]
    assert resp.finish_reason == STOP[message["stop_reason"]]
    assert resp.usage == expected_usage(message["usage"])
    assert (resp.id, resp.model) == (message["id"], message["model"])


KIND = {
    "text": "text",
    "thinking": "reasoning",
    "redacted_thinking": "reasoning",
    "tool_use": "tool_call",
}


def accumulate(body: str) -> dict[str, Any]:
    """The message a stream describes, rebuilt by hand from its ``data:`` lines."""
    message: dict[str, Any] = {}
    blocks: dict[int, dict[str, Any]] = {}
    json_input: dict[int, str] = {}
    for line in body.splitlines():
        if not line.startswith("data:"):
            continue
        event = json.loads(line[5:])
        kind = event["type"]
        if kind == "message_start":
            message = event["message"]
        elif kind == "content_block_start":
            blocks[event["index"]] = dict(event["content_block"])
        elif kind == "content_block_delta":
            block, delta = blocks[event["index"]], event["delta"]
            if delta["type"] == "input_json_delta":
                json_input[event["index"]] = (
                    json_input.get(event["index"], "") + delta["partial_json"]
                )
            else:
                field = {"text_delta": "text", "thinking_delta": "thinking"}.get(delta["type"])
                field = field or "signature"
                assert delta["type"] in ("text_delta", "thinking_delta", "signature_delta")
                block[field] = block.get(field, "") + delta[field]
        elif kind == "message_delta":
            message["stop_reason"] = event["delta"]["stop_reason"]
            message["usage"] = {**message["usage"], **event["usage"]}
    for index, text in json_input.items():
        blocks[index]["input"] = json.loads(text) if text else {}
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message


def replay(body: bytes, size: int) -> tuple[AnthropicStreamDecoder, list[Any]]:
    sse, decoder = SSEDecoder(), AnthropicStreamDecoder(endpoint(), "req_recorded")
    events: list[Any] = []
    for start in range(0, len(body), size):
        for event in sse.feed(body[start : start + size]):
            events.extend(decoder.feed(event))
    for event in sse.close():
        events.extend(decoder.feed(event))
    return decoder, events


def check_stream(body: bytes) -> None:
    expected = accumulate(body.decode())
    decoder, events = replay(body, len(body))
    for size in (1, 7, 100):
        assert replay(body, size)[1] == events, size
    assert decoder.finished
    resp = decoder.response()
    check_message(resp, expected)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == resp.text
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert reasoning == (resp.reasoning or "")
    assert [e.tool_call for e in events if isinstance(e, ToolCallEvent)] == resp.tool_calls
    assert [e for e in events if isinstance(e, FinishEvent)] == [FinishEvent(resp.finish_reason)]
    assert [e for e in events if isinstance(e, UsageEvent)][-1].usage == resp.usage
    assert resp.request_id == "req_recorded"
    # The raw message rebuilt from the stream is what a non-streaming call returns.
    assert [b["type"] for b in resp.raw["content"]] == [b["type"] for b in expected["content"]]


ERRORS = {
    400: callm.BadRequestError,
    401: callm.AuthenticationError,
    403: callm.PermissionDeniedError,
    404: callm.NotFoundError,
    429: callm.RateLimitError,
    529: callm.OverloadedError,
}


@pytest.mark.parametrize("path", FILES)
def test_recorded_responses_decode(path: Path | None) -> None:
    for interaction in interactions(path):
        response = interaction["response"]
        status = response["status"]["code"]
        headers = headers_of(response)
        http = HttpResponse(status, headers, raw_body(response))
        if status >= 400:
            error = response["parsed_body"]
            exc = anthropic.decode_failure(endpoint(), http)
            assert type(exc) is ERRORS[status]
            assert exc.status_code == status
            assert error["error"]["message"] in str(exc)
            assert exc.code == error["error"]["type"]
            assert exc.request_id == error["request_id"]
        elif path_of(interaction) == "/v1/messages/count_tokens":
            count = anthropic.decode_count_tokens(endpoint(), http)
            assert count == response["parsed_body"]["input_tokens"]
        elif "text/event-stream" in headers.get("content-type", ""):
            check_stream(http.body)
        else:
            resp = anthropic.decode(endpoint(), http)
            check_message(resp, response["parsed_body"])
            assert resp.raw == response["parsed_body"]


def test_server_side_blocks_are_kept_as_raw_parts() -> None:
    if not RECORDED.is_dir():
        pytest.skip(MISSING)
    seen: set[str] = set()
    for path in sorted(RECORDED.glob("*.yaml")):
        for interaction in load(path):
            body = interaction["response"].get("parsed_body")
            if isinstance(body, dict) and "content" in body:
                resp = anthropic.decode(
                    endpoint(), HttpResponse(200, {}, json.dumps(body).encode())
                )
                seen |= {p.type for p in resp.content if isinstance(p, RawPart)}
    assert {"server_tool_use", "mcp_tool_use", "mcp_tool_result"} <= seen
    assert "bash_code_execution_tool_result" in seen


# --- re-encoding recorded requests ----------------------------------------------------------

TOP_LEVEL = {
    "model",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
    "output_config",
}


class NotExpressible(Exception):
    """The recorded request uses something callm types cannot say the same way."""


def data_url(media_type: str, data: str) -> str:
    return f"data:{media_type};base64,{data}"


def part_of(block: Mapping[str, Any]) -> Part:
    kind = block["type"]
    if kind == "text":
        if set(block) - {"type", "text", "cache_control"}:
            raise NotExpressible("text with citations")
        return Text(block["text"])
    if kind in ("image", "document"):
        source = block["source"]
        if source["type"] == "url":
            url = source["url"]
        elif source["type"] == "base64":
            url = data_url(source["media_type"], source["data"])
        else:  # a text document: sent inline, re-encoded as a text source
            url = data_url("text/plain", base64.b64encode(source["data"].encode()).decode())
        if kind == "image":
            return Image(url)
        media = source.get("media_type") if source["type"] == "base64" else None
        return Document(url, media_type=media, title=block.get("title"))
    if kind == "thinking":
        return Reasoning(block["thinking"], signature=block["signature"])
    if kind == "redacted_thinking":
        return Reasoning("", data=block["data"])
    if kind == "tool_use":
        return ToolCall(block["id"], block["name"], block["input"])
    return RawPart("anthropic", kind, block)


def messages_of(body: Mapping[str, Any]) -> list[Message]:
    out: list[Message] = []
    system = body.get("system")
    if isinstance(system, str):
        out.append(Message.system(system))
    for block in system if isinstance(system, list) else ():
        out.append(Message("system", (Text(block["text"]),), cache="cache_control" in block))
    for message in body["messages"]:
        content = message["content"]
        blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content
        cache = _cache_mark(blocks)
        results = [b for b in blocks if b["type"] == "tool_result"]
        if results:
            if len(results) != len(blocks):
                raise NotExpressible("tool results mixed with other content")
            for r in results:
                if not isinstance(r["content"], str):
                    raise NotExpressible("structured tool result content")
                result = ToolResult(
                    r["tool_use_id"], r["content"], is_error=bool(r.get("is_error"))
                )
                out.append(Message("tool", (result,), cache=cache and r is results[-1]))
            continue
        out.append(Message(message["role"], tuple(part_of(b) for b in blocks), cache=cache))
    return out


def _cache_mark(blocks: list[Mapping[str, Any]]) -> bool:
    marked = [i for i, b in enumerate(blocks) if "cache_control" in b]
    if not marked:
        return False
    if marked != [len(blocks) - 1] or blocks[-1]["cache_control"] != {"type": "ephemeral"}:
        raise NotExpressible("a cache mark callm places differently")
    return True


def tool_choice_of(choice: Mapping[str, Any] | None) -> Any:
    if choice is None or set(choice) - {"type", "name"}:
        return choice
    return {"auto": "auto", "none": "none", "any": "required"}.get(
        choice["type"], choice.get("name")
    )


def is_plain_tool(tool: Mapping[str, Any]) -> bool:
    return "input_schema" in tool and set(tool) <= {"name", "description", "input_schema", "strict"}


def request_of(body: Mapping[str, Any]) -> Request:
    extra = {k: v for k, v in body.items() if k not in TOP_LEVEL}
    tools = body.get("tools") or []
    if not all(is_plain_tool(t) for t in tools):
        extra["tools"], tools = tools, []
    if set(body.get("metadata") or {}) - {"user_id"}:
        raise NotExpressible("metadata beyond user_id")
    output_config = body.get("output_config") or {}
    fmt = None
    if set(output_config) == {"format"}:
        fmt = {"type": "json_schema", "schema": output_config["format"]["schema"]}
    elif output_config:
        extra["output_config"] = output_config
    return Request(
        model=body["model"],
        messages=tuple(messages_of(body)),
        max_tokens=body["max_tokens"],
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        top_k=body.get("top_k"),
        stop=tuple(body["stop_sequences"]) if body.get("stop_sequences") else None,
        user=(body.get("metadata") or {}).get("user_id"),
        tools=tuple(
            Tool(t["name"], t.get("description") or "", t["input_schema"], t.get("strict"))
            for t in tools
        ),
        tool_choice=tool_choice_of(body.get("tool_choice")),
        response_format=fmt,
        stream=bool(body.get("stream")),
        extra_body=extra,
    )


def normalise(body: Mapping[str, Any]) -> dict[str, Any]:
    """Differences that do not change meaning: defaults, string shorthands, empty fields."""
    out = json.loads(json.dumps(body))
    if out.get("stream") is False:
        del out["stream"]
    if isinstance(out.get("system"), str):
        out["system"] = [{"type": "text", "text": out["system"]}]
    for message in out["messages"]:
        if isinstance(message["content"], str):
            message["content"] = [{"type": "text", "text": message["content"]}]
        for block in message["content"]:
            if block.get("type") == "tool_result" and block.get("is_error") is False:
                del block["is_error"]
    tools = out.get("tools") or []
    if all(is_plain_tool(t) for t in tools):  # callm tools, not passed through extra_body
        for tool in tools:
            if tool.get("description") == "":
                del tool["description"]
    return out


def test_recorded_requests_reencode() -> None:
    if not RECORDED.is_dir():
        pytest.skip(MISSING)
    compared = 0
    for path in sorted(RECORDED.glob("*.yaml")):
        for interaction in load(path):
            body = interaction["request"].get("parsed_body")
            if path_of(interaction) != "/v1/messages" or not isinstance(body, dict):
                continue
            try:
                request = request_of(body)
            except NotExpressible:
                continue
            assert anthropic.encode_body(request) == normalise(body), path.name
            compared += 1
    assert compared >= 80, compared  # nearly every recorded request is expressible
