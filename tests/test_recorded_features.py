"""Structured output, tool loops and prompt-cache usage, driven by real recorded traffic.

The recordings (VCR YAML from the pydantic-ai test suite, see ``../shared/fixtures/README.md``)
are replayed by a loopback server (:mod:`recording_server`) in their recorded order, and the
public API — ``complete(output=…)``, ``run()`` / ``run_stream()`` — is driven against them.
Every expected value (the parsed object, the final text, the tool calls and their ids, the
cached token counts) is read from the recording here, independently of callm's decoders;
the cases themselves are found by scanning the recordings, not listed by hand.
"""

from __future__ import annotations

import functools
import itertools
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml")

import callm  # noqa: E402
from helpers import FAKE_KEY  # noqa: E402
from recording_server import Recorded, RecordingServer  # noqa: E402

RECORDED = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "recorded"
MISSING = f"recorded fixtures not found at {RECORDED} (a checkout without ../shared)"
PROVIDER_DIRS = ("openai", "openai_responses", "anthropic", "google", "mistral", "groq")
MODES = ["sync", "async"]
Interaction = Mapping[str, Any]
Body = Mapping[str, Any]


# --- reading the recordings ---------------------------------------------------------------


@functools.cache
def load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return (yaml.safe_load(f) or {}).get("interactions") or []


def recordings() -> Iterator[tuple[Path, list[dict[str, Any]]]]:
    for provider in PROVIDER_DIRS:
        for path in sorted((RECORDED / provider).glob("*.yaml")):
            yield path, load(path)


def protocol_of(interaction: Interaction) -> str | None:
    """The protocol of a recorded model call; None for any other endpoint (files, counts…)."""
    uri = interaction["request"]["uri"].split("?", 1)[0]
    if uri.endswith("/responses"):
        return "openai_responses"
    if uri.endswith("/chat/completions"):
        return "openai_chat"
    if uri.endswith("/v1/messages"):
        return "anthropic"
    if re.search(r"/models/[^/]+:(generateContent|streamGenerateContent)$", uri):
        return "gemini"
    return None


def provider_of(path: Path, protocol: str) -> str:
    """The built-in provider whose protocol and quirks the recording came from."""
    if protocol == "openai_responses":
        return "openai-responses"
    return {"google": "gemini", "openai_responses": "openai"}.get(
        path.parent.name, path.parent.name
    )


def model_of(interaction: Interaction) -> str:
    body = request_body(interaction)
    if body.get("model"):
        return str(body["model"])
    found = re.search(r"/models/([^/:]+):", interaction["request"]["uri"])
    assert found, interaction["request"]["uri"]
    return found.group(1)


def request_body(interaction: Interaction) -> Body:
    body = interaction["request"].get("parsed_body")
    return body if isinstance(body, Mapping) else {}


def response_data(interaction: Interaction) -> Any:
    """The JSON body of a recorded response, or its raw text when it is a stream."""
    response = interaction["response"]
    if "parsed_body" in response:
        return response["parsed_body"]
    text = (response.get("body") or {}).get("string", "")
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    try:
        return json.loads(text)
    except ValueError:
        return text


def is_stream(interaction: Interaction) -> bool:
    return Recorded.from_vcr(interaction["response"]).streamed


def ok(interaction: Interaction) -> bool:
    return interaction["response"]["status"]["code"] == 200


def sse_payloads(body: str) -> Iterator[Any]:
    for line in body.splitlines():
        if line.startswith("data:") and line[5:].strip() not in ("", "[DONE]"):
            yield json.loads(line[5:].strip())


# --- what a recorded reply said: its text, and the ids of its tool calls -------------------
# (an id is None where the provider gave none: Gemini often, some compatible servers)

Reply = tuple[str, list[str | None]]


def reply_of(protocol: str, interaction: Interaction) -> Reply:
    data = response_data(interaction)
    if isinstance(data, str):
        return STREAM_REPLY[protocol](list(sse_payloads(data)))
    return JSON_REPLY[protocol](data)


def _chat_json(data: Body) -> Reply:
    message = data["choices"][0]["message"]
    content = message.get("content")
    ids = [c.get("id") or None for c in message.get("tool_calls") or ()]
    return (content if isinstance(content, str) else ""), ids


def _responses_json(data: Body) -> Reply:
    text, ids = "", []
    for item in data.get("output") or ():
        if item.get("type") == "message":
            text += "".join(
                c.get("text", "") for c in item["content"] if c["type"] == "output_text"
            )
        if item.get("type") == "function_call":
            ids.append(item.get("call_id") or None)
    return text, ids


def _anthropic_json(data: Body) -> Reply:
    blocks = data.get("content") or ()
    text = "".join(b["text"] for b in blocks if b["type"] == "text")
    return text, [b["id"] for b in blocks if b["type"] == "tool_use"]


def _gemini_parts(data: Body) -> list[Mapping[str, Any]]:
    candidates = data.get("candidates") or [{}]
    return list((candidates[0].get("content") or {}).get("parts") or ())


def _gemini_json(data: Body) -> Reply:
    parts = _gemini_parts(data)
    text = "".join(p.get("text", "") for p in parts if not p.get("thought"))
    return text, [p["functionCall"].get("id") for p in parts if "functionCall" in p]


def _chat_stream(chunks: list[Any]) -> Reply:
    text, ids = "", {}
    for chunk in chunks:
        for choice in chunk.get("choices") or ():
            delta = choice.get("delta") or {}
            text += delta.get("content") or ""
            for fragment in delta.get("tool_calls") or ():
                ids[fragment["index"]] = fragment.get("id") or ids.get(fragment["index"])
    return text, list(ids.values())


def _responses_stream(events: list[Any]) -> Reply:
    text = "".join(e["delta"] for e in events if e.get("type") == "response.output_text.delta")
    added = [e["item"] for e in events if e.get("type") == "response.output_item.added"]
    return text, [i.get("call_id") or None for i in added if i.get("type") == "function_call"]


def _anthropic_stream(events: list[Any]) -> Reply:
    deltas = [e["delta"] for e in events if e.get("type") == "content_block_delta"]
    text = "".join(d["text"] for d in deltas if d.get("type") == "text_delta")
    starts = [e["content_block"] for e in events if e.get("type") == "content_block_start"]
    return text, [b["id"] for b in starts if b["type"] == "tool_use"]


def _gemini_stream(chunks: list[Any]) -> Reply:
    replies = [_gemini_json(chunk) for chunk in chunks]
    return "".join(t for t, _ in replies), [i for _, ids in replies for i in ids]


JSON_REPLY: dict[str, Callable[[Body], Reply]] = {
    "openai_chat": _chat_json,
    "openai_responses": _responses_json,
    "anthropic": _anthropic_json,
    "gemini": _gemini_json,
}
STREAM_REPLY: dict[str, Callable[[list[Any]], Reply]] = {
    "openai_chat": _chat_stream,
    "openai_responses": _responses_stream,
    "anthropic": _anthropic_stream,
    "gemini": _gemini_stream,
}


# --- driving callm against a recording ------------------------------------------------------


def client_options(server: RecordingServer, provider: str) -> dict[str, Any]:
    """The built-in provider (its protocol and quirks) pointed at the replay server."""
    return {"providers": {provider: {"base_url": server.url, "api_key": FAKE_KEY}}}


def fixtures_or_skip(cases: list[Any]) -> list[Any]:
    if not RECORDED.is_dir():
        return [pytest.param(None, id="fixtures-missing")]
    return cases


def need(case: Any) -> Any:
    if case is None:
        pytest.skip(MISSING)
    return case


# --- 1. structured output -------------------------------------------------------------------


@dataclass(frozen=True)
class SchemaCase:
    path: Path
    index: int
    protocol: str
    name: str | None
    schema: Mapping[str, Any]
    strict: bool

    @property
    def interaction(self) -> Interaction:
        return load(self.path)[self.index]


def recorded_schema(protocol: str, body: Body) -> tuple[str | None, Any, bool] | None:
    """(name, schema, strict) of the JSON schema a recorded request asked for, if any."""
    if protocol == "openai_chat":
        fmt = body.get("response_format") or {}
        if fmt.get("type") == "json_schema":
            spec = fmt["json_schema"]
            return spec.get("name"), spec["schema"], bool(spec.get("strict"))
    elif protocol == "openai_responses":
        fmt = (body.get("text") or {}).get("format") or {}
        if fmt.get("type") == "json_schema":
            return fmt.get("name"), fmt["schema"], bool(fmt.get("strict"))
    elif protocol == "anthropic":
        fmt = body.get("output_format") or (body.get("output_config") or {}).get("format")
        if fmt and fmt.get("type") == "json_schema":
            return None, fmt["schema"], False
    else:
        config = body.get("generationConfig") or {}
        schema = config.get("responseJsonSchema") or config.get("responseSchema")
        if schema and config.get("responseMimeType") == "application/json":
            return None, schema, False
    return None


def schema_cases() -> list[Any]:
    cases = []
    for path, interactions in recordings():
        for index, interaction in enumerate(interactions):
            protocol = protocol_of(interaction)
            if protocol is None or not ok(interaction):
                continue
            body = request_body(interaction)
            if protocol == "gemini" and "responseSchema" in body.get("generationConfig", {}):
                continue  # an OpenAPI-subset schema, not the JSON Schema output= takes
            found = recorded_schema(protocol, body)
            if found is None or reply_of(protocol, interaction)[1]:
                continue  # no schema asked for, or the reply was a tool call
            name, schema, strict = found
            case = SchemaCase(path, index, protocol, name, schema, strict)
            cases.append(pytest.param(case, id=f"{path.parent.name}/{path.stem}[{index}]"))
    return cases


def sent_schema(protocol: str, body: Body) -> Any:
    """The schema a request callm sent carries in the protocol's native field."""
    if protocol == "openai_chat":
        assert body["response_format"]["type"] == "json_schema"
        return body["response_format"]["json_schema"]["schema"]
    if protocol == "openai_responses":
        assert body["text"]["format"]["type"] == "json_schema"
        return body["text"]["format"]["schema"]
    if protocol == "anthropic":
        assert body["output_config"]["format"]["type"] == "json_schema"
        return body["output_config"]["format"]["schema"]
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    return config.get("responseJsonSchema") or config["responseSchema"]


def same_schema(a: Any, b: Any) -> bool:
    """Equal JSON schemas, ``required`` compared as the set it means."""
    return bool(_canonical(a) == _canonical(b))


def _canonical(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {
            k: sorted(v) if k == "required" and isinstance(v, list) else _canonical(v)
            for k, v in node.items()
        }
    if isinstance(node, list):
        return [_canonical(v) for v in node]
    return node


async def ask_with_output(
    mode: str, streamed: bool, options: dict[str, Any], model: str, output: Any
) -> callm.Response:
    prompt = "Answer with the JSON object the schema describes."
    if mode == "sync":
        with callm.Client(**options) as client:
            if not streamed:
                return client.complete(model, prompt, output=output)
            with client.stream(model, prompt, output=output) as s:
                list(s)
                return s.response
    async with callm.AsyncClient(**options) as ac:
        if not streamed:
            return await ac.complete(model, prompt, output=output)
        s2 = await ac.stream(model, prompt, output=output)
        async with s2:
            [_ async for _ in s2]
        return s2.response


SCHEMA_CASES = fixtures_or_skip(schema_cases())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", SCHEMA_CASES)
async def test_structured_output_from_recorded_reply(case: SchemaCase | None, mode: str) -> None:
    case = need(case)
    interaction = case.interaction
    text, _ = reply_of(case.protocol, interaction)
    expected = json.loads(text)
    # strict=False sends a schema exactly as given (see callm._features.output); a strict recording
    # is already strict-compatible, so making it strict again must not change it.
    output = {"name": case.name or "result", "schema": case.schema, "strict": case.strict}
    provider = provider_of(case.path, case.protocol)
    with RecordingServer([interaction["response"]]) as server:
        r = await ask_with_output(
            mode,
            is_stream(interaction),
            client_options(server, provider),
            f"{provider}/{model_of(interaction)}",
            output,
        )
    assert r.parsed == expected
    assert r.text == text
    [sent] = server.received
    assert same_schema(sent_schema(case.protocol, sent.body), case.schema)


# --- 2. tool loops --------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    id: str | None
    name: str
    arguments: Any


def history_calls(protocol: str, body: Body) -> list[Call]:
    """Every tool call in a request's history, oldest first."""
    calls = []
    if protocol == "openai_chat":
        for message in body.get("messages") or ():
            for c in message.get("tool_calls") or ():
                args = json.loads(c["function"]["arguments"] or "{}")
                calls.append(Call(c["id"], c["function"]["name"], args))
    elif protocol == "openai_responses":
        for item in _input_items(body):
            if item.get("type") == "function_call":
                args = json.loads(item["arguments"] or "{}")
                calls.append(Call(item["call_id"], item["name"], args))
    elif protocol == "anthropic":
        for block in _anthropic_blocks(body):
            if block.get("type") == "tool_use":
                calls.append(Call(block["id"], block["name"], block.get("input") or {}))
    else:
        for part in _gemini_history_parts(body):
            if "functionCall" in part:
                fc = part["functionCall"]
                calls.append(Call(fc.get("id"), fc["name"], fc.get("args") or {}))
    return calls


def history_results(protocol: str, body: Body) -> list[Call]:
    """Every tool result in a request's history (id, tool name when the protocol says it)."""
    results = []
    if protocol == "openai_chat":
        for message in body.get("messages") or ():
            if message.get("role") == "tool":
                results.append(Call(message["tool_call_id"], "", None))
    elif protocol == "openai_responses":
        for item in _input_items(body):
            if item.get("type") == "function_call_output":
                results.append(Call(item["call_id"], "", None))
    elif protocol == "anthropic":
        for block in _anthropic_blocks(body):
            if block.get("type") == "tool_result":
                results.append(Call(block["tool_use_id"], "", None))
    else:
        for part in _gemini_history_parts(body):
            if "functionResponse" in part:
                fr = part["functionResponse"]
                results.append(Call(fr.get("id"), fr["name"], None))
    return results


def added(
    history: Callable[[str, Body], list[Call]], protocol: str, before: Body, after: Body
) -> list[Call]:
    """The calls (or results) a request carries that the one before it did not."""
    return history(protocol, after)[len(history(protocol, before)) :]


def _input_items(body: Body) -> list[Mapping[str, Any]]:
    items = body.get("input")
    return [i for i in items if isinstance(i, Mapping)] if isinstance(items, list) else []


def _anthropic_blocks(body: Body) -> Iterator[Mapping[str, Any]]:
    for message in body.get("messages") or ():
        content = message.get("content")
        if isinstance(content, list):
            yield from content


def _gemini_history_parts(body: Body) -> Iterator[Mapping[str, Any]]:
    for content in body.get("contents") or ():
        yield from content.get("parts") or ()


def function_tools(protocol: str, body: Body) -> list[tuple[str, str, Mapping[str, Any]]] | None:
    """(name, description, parameters) of a request's tools; None if any is not a function."""
    found = []
    for tool in body.get("tools") or ():
        if protocol == "openai_chat" and tool.get("type") == "function":
            f = tool["function"]
            found.append((f["name"], f.get("description", ""), f.get("parameters") or {}))
        elif protocol == "openai_responses" and tool.get("type") == "function":
            found.append((tool["name"], tool.get("description", ""), tool.get("parameters") or {}))
        elif protocol == "anthropic" and tool.get("type", "custom") == "custom":
            found.append((tool["name"], tool.get("description", ""), tool["input_schema"]))
        elif protocol == "gemini" and set(tool) == {"functionDeclarations"}:
            for d in tool["functionDeclarations"]:
                params = d.get("parametersJsonSchema") or d.get("parameters") or {}
                found.append((d["name"], d.get("description", ""), params))
        else:
            return None
    return found or None


def first_user_text(protocol: str, body: Body) -> str:
    """The recorded first user message, as text."""
    texts: list[str] = []
    if protocol in ("openai_chat", "anthropic"):
        for message in body.get("messages") or ():
            if message.get("role") == "user":
                texts.append(_text_of(message.get("content")))
    elif protocol == "openai_responses":
        items = body.get("input")
        if isinstance(items, str):
            return items
        texts = [_text_of(i.get("content")) for i in _input_items(body) if i.get("role") == "user"]
    else:
        for content in body.get("contents") or ():
            if content.get("role") == "user":
                texts.append("".join(p.get("text", "") for p in content.get("parts") or ()))
    return next((t for t in texts if t), "Go.")


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(
        b.get("text", "") for b in content or () if isinstance(b, Mapping) and "text" in b
    )


@dataclass(frozen=True)
class LoopCase:
    path: Path
    start: int
    stop: int  # the index of the final (text) interaction
    protocol: str

    @property
    def interactions(self) -> list[dict[str, Any]]:
        return load(self.path)[self.start : self.stop + 1]

    def steps(self) -> list[tuple[list[Call], list[Call]]]:
        """Per tool step: the calls the model made, and the results sent back for them."""
        bodies = [request_body(i) for i in self.interactions]
        return [
            (
                added(history_calls, self.protocol, before, after),
                added(history_results, self.protocol, before, after),
            )
            for before, after in itertools.pairwise(bodies)
        ]


def loop_from(path: Path, interactions: list[dict[str, Any]], start: int) -> LoopCase | None:
    """The tool loop that starts at ``start``, if the recording holds a complete one."""
    first = interactions[start]
    protocol = protocol_of(first)
    if protocol is None or function_tools(protocol, request_body(first)) is None:
        return None
    if history_results(protocol, request_body(first)):
        return None  # a continuation, not the start of a loop
    for stop in range(start, len(interactions)):
        current = interactions[stop]
        if protocol_of(current) != protocol or not ok(current):
            return None
        text, ids = reply_of(protocol, current)
        if not ids:
            return LoopCase(path, start, stop, protocol) if text and stop > start else None
        case = LoopCase(path, start, stop + 1, protocol)
        if stop + 1 >= len(interactions) or not _answers_step(case, stop - start, len(ids)):
            return None
    return None


def _answers_step(case: LoopCase, step: int, calls: int) -> bool:
    """Whether the next request sent back a result for each of the ``calls`` just made."""
    if protocol_of(case.interactions[-1]) != case.protocol:
        return False
    made, results = case.steps()[step]
    return len(made) == calls and _ids(made) == _ids(results) and len(results) == calls


def _ids(calls: list[Call]) -> list[str]:
    return sorted(c.id or c.name for c in calls)


def loop_cases() -> list[Any]:
    cases = []
    for path, interactions in recordings():
        for start in range(len(interactions)):
            case = loop_from(path, interactions, start)
            if case is not None:
                ident = f"{path.parent.name}/{path.stem}[{start}-{case.stop}]"
                cases.append(pytest.param(case, id=ident))
    return cases


LOOP_CASES = fixtures_or_skip(loop_cases())


def recorded_tools(case: LoopCase, log: list[tuple[str, Any]]) -> list[callm.Tool]:
    """The recorded tool definitions, each run by a function that logs its call."""

    def make(name: str) -> Callable[..., str]:
        def function(**arguments: Any) -> str:
            log.append((name, arguments))
            return f"{name} done"

        return function

    specs = function_tools(case.protocol, request_body(case.interactions[0])) or []
    return [callm.Tool(n, d, p, function=make(n)) for n, d, p in specs]


async def run_loop(
    mode: str, streamed: bool, options: dict[str, Any], model: str, prompt: str, **params: Any
) -> callm.Response:
    if mode == "sync":
        with callm.Client(**options) as client:
            if not streamed:
                return client.run(model, prompt, **params)
            with client.run_stream(model, prompt, **params) as s:
                list(s)
            return s.response
    async with callm.AsyncClient(**options) as ac:
        if not streamed:
            return await ac.run(model, prompt, **params)
        async with ac.run_stream(model, prompt, **params) as s2:
            [_ async for _ in s2]
        return s2.response


def _key(name: str, arguments: Any) -> str:
    return json.dumps([name, arguments], sort_keys=True)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", LOOP_CASES)
async def test_tool_loop_from_recorded_exchange(case: LoopCase | None, mode: str) -> None:
    case = need(case)
    interactions = case.interactions
    first = request_body(interactions[0])
    final_text, _ = reply_of(case.protocol, interactions[-1])
    steps = case.steps()
    log: list[tuple[str, Any]] = []
    provider = provider_of(case.path, case.protocol)
    with RecordingServer([i["response"] for i in interactions]) as server:
        r = await run_loop(
            mode,
            is_stream(interactions[0]),
            client_options(server, provider),
            f"{provider}/{model_of(interactions[0])}",
            first_user_text(case.protocol, first),
            tools=recorded_tools(case, log),
            max_steps=len(interactions),
        )
    assert len(server.received) == len(interactions)
    assert server.remaining == 0
    assert r.text == final_text
    # Each tool ran once per recorded call, with the recorded arguments (a step's calls may
    # run concurrently in the async client, hence sorted).
    expected_calls = [_key(c.name, c.arguments) for made, _ in steps for c in made]
    assert sorted(_key(n, a) for n, a in log) == sorted(expected_calls)
    # Every later request answered the calls of the step before: by the ids the recorded
    # reply gave them, or (where it gave none) by the ids callm made up for them.
    replies = [reply_of(case.protocol, i)[1] for i in interactions[:-1]]
    pairs = itertools.pairwise(server.received)
    for recorded_ids, (before, sent) in zip(replies, pairs, strict=True):
        results = added(history_results, case.protocol, before.body, sent.body)
        calls = added(history_calls, case.protocol, before.body, sent.body)
        assert len(results) == len(recorded_ids)
        assert _ids(results) == _ids(calls)
        if all(recorded_ids):
            assert sorted(c.id or "" for c in results) == sorted(i or "" for i in recorded_ids)
    assert [m.role for m in r.transcript].count("tool") == sum(len(m) for m, _ in steps)


# --- 3. prompt-cache usage ------------------------------------------------------------------


def recorded_cache_usage(protocol: str, data: Body) -> tuple[int, int]:
    """(cached input tokens, cache-write tokens) a recorded JSON reply reported."""
    if protocol == "openai_chat":
        usage = data.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        read = details.get("cached_tokens") or usage.get("prompt_cache_hit_tokens") or 0
        return read, details.get("cache_write_tokens") or 0
    if protocol == "openai_responses":
        details = (data.get("usage") or {}).get("input_tokens_details") or {}
        return details.get("cached_tokens") or 0, 0
    if protocol == "anthropic":
        usage = data.get("usage") or {}
        read = usage.get("cache_read_input_tokens") or 0
        return read, usage.get("cache_creation_input_tokens") or 0
    return (data.get("usageMetadata") or {}).get("cachedContentTokenCount") or 0, 0


def cache_cases() -> list[Any]:
    cases = []
    for path, interactions in recordings():
        for index, interaction in enumerate(interactions):
            protocol = protocol_of(interaction)
            data = response_data(interaction)
            if protocol is None or not ok(interaction) or not isinstance(data, Mapping):
                continue
            if any(recorded_cache_usage(protocol, data)):
                ident = f"{path.parent.name}/{path.stem}[{index}]"
                cases.append(pytest.param((path, index, protocol), id=ident))
    return cases


CACHE_CASES = fixtures_or_skip(cache_cases())


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("case", CACHE_CASES)
async def test_cached_tokens_from_recorded_usage(
    case: tuple[Path, int, str] | None, mode: str
) -> None:
    path, index, protocol = need(case)
    interaction = load(path)[index]
    read, write = recorded_cache_usage(protocol, response_data(interaction))
    provider = provider_of(path, protocol)
    model = f"{provider}/{model_of(interaction)}"
    with RecordingServer([interaction["response"]]) as server:
        if mode == "sync":
            with callm.Client(**client_options(server, provider)) as client:
                r = client.complete(model, "Hello again.", system="Be brief.", cache=True)
        else:
            async with callm.AsyncClient(**client_options(server, provider)) as ac:
                r = await ac.complete(model, "Hello again.", system="Be brief.", cache=True)
    assert (r.usage.cached_input_tokens, r.usage.cache_write_tokens) == (read, write)
    [sent] = server.received
    if protocol == "anthropic":  # cache=True placed a breakpoint (on the system prompt)
        assert "cache_control" in json.dumps(sent.body["system"])
