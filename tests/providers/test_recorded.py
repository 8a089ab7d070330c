"""Replay real recorded Chat Completions traffic (OpenAI, Groq, Mistral and compatibles).

The recordings are VCR YAML files from the pydantic-ai test suite (see
``../shared/fixtures/README.md``). Every expected value here is read from the recording
itself, independently of callm's decoders: text, tool calls, usage, finish reason, errors.
Only ``/chat/completions`` interactions apply; ``/responses`` ones belong to another protocol.
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
from callm._config.providers import BUILTIN, build_endpoint  # noqa: E402
from callm._core.endpoint import Endpoint  # noqa: E402
from callm._core.http import HttpResponse  # noqa: E402
from callm._core.types import (  # noqa: E402
    FinishEvent,
    ReasoningDelta,
    Request,
    Response,
    TextDelta,
    ToolCallEvent,
    Usage,
    UsageEvent,
)
from callm._features.messages import to_messages, to_tools  # noqa: E402
from callm.protocols._shared.errors import decode_error  # noqa: E402
from callm.protocols._shared.sse import SSEDecoder  # noqa: E402
from callm.protocols.openai_chat.client import ChatStreamDecoder, decode, encode_body  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures"
RECORDED = FIXTURES / "recorded"
PROVIDER_DIRS = ("openai", "groq", "mistral")
MISSING = f"recorded fixtures not found at {RECORDED} (a checkout without ../shared)"


def is_chat(interaction: Mapping[str, Any]) -> bool:
    uri = interaction["request"]["uri"].split("#", 1)[0].split("?", 1)[0]
    return uri.endswith("/chat/completions")


@functools.cache
def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        data = yaml.safe_load(f)
    return data.get("interactions") or []


def chat_files() -> list[Any]:
    if not RECORDED.is_dir():
        return [pytest.param(None, id="fixtures-missing")]
    params = []
    for provider in PROVIDER_DIRS:
        for path in sorted((RECORDED / provider).glob("*.yaml")):
            if any(is_chat(i) for i in load(path)):
                params.append(pytest.param(path, id=f"{provider}/{path.name}"))
    return params


FILES = chat_files()


def chat_interactions(path: Path | None) -> list[dict[str, Any]]:
    if path is None:
        pytest.skip(MISSING)
    return [i for i in load(path) if is_chat(i)]


def endpoint_for(path: Path) -> Endpoint:
    provider = path.parent.name
    return build_endpoint(BUILTIN[provider], BUILTIN[provider].base_url or "", "test-key")


def response_headers(response: Mapping[str, Any]) -> dict[str, str]:
    headers: dict[str, str] = {}
    for name, values in (response.get("headers") or {}).items():
        value = values[0] if isinstance(values, list) else values
        headers[name.lower()] = str(value)
    return headers


def raw_body(response: Mapping[str, Any]) -> bytes:
    if "parsed_body" in response:
        return json.dumps(response["parsed_body"]).encode()
    body = (response.get("body") or {}).get("string", "")
    return body if isinstance(body, bytes) else body.encode()


# --- expectations computed from the recording -------------------------------------------

FINISH = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "function_call": "tool_calls",
    "content_filter": "content_filter",
}


def expected_usage(data: Mapping[str, Any]) -> Usage:
    usage = data.get("usage") or (data.get("x_groq") or {}).get("usage")
    if not usage:
        return Usage()
    prompt_details = usage.get("prompt_tokens_details") or {}
    completion_details = usage.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=usage.get("prompt_tokens") or 0,
        output_tokens=usage.get("completion_tokens") or 0,
        cached_input_tokens=prompt_details.get("cached_tokens")
        or usage.get("prompt_cache_hit_tokens")
        or 0,
        cache_write_tokens=prompt_details.get("cache_write_tokens") or 0,
        reasoning_tokens=completion_details.get("reasoning_tokens") or 0,
    )


def split_content(content: Any) -> tuple[str, str]:
    """(text, reasoning) of a content string or a Mistral content array."""
    if isinstance(content, str):
        return content, ""
    text, reasoning = "", ""
    for block in content or ():
        if block.get("type") == "text":
            text += block.get("text") or ""
        elif block.get("type") == "thinking":
            reasoning += "".join(b.get("text", "") for b in block.get("thinking") or ())
    return text, reasoning


def expected_finish(native: str | None, refusal: str | None) -> str | None:
    if native is None:
        return None
    if native == "stop" and refusal:
        return "refusal"
    return FINISH[native]


def check_response(resp: Response, choice: Mapping[str, Any], data: Mapping[str, Any]) -> None:
    message = choice["message"]
    text, array_reasoning = split_content(message.get("content"))
    reasoning = message.get("reasoning_content") or message.get("reasoning") or array_reasoning
    assert resp.text == text
    assert resp.reasoning == (reasoning or None)
    assert resp.refusal == (message.get("refusal") or None)
    recorded_calls = message.get("tool_calls") or []
    assert [c.name for c in resp.tool_calls] == [c["function"]["name"] for c in recorded_calls]
    for call, recorded in zip(resp.tool_calls, recorded_calls, strict=True):
        # An id the provider left empty is made up, so tool results can refer to it.
        assert call.id == recorded.get("id") or call.id.startswith("call_")
    for call, recorded in zip(resp.tool_calls, recorded_calls, strict=True):
        arguments = recorded["function"]["arguments"]
        assert dict(call.arguments) == json.loads(arguments)
        assert call.raw_arguments == arguments
        assert not call.invalid_arguments
    assert resp.native_finish_reason == choice.get("finish_reason")
    assert resp.finish_reason == expected_finish(
        choice.get("finish_reason"), message.get("refusal")
    )
    assert resp.usage == expected_usage(data)
    assert resp.id == (data.get("id") or "")
    assert resp.model == (data.get("model") or "")


def expected_stream(body: str) -> dict[str, Any]:
    """Accumulate the recorded chunks by hand (each event here is one ``data:`` line)."""
    text, reasoning, finish, usage = "", "", None, Usage()
    tools: dict[int, dict[str, Any]] = {}
    for line in body.splitlines():
        if not line.startswith("data:"):
            continue
        payload = line[5:].strip()
        if payload == "[DONE]":
            continue
        data = json.loads(payload)
        if data.get("usage") or (data.get("x_groq") or {}).get("usage"):
            usage = expected_usage(data)
        for choice in data.get("choices") or ():
            if choice.get("index", 0) != 0:
                continue
            delta = choice.get("delta") or {}
            t, r = split_content(delta.get("content"))
            text += t
            reasoning += r + (delta.get("reasoning_content") or delta.get("reasoning") or "")
            for fragment in delta.get("tool_calls") or ():
                slot = tools.setdefault(fragment["index"], {"id": "", "name": "", "arguments": ""})
                function = fragment.get("function") or {}
                slot["id"] = fragment.get("id") or slot["id"]
                slot["name"] = function.get("name") or slot["name"]
                slot["arguments"] += function.get("arguments") or ""
            if choice.get("finish_reason"):
                finish = choice["finish_reason"]
    return {
        "text": text,
        "reasoning": reasoning or None,
        "finish": finish,
        "usage": usage,
        "tools": [tools[i] for i in sorted(tools)],
    }


def replay_stream(ep: Endpoint, body: bytes, chunk_size: int, request_id: str | None):
    sse = SSEDecoder()
    decoder = ChatStreamDecoder(ep, request_id)
    events: list[Any] = []
    for start in range(0, len(body), chunk_size):
        for event in sse.feed(body[start : start + chunk_size]):
            events.extend(decoder.feed(event))
    for event in sse.close():
        events.extend(decoder.feed(event))
    return decoder, events


def expected_error_class(status: int, error: Mapping[str, Any]) -> type[Exception]:
    if status == 400:
        if error.get("code") == "context_length_exceeded":
            return callm.ContextWindowExceededError
        return callm.BadRequestError
    return {
        401: callm.AuthenticationError,
        403: callm.PermissionDeniedError,
        404: callm.NotFoundError,
        409: callm.ConflictError,
        429: callm.RateLimitError,
    }.get(status, callm.InternalServerError if status >= 500 else callm.APIStatusError)


# --- the tests --------------------------------------------------------------------------


@pytest.mark.parametrize("path", FILES)
def test_recorded_responses_decode(path: Path | None) -> None:
    interactions = chat_interactions(path)
    assert path is not None
    ep = endpoint_for(path)
    for interaction in interactions:
        response = interaction["response"]
        status = response["status"]["code"]
        headers = response_headers(response)
        content_type = headers.get("content-type", "")
        request_id = (
            headers.get("x-request-id")
            or headers.get("request-id")
            or headers.get("apim-request-id")
            or headers.get("mistral-correlation-id")
        )
        body = raw_body(response)
        if status >= 400:
            parsed = response.get("parsed_body")
            if parsed is None:
                parsed = body.decode("utf-8", "replace")
            error = parsed.get("error", parsed) if isinstance(parsed, dict) else {"message": parsed}
            exc = decode_error(ep, status, headers, parsed)
            assert type(exc) is expected_error_class(status, error)
            assert exc.status_code == status
            assert error["message"] in str(exc)
            code = error.get("code")
            assert exc.code == (str(code) if code is not None else None)
            assert exc.request_id == request_id
        elif "text/event-stream" in content_type:
            check_stream(ep, body, request_id)
        else:
            check_json(
                ep,
                status=status,
                headers=headers,
                body=body,
                parsed=response.get("parsed_body"),
                request_id=request_id,
            )


def check_json(
    ep: Endpoint,
    *,
    status: int,
    headers: dict[str, str],
    body: bytes,
    parsed: Any,
    request_id: str | None,
) -> None:
    http = HttpResponse(status, headers, body)
    if not isinstance(parsed, dict) or not isinstance(parsed.get("choices"), list):
        # Not a chat completion at all (a text/plain echo, or JSON without choices).
        with pytest.raises(callm.APIResponseError):
            decode(ep, http)
        return
    resp = decode(ep, http)
    assert resp.request_id == request_id
    choices = parsed["choices"]
    check_response(resp, choices[0], parsed)
    assert len(resp.choices) == len(choices) - 1
    for extra, choice in zip(resp.choices, choices[1:], strict=True):
        check_response(extra, choice, parsed)


def check_stream(ep: Endpoint, body: bytes, request_id: str | None) -> None:
    expected = expected_stream(body.decode("utf-8"))
    whole_decoder, whole_events = replay_stream(ep, body, len(body), request_id)
    for size in (1, 7, 64):
        _, events = replay_stream(ep, body, size, request_id)
        assert events == whole_events, size
    decoder, events = whole_decoder, whole_events
    assert decoder.finished
    assert decoder.done
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == expected["text"]
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert (reasoning or None) == expected["reasoning"]
    finish_events = [e for e in events if isinstance(e, FinishEvent)]
    assert finish_events == [FinishEvent(expected_finish(expected["finish"], None))]
    usage_events = [e for e in events if isinstance(e, UsageEvent)]
    if expected["usage"] != Usage():
        assert usage_events[-1].usage == expected["usage"]
    calls = [e.tool_call for e in events if isinstance(e, ToolCallEvent)]
    assert [(c.id, c.name, dict(c.arguments)) for c in calls] == [
        (t["id"], t["name"], json.loads(t["arguments"] or "{}")) for t in expected["tools"]
    ]
    resp = decoder.response()
    assert resp.text == expected["text"]
    assert resp.reasoning == expected["reasoning"]
    assert resp.finish_reason == expected_finish(expected["finish"], None)
    assert resp.usage == expected["usage"]
    assert resp.tool_calls == calls
    assert resp.request_id == request_id


# --- re-encoding recorded requests ------------------------------------------------------

SIMPLE_KEYS = {
    "messages",
    "model",
    "stream",
    "stream_options",
    "n",
    "tools",
    "tool_choice",
    "response_format",
    "top_p",
    "max_completion_tokens",
    "user",
    "stop",
}
SIMPLE_MESSAGE_KEYS = {"role", "content", "tool_calls", "tool_call_id"}


def is_simple(body: Mapping[str, Any]) -> bool:
    if not set(body) <= SIMPLE_KEYS:
        return False
    for message in body["messages"]:
        if not set(message) <= SIMPLE_MESSAGE_KEYS:
            return False
        content = message.get("content")
        if message["role"] in ("tool", "assistant") and not (
            content is None or isinstance(content, str)
        ):
            return False
        if isinstance(content, list) and any(
            p.get("type") not in ("text", "image_url") for p in content
        ):
            return False
    return True


def request_from_wire(body: Mapping[str, Any]) -> Request:
    return Request(
        model=body["model"],
        messages=to_messages(body["messages"]),
        max_tokens=body.get("max_completion_tokens"),
        top_p=body.get("top_p"),
        stop=(body["stop"],)
        if isinstance(body.get("stop"), str)
        else (tuple(body["stop"]) if body.get("stop") else None),
        n=body.get("n"),
        user=body.get("user"),
        tools=to_tools(body.get("tools")),
        tool_choice=body.get("tool_choice"),
        response_format=body.get("response_format"),
        stream=bool(body.get("stream")),
    )


def normalise(body: Mapping[str, Any]) -> dict[str, Any]:
    """Differences that do not change meaning: defaults, JSON spacing, one-part arrays."""
    out = json.loads(json.dumps(body))
    if out.get("stream") is False:
        del out["stream"]
    if isinstance(out.get("stop"), str):
        out["stop"] = [out["stop"]]
    for message in out["messages"]:
        if message["role"] == "assistant" and message.get("tool_calls"):
            if not message.get("content"):
                message["content"] = None
            for call in message["tool_calls"]:
                call["function"]["arguments"] = json.loads(call["function"]["arguments"] or "{}")
        content = message.get("content")
        if isinstance(content, list) and len(content) == 1 and content[0].get("type") == "text":
            message["content"] = content[0]["text"]
    for tool in out.get("tools") or ():
        if not tool["function"].get("description"):
            tool["function"].pop("description", None)
    return out


def simple_requests() -> list[Any]:
    params = []
    for file_param in FILES:
        path = file_param.values[0]
        if path is None:
            continue
        for number, interaction in enumerate(chat_interactions(path)):
            body = interaction["request"].get("parsed_body")
            if body and is_simple(body):
                params.append(pytest.param(path, body, id=f"{file_param.id}#{number}"))
    return params or [pytest.param(None, None, id="fixtures-missing")]


@pytest.mark.parametrize(("path", "wire"), simple_requests())
def test_recorded_request_reencodes(path: Path | None, wire: dict[str, Any] | None) -> None:
    if path is None or wire is None:
        pytest.skip(MISSING)
    # The provider's built-in quirks apply (Mistral: no stream_options, 9-character ids).
    ep = endpoint_for(path)
    encoded = encode_body(ep, request_from_wire(wire))
    assert normalise(encoded) == normalise(wire)
