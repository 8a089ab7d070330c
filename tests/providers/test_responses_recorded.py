"""Replay real recorded OpenAI Responses traffic through callm's Responses decoders.

The recordings are VCR YAML files from the pydantic-ai test suite (see
``../shared/fixtures/README.md``): the ``openai_responses`` folder, and the ``/responses``
interactions inside the ``openai`` folder. Every expected value is read from the recording
itself, independently of callm's decoders. Interactions with other endpoints
(``/conversations``, ``/files``, ``/chat/completions`` …) belong to other tests.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

import callm  # noqa: E402
from callm._core.endpoint import Endpoint  # noqa: E402
from callm._core.http import HttpResponse  # noqa: E402
from callm._core.types import (  # noqa: E402
    FinishEvent,
    Message,
    RawPart,
    ReasoningDelta,
    Request,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallEvent,
    ToolResult,
    Usage,
    UsageEvent,
)
from callm.protocols._shared.sse import SSEDecoder  # noqa: E402
from callm.protocols.openai_responses import client as wire  # noqa: E402
from callm.protocols.openai_responses.stream import stream_decoder  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
RECORDED = FIXTURES / "recorded"
FOLDERS = ("openai_responses", "openai")
MISSING = f"recorded fixtures not found at {RECORDED} (a checkout without ../shared)"
EP = Endpoint("openai-responses", "openai_responses", "https://api.openai.com/v1", {})
MODELLED = ("message", "function_call", "reasoning")


def path_of(interaction: Mapping[str, Any]) -> str:
    return interaction["request"]["uri"].split("?", 1)[0]


def is_responses(interaction: Mapping[str, Any]) -> bool:
    return "/responses" in path_of(interaction)


@functools.cache
def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return yaml.safe_load(f).get("interactions") or []


def recorded_files() -> list[Any]:
    if not RECORDED.is_dir():
        return [pytest.param(None, id="fixtures-missing")]
    return [
        pytest.param(path, id=f"{folder}/{path.name}")
        for folder in FOLDERS
        for path in sorted((RECORDED / folder).glob("*.yaml"))
        if any(is_responses(i) for i in load(path))
    ]


FILES = recorded_files()


def headers_of(response: Mapping[str, Any]) -> dict[str, str]:
    out = {}
    for name, values in (response.get("headers") or {}).items():
        out[name.lower()] = str(values[0] if isinstance(values, list) else values)
    return out


def body_of(response: Mapping[str, Any]) -> bytes:
    if "parsed_body" in response:
        return json.dumps(response["parsed_body"]).encode()
    body = (response.get("body") or {}).get("string", "")
    return body if isinstance(body, bytes) else body.encode()


# --- expectations, read straight from a recorded response object ------------------------


def expected(data: Mapping[str, Any]) -> dict[str, Any]:
    output = [item for item in data.get("output") or () if isinstance(item, dict)]
    texts, refusals, annotations, reasoning = [], [], [], []
    for item in output:
        if item["type"] == "message" and item.get("role", "assistant") == "assistant":
            for part in item.get("content") or ():
                if part.get("type") == "output_text":
                    texts.append(part["text"])
                    if part.get("annotations"):
                        annotations.append(part["annotations"])
                elif part.get("type") == "refusal":
                    refusals.append(part["refusal"])
        elif item["type"] == "reasoning":
            summary = [s["text"] for s in item.get("summary") or ()]
            content = [c["text"] for c in item.get("content") or ()]
            reasoning.append("\n\n".join(summary or content))
    calls = [
        (i["call_id"], i["name"], json.loads(i["arguments"] or "{}"))
        for i in output
        if i["type"] == "function_call"
    ]
    usage = data.get("usage") or {}
    status = data.get("status")
    if status in ("completed", "complete"):
        finish = "tool_calls" if calls else ("refusal" if refusals else "stop")
    elif status == "incomplete":
        reason = (data.get("incomplete_details") or {}).get("reason")
        finish = "content_filter" if reason == "content_filter" else "length"
    else:
        finish = None
    return {
        "text": "".join(texts),
        "refusal": "".join(refusals) or None,
        "reasoning": "".join(reasoning) or None,
        "calls": calls,
        "raw_items": [
            i
            for i in output
            if i["type"] not in MODELLED or i.get("role", "assistant") != "assistant"
        ],
        "annotations": annotations,
        "finish": finish,
        "usage": Usage(
            input_tokens=usage.get("input_tokens") or 0,
            output_tokens=usage.get("output_tokens") or 0,
            cached_input_tokens=(usage.get("input_tokens_details") or {}).get("cached_tokens") or 0,
            cache_write_tokens=(usage.get("input_tokens_details") or {}).get("cache_write_tokens")
            or 0,
            reasoning_tokens=(usage.get("output_tokens_details") or {}).get("reasoning_tokens")
            or 0,
            reported=isinstance(data.get("usage"), dict),  # a queued reply has none yet
        ),
    }


def check_response(resp: callm.Response, data: Mapping[str, Any]) -> None:
    want = expected(data)
    assert resp.text == want["text"]
    assert resp.refusal == want["refusal"]
    assert resp.reasoning == want["reasoning"]
    assert [(c.id, c.name, dict(c.arguments)) for c in resp.tool_calls] == want["calls"]
    assert not any(c.invalid_arguments for c in resp.tool_calls)
    raw = [p for p in resp.content if isinstance(p, RawPart)]
    # Server-tool items (web search, file search, MCP, code interpreter …) are kept whole.
    assert [dict(p.data) for p in raw if p.type != "annotations"] == want["raw_items"]
    assert all(p.protocol == "openai_responses" for p in raw)
    assert [list(p.data["annotations"]) for p in raw if p.type == "annotations"] == want[
        "annotations"
    ]
    assert resp.finish_reason == want["finish"]
    assert resp.usage == want["usage"]
    assert resp.id == (data.get("id") or "")
    assert resp.model == (data.get("model") or "")


# --- the tests --------------------------------------------------------------------------


@pytest.mark.parametrize("path", FILES)
def test_recorded_responses_replay(path: Path | None) -> None:
    if path is None:
        pytest.skip(MISSING)
    for interaction in filter(is_responses, load(path)):
        response = interaction["response"]
        status = response["status"]["code"]
        headers = headers_of(response)
        body = body_of(response)
        if status >= 400:
            check_error(status, headers, body, response.get("parsed_body"))
        elif "text/event-stream" in headers.get("content-type", ""):
            check_stream(body, headers.get("x-request-id"))
        else:
            check_json(headers, body, response.get("parsed_body"))


def check_error(status: int, headers: dict[str, str], body: bytes, parsed: Any) -> None:
    exc = wire.decode_failure(EP, HttpResponse(status, headers, body))
    error = parsed["error"]
    assert isinstance(exc, callm.BadRequestError if status == 400 else callm.APIStatusError)
    assert exc.status_code == status
    assert error["message"] in str(exc)
    assert exc.code == error.get("code")


def check_json(headers: dict[str, str], body: bytes, parsed: Any) -> None:
    http = HttpResponse(200, headers, body)
    if not isinstance(parsed.get("output"), list):
        # Not a response object (``/responses/input_tokens`` counts): a typed error, no crash.
        with pytest.raises(callm.APIResponseError):
            wire.decode(EP, http)
        return
    resp = wire.decode(EP, http)
    check_response(resp, parsed)
    assert resp.request_id == (headers.get("x-request-id") or headers.get("apim-request-id"))


def recorded_events(body: bytes) -> list[dict[str, Any]]:
    events = []
    for line in body.decode().splitlines():
        if line.startswith("data:") and line[5:].strip() != "[DONE]":
            events.append(json.loads(line[5:]))
    return events


def replay(body: bytes, size: int, request_id: str | None) -> tuple[Any, list[Any]]:
    sse = SSEDecoder()
    decoder = stream_decoder(EP, request_id)
    events: list[Any] = []
    for start in range(0, len(body), size):
        for event in sse.feed(body[start : start + size]):
            events += decoder.feed(event)
    for event in sse.close():
        events += decoder.feed(event)
    return decoder, events


def check_stream(body: bytes, request_id: str | None) -> None:
    recorded = recorded_events(body)
    final = next(e["response"] for e in recorded if e["type"] == "response.completed")
    want = expected(final)
    decoder, events = replay(body, len(body), request_id)
    for size in (1, 13, 256):
        assert replay(body, size, request_id)[1] == events, size
    assert decoder.finished
    deltas = "".join(e["delta"] for e in recorded if e["type"] == "response.output_text.delta")
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == deltas
    assert deltas == want["text"]
    summary = [e for e in recorded if e["type"].startswith("response.reasoning_")]
    if any(e["type"].endswith(".delta") for e in summary):
        assert any(isinstance(e, ReasoningDelta) for e in events)
    calls = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.id, c.name, dict(c.arguments)) for c in calls] == want["calls"]
    assert [e for e in events if isinstance(e, FinishEvent)] == [FinishEvent(want["finish"])]
    assert [e.usage for e in events if isinstance(e, UsageEvent)] == [want["usage"]]
    resp = decoder.response()
    check_response(resp, final)
    assert resp.tool_calls == calls
    assert resp.request_id == request_id


# --- re-encoding recorded requests ------------------------------------------------------

SIMPLE_KEYS = {
    "model",
    "input",
    "instructions",
    "stream",
    "tools",
    "tool_choice",
    "text",
    "temperature",
    "top_p",
    "max_output_tokens",
}


def is_simple(body: Mapping[str, Any]) -> bool:
    if not set(body) <= SIMPLE_KEYS or not isinstance(body.get("input"), list):
        return False
    if set(body.get("text") or {}) - {"format"}:
        return False
    if any(tool.get("type") != "function" for tool in body.get("tools") or ()):
        return False
    for item in body["input"]:
        kind = item.get("type", "message")
        if kind in ("function_call", "function_call_output"):
            if set(item) - {"type", "call_id", "name", "arguments", "output"}:
                return False
            if not isinstance(item.get("output", ""), str):
                return False
            continue
        if kind != "message" or set(item) - {"role", "content", "type"}:
            return False
        content = item["content"]
        if item["role"] == "assistant" and not isinstance(content, str):
            return False
        if isinstance(content, list) and any(
            p.get("type") not in ("input_text", "input_image", "input_file") for p in content
        ):
            return False
    return True


def part_from_wire(part: Mapping[str, Any]) -> Any:
    if part["type"] == "input_text":
        return callm.Text(part["text"])
    if part["type"] == "input_image":
        return callm.Image(part["image_url"], detail=part.get("detail"))
    if "file_url" in part:
        return callm.Document(part["file_url"])
    return callm.Document(part["file_data"], title=part.get("filename"))


def messages_from_wire(body: Mapping[str, Any]) -> list[Message]:
    messages: list[Message] = []
    if "instructions" in body:
        messages.append(Message.system(body["instructions"]))
    for item in body["input"]:
        kind = item.get("type", "message")
        if kind == "function_call":
            call = ToolCall(item["call_id"], item["name"], json.loads(item["arguments"] or "{}"))
            if messages and messages[-1].role == "assistant":
                messages[-1] = Message("assistant", (*messages[-1].content, call))
            else:
                messages.append(Message("assistant", (call,)))
        elif kind == "function_call_output":
            messages.append(Message("tool", (ToolResult(item["call_id"], item["output"]),)))
        elif isinstance(item["content"], str):
            messages.append(Message(item["role"], (callm.Text(item["content"]),)))
        else:
            parts = tuple(part_from_wire(p) for p in item["content"])
            messages.append(Message(item["role"], parts))
    return messages


def request_from_wire(body: Mapping[str, Any]) -> Request:
    tools = tuple(
        Tool(t["name"], t.get("description") or "", t["parameters"], t.get("strict"))
        for t in body.get("tools") or ()
    )
    return Request(
        model=body["model"],
        messages=tuple(messages_from_wire(body)),
        max_tokens=body.get("max_output_tokens"),
        temperature=body.get("temperature"),
        top_p=body.get("top_p"),
        tools=tools,
        tool_choice=body.get("tool_choice"),
        response_format=(body.get("text") or {}).get("format"),
        stream=bool(body.get("stream")),
    )


def normalise(body: Mapping[str, Any]) -> dict[str, Any]:
    """Differences that do not change meaning: defaults, spacing, equivalent item forms."""
    out = json.loads(json.dumps(body))
    if out.get("stream") is False:
        del out["stream"]
    for tool in out.get("tools") or ():
        if not tool.get("description"):
            tool.pop("description", None)
    out["input"] = [_normal_item(item) for item in out["input"]]
    leading = []
    while out["input"] and out["input"][0].get("role") in ("system", "developer"):
        leading.append(out["input"].pop(0)["content"])
    if leading and "instructions" not in out:  # the same thing as instructions
        out["instructions"] = "\n\n".join(leading)
    return out


def _normal_item(item: dict[str, Any]) -> dict[str, Any]:
    if item.get("type") == "function_call":
        item["arguments"] = json.loads(item["arguments"] or "{}")
    if item.get("role") == "assistant" and isinstance(item.get("content"), list):
        return {"role": "assistant", "content": "".join(p["text"] for p in item["content"])}
    if item.get("type") == "message":
        item.pop("type")
    content = item.get("content")
    if isinstance(content, list) and len(content) == 1 and content[0]["type"] == "input_text":
        item["content"] = content[0]["text"]
    return item


def simple_requests() -> list[Any]:
    params = []
    for file_param in FILES:
        path = file_param.values[0]
        if path is None:
            continue
        for number, interaction in enumerate(filter(is_responses, load(path))):
            body = interaction["request"].get("parsed_body")
            if path_of(interaction).endswith("/responses") and body and is_simple(body):
                params.append(pytest.param(body, id=f"{file_param.id}#{number}"))
    return params or [pytest.param(None, id="fixtures-missing")]


@pytest.mark.parametrize("recorded", simple_requests())
def test_recorded_request_reencodes(recorded: dict[str, Any] | None) -> None:
    if recorded is None:
        pytest.skip(MISSING)
    encoded = wire.encode_body(request_from_wire(recorded))
    assert normalise(encoded) == normalise(recorded)


def test_some_recordings_exercise_server_tools_and_citations() -> None:
    """The replay above covers RawPart items and annotations, not only plain text."""
    if not RECORDED.is_dir():
        pytest.skip(MISSING)
    raw_types: set[str] = set()
    annotated = 0
    for param in FILES:
        for interaction in filter(is_responses, load(param.values[0])):
            parsed = interaction["response"].get("parsed_body")
            if isinstance(parsed, dict) and isinstance(parsed.get("output"), list):
                resp = wire.decode(EP, HttpResponse(200, {}, json.dumps(parsed).encode()))
                for part in resp.content:
                    if isinstance(part, RawPart):
                        raw_types.add(part.type)
                        annotated += part.type == "annotations"
    assert {"web_search_call", "file_search_call", "mcp_call", "code_interpreter_call"} <= raw_types
    assert annotated > 0
    assert len(simple_requests()) > 20
