"""Replay real recorded Gemini traffic (generativelanguage and Vertex AI generateContent).

The recordings are VCR YAML files from the pydantic-ai test suite (see
``../shared/fixtures/README.md``). Every file of the ``google`` folder is replayed; the
interactions that are not this protocol (OAuth tokens, file-search uploads, OpenAI calls,
plain downloads) are skipped, and each file must hold at least one that is. Expected
values are computed from the recording by hand, independently of callm's decoders.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

from callm._config.providers import BUILTIN, build_endpoint  # noqa: E402
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
    ToolCallEvent,
    ToolResult,
    Usage,
    UsageEvent,
)
from callm.protocols._shared.sse import SSEDecoder  # noqa: E402
from callm.protocols.gemini import client as gemini  # noqa: E402
from callm.protocols.gemini.stream import GeminiStreamDecoder  # noqa: E402

RECORDED = Path(__file__).resolve().parents[2].parent / "shared" / "fixtures" / "recorded"
FOLDER = RECORDED / "google"
MISSING = f"recorded fixtures not found at {FOLDER} (a checkout without ../shared)"
EP = build_endpoint(BUILTIN["gemini"], BUILTIN["gemini"].base_url or "", "test-key")
METHODS = (":generateContent", ":streamGenerateContent", ":countTokens")
STANDARD_KEYS = {"text", "thought", "thoughtSignature", "functionCall", "inlineData", "fileData"}
METADATA = ("groundingMetadata", "citationMetadata", "urlContextMetadata")
FINISH = {
    "STOP": "stop",
    "MAX_TOKENS": "length",
    "SAFETY": "content_filter",
    "MODEL_ARMOR": "content_filter",
}


@functools.cache
def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return (yaml.safe_load(f) or {}).get("interactions") or []


def method_of(interaction: Mapping[str, Any]) -> str | None:
    path = interaction["request"]["uri"].split("?", 1)[0]
    return next((m[1:] for m in METHODS if path.endswith(m)), None)


def files() -> list[Any]:
    if not FOLDER.is_dir():
        return [pytest.param(None, id="fixtures-missing")]
    return [pytest.param(p, id=p.name) for p in sorted(FOLDER.glob("*.yaml"))]


FILES = files()


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


# --- expectations, by hand --------------------------------------------------------------


def expected_usage(meta: Mapping[str, Any] | None) -> Usage:
    meta = meta or {}
    thoughts = meta.get("thoughtsTokenCount", 0)
    return Usage(
        input_tokens=meta.get("promptTokenCount", 0) + meta.get("toolUsePromptTokenCount", 0),
        output_tokens=meta.get("candidatesTokenCount", 0) + thoughts,
        cached_input_tokens=meta.get("cachedContentTokenCount", 0),
        reasoning_tokens=thoughts,
    )


def summary(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    """What a user should see of a candidate's parts."""
    text = "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))
    thoughts = [p["text"] for p in parts if p.get("thought")]
    # A RawPart keeps its own signature inside its data; the others carry it in Reasoning.
    signatures = [
        p["thoughtSignature"] for p in parts if "thoughtSignature" in p and set(p) <= STANDARD_KEYS
    ]
    calls = [p["functionCall"] for p in parts if "functionCall" in p]
    others = [p for p in parts if not set(p) <= STANDARD_KEYS]
    return {
        "text": text,
        # Signature-only markers are Reasoning parts with no text: reasoning is None then.
        "reasoning": "".join(thoughts) or None,
        "signatures": signatures,
        "calls": calls,
        "others": others,
    }


def check(resp: Response, parts: list[Any], candidate: Mapping[str, Any], data: Any) -> None:
    want = summary(parts)
    assert resp.text == want["text"]
    assert resp.reasoning == want["reasoning"]
    got_signatures = [p.signature for p in resp.content if isinstance(p, Reasoning) and p.signature]
    assert got_signatures == want["signatures"]
    assert [(c.name, dict(c.arguments)) for c in resp.tool_calls] == [
        (c["name"], c.get("args") or {}) for c in want["calls"]
    ]
    for call, wire in zip(resp.tool_calls, want["calls"], strict=True):
        assert call.id == wire.get("id") or call.id.startswith("call_")
    raws = [p for p in resp.content if isinstance(p, RawPart)]
    assert [r.data for r in raws if r.type not in METADATA] == want["others"]
    for key in METADATA:  # kept, and findable by name
        kept = [r.data for r in raws if r.type == key]
        assert kept == ([candidate[key]] if candidate.get(key) else [])
    native = candidate.get("finishReason")
    assert resp.native_finish_reason == native
    expected = FINISH.get(native) if native else None
    if expected == "stop" and want["calls"]:
        expected = "tool_calls"
    assert resp.finish_reason == expected
    assert resp.usage == expected_usage(data.get("usageMetadata"))
    assert resp.id == data.get("responseId", "")
    assert resp.model == data.get("modelVersion", "")


def check_reencodes(resp: Response, parts: list[Mapping[str, Any]]) -> None:
    """The reply sent back as history is the parts Gemini sent (ids added, empties dropped)."""
    contents, _ = gemini.encode_messages([Message.user("q"), resp.to_message()])
    sent = contents[1]["parts"] if len(contents) > 1 else []
    wanted = [p for p in parts if p.get("text") != "" or "thoughtSignature" in p]
    if resp.refusal:  # a filter's finishMessage, sent back as what the turn said
        wanted.append({"text": resp.refusal})
    assert len(sent) == len(wanted)
    for ours, recorded in zip(sent, wanted, strict=True):
        mine, theirs = ours, recorded
        if "functionCall" in ours:
            mine = {**ours, "functionCall": {**ours["functionCall"]}}
            if "id" not in recorded["functionCall"]:
                del mine["functionCall"]["id"]  # callm's made-up id
            theirs = {**recorded, "functionCall": {"args": {}, **recorded["functionCall"]}}
        assert mine == theirs


# --- the replay ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", FILES)
def test_recorded_file_replays(path: Path | None) -> None:
    if path is None:
        pytest.skip(MISSING)
    mine = [i for i in load(path) if method_of(i)]
    assert mine, f"{path.name} holds no Gemini interaction"
    for interaction in mine:
        response = interaction["response"]
        assert response["status"]["code"] == 200  # the folder holds no error answers
        http = HttpResponse(200, headers_of(response), body_of(response))
        method = method_of(interaction)
        if method == "countTokens":
            assert gemini.decode_count_tokens(EP, http) == json.loads(http.body)["totalTokens"]
        elif method == "streamGenerateContent":
            check_stream(http.body)
        else:
            check_whole(http, json.loads(http.body))


def check_whole(http: HttpResponse, data: dict[str, Any]) -> None:
    resp = gemini.decode(EP, http)
    candidates = data.get("candidates") or []
    if not candidates:  # a blocked prompt
        reason = data["promptFeedback"]["blockReason"]
        assert resp.finish_reason == "content_filter"
        assert resp.native_finish_reason == reason
        assert reason in (resp.refusal or "")
        assert data["promptFeedback"]["blockReasonMessage"] in (resp.refusal or "")
        return
    first = candidates[0]
    parts = (first.get("content") or {}).get("parts") or []
    check(resp, parts, first, data)
    if first.get("finishReason") in ("SAFETY", "MODEL_ARMOR") and first.get("finishMessage"):
        assert resp.refusal == first["finishMessage"]
    check_reencodes(resp, parts)
    assert resp.raw == data


def replay(body: bytes, size: int) -> tuple[GeminiStreamDecoder, list[Any]]:
    decoder = GeminiStreamDecoder(EP, None)
    sse, events = SSEDecoder(), []
    for start in range(0, len(body), size):
        for event in sse.feed(body[start : start + size]):
            events += decoder.feed(event)
    sse.close()
    return decoder, events


def check_stream(body: bytes) -> None:
    chunks = [json.loads(e[6:]) for e in body.decode().split("\r\n\r\n") if e.strip()]
    assert chunks, "an empty recorded stream"
    decoder, events = replay(body, len(body))
    for size in (1, 9, 200):
        assert replay(body, size)[1] == events, size
    assert decoder.finished
    parts = [p for c in chunks for p in c["candidates"][0].get("content", {}).get("parts", [])]
    last = chunks[-1]
    candidate: dict[str, Any] = {"finishReason": last["candidates"][0].get("finishReason")}
    for key in METADATA:  # the latest non-empty value is the whole of it
        values = [c["candidates"][0].get(key) for c in chunks if c["candidates"][0].get(key)]
        if values:
            candidate[key] = values[-1]
    summary_data = {**chunks[0], "usageMetadata": last.get("usageMetadata")}
    resp = decoder.response()
    check(resp, parts, candidate, summary_data)
    want = summary(parts)
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == want["text"]
    thoughts = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    assert thoughts == (want["reasoning"] or "")
    assert [e for e in events if isinstance(e, FinishEvent)] == [FinishEvent(resp.finish_reason)]
    assert [e.usage for e in events if isinstance(e, UsageEvent)] == [resp.usage]
    assert [e.tool_call for e in events if isinstance(e, ToolCallEvent)] == resp.tool_calls


# --- re-encoding recorded requests -------------------------------------------------------

SIMPLE_BODY = {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig"}
SIMPLE_CONFIG = {
    "temperature",
    "topP",
    "topK",
    "maxOutputTokens",
    "responseMimeType",
    "responseJsonSchema",
    "responseModalities",
}


def is_simple(body: Mapping[str, Any]) -> bool:
    if not set(body) <= SIMPLE_BODY or not set(body.get("generationConfig") or {}) <= SIMPLE_CONFIG:
        return False
    declarations = []
    for tool in body.get("tools") or ():
        if "functionDeclarations" not in tool:
            return False
        declarations += tool["functionDeclarations"]
    if any("parameters" in d for d in declarations):  # OpenAPI schemas: not JSON Schema
        return False
    allowed = STANDARD_KEYS | {"functionResponse"}
    return all(set(p) <= allowed for c in body["contents"] for p in c["parts"])


def to_request(model: str, body: Mapping[str, Any]) -> Request:
    """A callm Request rebuilt by hand from a recorded Gemini body."""
    messages: list[Message] = []
    system = body.get("systemInstruction")
    if system:
        messages.append(Message.system("".join(p["text"] for p in system["parts"])))
    for content in body["contents"]:
        if content["role"] == "model":
            decoder = GeminiStreamDecoder(EP, None)
            decoder.absorb({"candidates": [{"content": content}], "responseId": "x"})
            messages.append(decoder.response().to_message())
            continue
        for part in content["parts"]:
            response = part.get("functionResponse")
            if response:
                (value,) = response["response"].values()
                result = ToolResult(response.get("id", ""), str(value), name=response["name"])
                messages.append(Message("tool", (result,)))
            else:
                messages.append(Message.user(user_part(part)))
    config = body.get("generationConfig") or {}
    fmt: dict[str, Any] | None = None
    if "responseJsonSchema" in config:
        fmt = {"type": "json_schema", "schema": config["responseJsonSchema"]}
    elif config.get("responseMimeType") == "application/json":
        fmt = {"type": "json_object"}
    from callm._features.messages import to_tools

    declarations = [d for t in body.get("tools") or () for d in t["functionDeclarations"]]
    tools = to_tools(
        [
            {
                "name": d["name"],
                "description": d.get("description"),
                "parameters": d.get("parametersJsonSchema") or d.get("parameters_json_schema"),
            }
            for d in declarations
        ]
    )
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    return Request(
        model=model,
        messages=tuple(messages),
        temperature=config.get("temperature"),
        top_p=config.get("topP"),
        top_k=config.get("topK"),
        max_tokens=config.get("maxOutputTokens"),
        response_format=fmt,
        tools=tools,
        tool_choice=dict(calling) if calling else None,
    )


def user_part(part: Mapping[str, Any]) -> Part:
    if "text" in part:
        return Text(part["text"])
    blob = part.get("inlineData")
    if blob:
        url = f"data:{blob['mimeType']};base64,{blob['data']}"
        return Image(url) if blob["mimeType"].startswith("image/") else Document(url)
    file = {camel(k): v for k, v in part["fileData"].items()}
    return Document(file["fileUri"], media_type=file.get("mimeType"))


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(word.title() for word in rest)


def normalise(body: Mapping[str, Any]) -> Any:
    """Differences that do not change meaning: key spelling, defaults, the response wrapper."""
    out = json.loads(json.dumps(body).replace('"parameters_json_schema"', '"parametersJsonSchema"'))
    if system := body.get("systemInstruction"):  # callm joins it into one text, no role
        text = "".join(p["text"] for p in system["parts"])
        out["systemInstruction"] = {"parts": [{"text": text}]}
    config = out.get("generationConfig") or {}
    if config.get("responseModalities") == ["TEXT"]:
        del config["responseModalities"]
    if not config:
        out.pop("generationConfig", None)
    for tool in out.get("tools") or ():
        for declaration in tool["functionDeclarations"]:
            if not declaration.get("description"):
                declaration.pop("description", None)
    for content in out["contents"]:
        for part in content["parts"]:
            for key in ("functionCall", "functionResponse"):
                if key in part:
                    part[key].pop("id", None)
                    part[key].setdefault("args", {}) if key == "functionCall" else None
            if "functionResponse" in part:
                (value,) = part["functionResponse"]["response"].values()
                part["functionResponse"]["response"] = str(value)
            if "fileData" in part:
                part["fileData"] = {camel(k): v for k, v in part["fileData"].items()}
        content["parts"] = [p for p in content["parts"] if p != {"text": ""}]
    # callm leaves out empty turns, and so merges the neighbours they separated.
    merged: list[dict[str, Any]] = []
    for content in out["contents"]:
        if not content["parts"]:
            continue
        if merged and merged[-1]["role"] == content["role"]:
            merged[-1]["parts"] += content["parts"]
        else:
            merged.append({"role": content["role"], "parts": content["parts"]})
    out["contents"] = merged
    return out


def simple_requests() -> list[Any]:
    params = []
    for file_param in FILES:
        path = file_param.values[0]
        if path is None:
            continue
        for number, interaction in enumerate(load(path)):
            body = interaction["request"].get("parsed_body")
            uri = interaction["request"]["uri"]
            if method_of(interaction) in ("generateContent", "streamGenerateContent") and (
                isinstance(body, dict) and is_simple(body)
            ):
                model = uri.split("/models/", 1)[1].split(":", 1)[0]
                params.append(pytest.param(model, body, id=f"{path.name}#{number}"))
    return params or [pytest.param(None, None, id="fixtures-missing")]


@pytest.mark.parametrize(("model", "wire"), simple_requests())
def test_recorded_request_reencodes(model: str | None, wire: dict[str, Any] | None) -> None:
    if model is None or wire is None:
        pytest.skip(MISSING)
    encoded = gemini.encode_body(EP, to_request(model, wire))
    assert normalise(encoded) == normalise(wire)


def test_server_side_tool_parts_are_kept() -> None:
    """Google's built-in tools (search, URL context) come back as RawParts, not dropped."""
    if not FOLDER.is_dir():
        pytest.skip(MISSING)
    data = load(FOLDER / "test_google_model_web_search_tool.yaml")[0]["response"]["parsed_body"]
    resp = gemini.decode(EP, HttpResponse(200, {}, json.dumps(data).encode()))
    kept = [p for p in resp.content if isinstance(p, RawPart) and p.type == "groundingMetadata"]
    recorded = data["candidates"][0]["groundingMetadata"]
    assert len(kept) == 1
    assert kept[0].data["groundingChunks"] == recorded["groundingChunks"]
    assert kept[0].data["webSearchQueries"] == recorded["webSearchQueries"]
