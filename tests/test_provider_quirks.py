"""OpenAI-compatible providers' quirks, through the public API, against recorded-style
replies served over loopback: reasoning sent back where the provider needs it (DeepSeek's
``reasoning_content``, OpenRouter's ``reasoning_details`` verbatim) and nowhere else,
reasoning read from ``reasoning_details`` alone (Snowflake Cortex), ``url_citation``
annotations kept, ``cache_control`` marks for OpenRouter, documents by URL, and the
``max_tokens`` field of a provider entry of your own.

The replies are shaped after real traffic of each provider (ids, fields and order as they
send them); each test checks what a user sees and what went on the wire.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import callm
from drive import MODES
from helpers import FAKE_KEY
from recording_server import Recorded, RecordingServer

JSON = (("content-type", "application/json"),)
SSE = (("content-type", "text/event-stream"),)
STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["whole", "streamed"])


def get_weather(city: str) -> str:
    """The weather of a city."""
    return f"Sunny in {city}"


# --- recorded-style replies ---------------------------------------------------------------


def completion(message: dict[str, Any], finish: str, *, model: str, **extra: Any) -> Recorded:
    body = {
        "id": "chatcmpl-5f0e",
        "object": "chat.completion",
        "created": 1_764_000_000,
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": finish, **extra}],
        "usage": {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32},
    }
    return Recorded(200, JSON, json.dumps(body).encode())


def streamed(message: dict[str, Any], finish: str, *, model: str) -> Recorded:
    """The same message as a stream: role chunk, one chunk per field, finish, usage, [DONE]."""
    head = {"id": "gen-1764000000-aa", "object": "chat.completion.chunk", "model": model}
    chunks = [{"role": "assistant", "content": ""}]
    for key, value in message.items():
        if key == "role":
            continue
        if key == "reasoning" and "reasoning_details" in message:
            continue  # OpenRouter sends it beside each details fragment (below)
        if key == "reasoning_details":  # one entry per chunk, text in two halves
            for entry in value:
                chunks += _detail_fragments(entry, "reasoning" in message)
        elif key == "tool_calls":
            chunks.append({key: [{"index": i, **call} for i, call in enumerate(value)]})
        else:
            chunks.append({key: value})
    frames = [
        {**head, "choices": [{"index": 0, "delta": c, "finish_reason": None}]} for c in chunks
    ]
    frames.append({**head, "choices": [{"index": 0, "delta": {}, "finish_reason": finish}]})
    usage = {"prompt_tokens": 20, "completion_tokens": 12, "total_tokens": 32}
    frames.append({**head, "choices": [], "usage": usage})
    body = "".join(f"data: {json.dumps(f)}\n\n" for f in frames) + "data: [DONE]\n\n"
    return Recorded(200, SSE, (": OPENROUTER PROCESSING\n\n" + body).encode())


def _detail_fragments(entry: dict[str, Any], plain_too: bool) -> list[dict[str, Any]]:
    """A details entry as OpenRouter streams it: text in pieces (each also as ``reasoning``
    when the provider sends that too), the signature with the last piece."""
    field = "text" if entry["type"] == "reasoning.text" else "summary"
    text = entry.get(field)
    if not isinstance(text, str):
        return [{"reasoning": None, "reasoning_details": [entry]}]
    half = len(text) // 2
    first = {k: v for k, v in entry.items() if k != "signature"} | {field: text[:half]}
    rest = {"type": entry["type"], "index": entry["index"], field: text[half:]}
    if "signature" in entry:
        rest["signature"] = entry["signature"]
    pieces = [({field: text[:half]}, first), ({field: text[half:]}, rest)]
    return [
        {"reasoning": piece[field], "reasoning_details": [fragment]}
        if plain_too
        else {"reasoning_details": [fragment]}
        for piece, fragment in pieces
    ]


def reply(streaming: bool, message: dict[str, Any], finish: str, model: str) -> Recorded:
    return (streamed if streaming else completion)(message, finish, model=model)


def tool_call(call_id: str, city: str) -> dict[str, Any]:
    arguments = json.dumps({"city": city})
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": "get_weather", "arguments": arguments},
    }


async def run(mode: str, streamed: bool, model: str, **params: Any) -> callm.Response:
    """``run()`` (or ``run_stream()``) with the weather tool, sync or async."""
    if mode == "sync":
        with callm.Client(max_retries=0) as client:
            if not streamed:
                return client.run(model, "Weather in Paris?", tools=[get_weather], **params)
            with client.run_stream(model, "Weather in Paris?", tools=[get_weather], **params) as s:
                list(s)
                return s.response
    async with callm.AsyncClient(max_retries=0) as ac:
        if not streamed:
            return await ac.run(model, "Weather in Paris?", tools=[get_weather], **params)
        async with ac.run_stream(model, "Weather in Paris?", tools=[get_weather], **params) as s:
            events = [ev async for ev in s]
            assert events
            return await s.get_response()


async def ask(mode: str, streamed: bool, model: str, messages: Any, **params: Any) -> Any:
    """One call; the Response and, streamed, the reasoning events that came with it."""
    if mode == "sync":
        with callm.Client(max_retries=0, **params.pop("client", {})) as client:
            if not streamed:
                return client.complete(model, messages, **params), None
            with client.stream(model, messages, **params) as s:
                shown = [ev.text for ev in s if ev.type == "reasoning"]
                return s.response, shown
    async with callm.AsyncClient(max_retries=0, **params.pop("client", {})) as ac:
        if not streamed:
            return await ac.complete(model, messages, **params), None
        async with ac.stream(model, messages, **params) as s:
            shown = [ev.text async for ev in s if ev.type == "reasoning"]
        return s.response, shown


@pytest.fixture
def point(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Point a built-in provider (``DEEPSEEK`` …) at a recording server."""

    def to(name: str, server: RecordingServer, path: str = "/v1") -> None:
        monkeypatch.setenv(f"{name}_BASE_URL", server.url + path)
        monkeypatch.setenv(f"{name}_API_KEY", FAKE_KEY)

    return to


def sent(server: RecordingServer, index: int) -> dict[str, Any]:
    body = server.received[index].body
    assert isinstance(body, dict)
    return body


# --- DeepSeek: reasoning_content on tool-calling turns -------------------------------------

DEEPSEEK_THINKING = "The user wants the weather in Paris. I should call get_weather."


@STREAMED
@pytest.mark.parametrize("mode", MODES)
async def test_deepseek_gets_its_reasoning_back_on_tool_calling_turns(
    point: Any, mode: str, streamed: bool
) -> None:
    first = {
        "role": "assistant",
        "content": "",
        "reasoning_content": DEEPSEEK_THINKING,
        "tool_calls": [tool_call("call_00_AbC", "Paris")],
    }
    final = {"role": "assistant", "content": "It is sunny in Paris.", "reasoning_content": "Done."}
    replies = [
        reply(streamed, first, "tool_calls", "deepseek-chat"),
        reply(streamed, final, "stop", "deepseek-chat"),
    ]
    with RecordingServer(replies) as server:
        point("DEEPSEEK", server, "")
        response = await run(mode, streamed, "deepseek/deepseek-chat")
    assert response.text == "It is sunny in Paris."
    assert response.reasoning == "Done."
    assistant = sent(server, 1)["messages"][1]
    assert assistant["role"] == "assistant"
    assert assistant["reasoning_content"] == DEEPSEEK_THINKING  # else: HTTP 400
    assert assistant["tool_calls"][0]["id"] == "call_00_AbC"
    assert "reasoning_content" not in sent(server, 0)["messages"][0]


@pytest.mark.parametrize("mode", MODES)
async def test_deepseek_turns_without_tool_calls_send_no_reasoning(point: Any, mode: str) -> None:
    history = [
        callm.Message.user("Which is larger, 9.11 or 9.8?"),
        callm.Message.assistant(
            callm.Reasoning("Compare decimals.", protocol="openai_chat"), "9.8"
        ),
        callm.Message.user("And 9.9?"),
    ]
    final = {"role": "assistant", "content": "9.9", "reasoning_content": "Easy."}
    with RecordingServer([completion(final, "stop", model="deepseek-chat")]) as server:
        point("DEEPSEEK", server, "")
        response, _ = await ask(mode, False, "deepseek/deepseek-chat", history)
    assert response.text == "9.9"
    assert "reasoning_content" not in sent(server, 0)["messages"][1]


@pytest.mark.parametrize("provider", ["groq", "ollama", "together", "mistral"])
async def test_providers_without_the_quirk_get_no_reasoning_back(point: Any, provider: str) -> None:
    history = [
        callm.Message.user("Weather?"),
        callm.Message.assistant(
            callm.Reasoning("Think.", protocol="openai_chat"),
            callm.ToolCall("abcdefghi", "get_weather", {"city": "Paris"}),
        ),
        callm.Message.tool("abcdefghi", "Sunny"),
    ]
    final = {"role": "assistant", "content": "Sunny."}
    with RecordingServer([completion(final, "stop", model="m")]) as server:
        point(provider.upper(), server)
        await ask("sync", False, f"{provider}/m", history)
    assistant = sent(server, 0)["messages"][1]
    assert "reasoning_content" not in assistant and "reasoning_details" not in assistant


# --- OpenRouter: reasoning_details decoded and sent back verbatim --------------------------

ANTHROPIC_DETAILS = [
    {
        "type": "reasoning.text",
        "text": "I need the weather for Paris, so I will call the tool.",
        "signature": "EqQBCkgIBxABGAIqQKf3zP0signature",
        "format": "anthropic-claude-v1",
        "index": 0,
    }
]
GEMINI_DETAILS = [
    {
        "type": "reasoning.text",
        "text": "**Calling the weather tool**",
        "format": "google-gemini-v1",
        "index": 0,
    },
    {
        "type": "reasoning.encrypted",
        "data": "CiQB0e2Kb7thought-signature-bytes==",
        "id": "tool_get_weather_Qx1",
        "format": "google-gemini-v1",
        "index": 1,
    },
]


@pytest.mark.parametrize(
    ("model", "details"),
    [("anthropic/claude-sonnet-4.5", ANTHROPIC_DETAILS), ("google/gemini-3-pro", GEMINI_DETAILS)],
    ids=["anthropic", "gemini-3"],
)
@STREAMED
@pytest.mark.parametrize("mode", MODES)
async def test_openrouter_reasoning_details_go_back_verbatim(
    point: Any, mode: str, streamed: bool, model: str, details: list[dict[str, Any]]
) -> None:
    text = "".join(d.get("text", "") for d in details)
    call_id = details[-1].get("id") or "toolu_01Xyz"
    first = {
        "role": "assistant",
        "content": "",
        "reasoning": text,
        "reasoning_details": details,
        "tool_calls": [tool_call(call_id, "Paris")],
    }
    final = {"role": "assistant", "content": "Sunny in Paris."}
    replies = [reply(streamed, first, "tool_calls", model), reply(streamed, final, "stop", model)]
    with RecordingServer(replies) as server:
        point("OPENROUTER", server, "/api/v1")
        response = await run(mode, streamed, f"openrouter/{model}")
    assert response.text == "Sunny in Paris."
    turn = response.transcript[1]
    reasoning = [p for p in turn.content if isinstance(p, callm.Reasoning)]
    assert "".join(p.text for p in reasoning) == text  # shown once, not twice
    assert [p.detail for p in reasoning] == details
    assert any(p.signature or p.data for p in reasoning)
    assistant = sent(server, 1)["messages"][1]
    assert assistant["reasoning_details"] == details  # verbatim: format, index, signature
    assert "reasoning_content" not in assistant


@pytest.mark.parametrize("mode", MODES)
async def test_openrouter_reasoning_streams_once(point: Any, mode: str) -> None:
    text = ANTHROPIC_DETAILS[0]["text"]
    message = {
        "role": "assistant",
        "content": "Hi.",
        "reasoning": text,
        "reasoning_details": ANTHROPIC_DETAILS,
    }
    with RecordingServer([streamed(message, "stop", model="m")]) as server:
        point("OPENROUTER", server, "/api/v1")
        response, shown = await ask(mode, True, "openrouter/anthropic/claude-sonnet-4.5", "Hi")
    assert "".join(shown) == text  # the plain reasoning beside the details is not shown twice
    assert response.reasoning == text
    assert response.content[0] == callm.Reasoning(
        text,
        signature=ANTHROPIC_DETAILS[0]["signature"],
        protocol="openai_chat",
        detail=ANTHROPIC_DETAILS[0],
    )


@STREAMED
@pytest.mark.parametrize("mode", MODES)
async def test_reasoning_only_in_details_still_surfaces(mode: str, streamed: bool) -> None:
    # Snowflake Cortex sends reasoning in reasoning_details alone, no reasoning field.
    details = [{"type": "reasoning.text", "text": "Paris is in France.", "index": 0}]
    message = {"role": "assistant", "content": "France.", "reasoning_details": details}
    recorded = reply(streamed, message, "stop", "claude-sonnet-4-5")
    with RecordingServer([recorded]) as server:
        providers = {"cortex": {"base_url": server.url + "/api/v2/cortex/v1", "api_key": FAKE_KEY}}
        response, shown = await ask(
            mode,
            streamed,
            "cortex/claude-sonnet-4-5",
            "Where is Paris?",
            client={"providers": providers},
        )
    assert response.text == "France."
    assert response.reasoning == "Paris is in France."
    if streamed:
        assert "".join(shown) == "Paris is in France."
    assert server.received[0].path == "/api/v2/cortex/v1/chat/completions"


# --- annotations -----------------------------------------------------------------------------

CITATION = {
    "type": "url_citation",
    "url_citation": {
        "url": "https://www.example.org/paris-weather",
        "title": "Paris weather",
        "start_index": 0,
        "end_index": 5,
        "content": "Sunny all week.",
    },
}


@STREAMED
@pytest.mark.parametrize("mode", MODES)
async def test_url_citations_are_kept_and_the_history_goes_back(
    point: Any, mode: str, streamed: bool
) -> None:
    message = {"role": "assistant", "content": "Sunny.", "annotations": [CITATION]}
    replies = [
        reply(streamed, message, "stop", "openai/gpt-4o:online"),
        completion({"role": "assistant", "content": "Still sunny."}, "stop", model="m"),
    ]
    with RecordingServer(replies) as server:
        point("OPENROUTER", server, "/api/v1")
        response, _ = await ask(mode, streamed, "openrouter/openai/gpt-4o:online", "Weather?")
        raw = [p for p in response.content if isinstance(p, callm.RawPart)]
        assert [(p.protocol, p.type) for p in raw] == [("openai_chat", "annotations")]
        assert raw[0].data == {"annotations": [CITATION]}
        history = [
            callm.Message.user("Weather?"),
            response.to_message(),
            callm.Message.user("And tomorrow?"),
        ]
        follow_up, _ = await ask(mode, False, "openrouter/openai/gpt-4o:online", history)
    assert follow_up.text == "Still sunny."
    assert sent(server, 1)["messages"][1] == {"role": "assistant", "content": "Sunny."}


# --- cache_control for compatible providers that honour it -----------------------------------


def cache_marks(body: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    marks = []
    for message in body["messages"]:
        for part in message["content"] if isinstance(message["content"], list) else ():
            if "cache_control" in part:
                marks.append((message["role"], part["cache_control"]))
    return marks


@pytest.mark.parametrize("mode", MODES)
async def test_openrouter_takes_cache_control_marks(point: Any, mode: str) -> None:
    history = [
        callm.Message.system("You are a meteorologist. " * 50),
        callm.Message.user("Weather in Paris?"),
        callm.Message.assistant("Sunny."),
        callm.Message("user", (callm.Text("Here is a long report."),), cache=True),
        callm.Message.user("And tomorrow?"),
    ]
    final = completion({"role": "assistant", "content": "Rain."}, "stop", model="m")
    with RecordingServer([final, final]) as server:
        point("OPENROUTER", server, "/api/v1")
        await ask(mode, False, "openrouter/anthropic/claude-sonnet-4.5", history, cache=True)
        await ask(mode, False, "openrouter/anthropic/claude-sonnet-4.5", history, cache="1h")
    # The caller's own mark, which is also the last turn before the newest user message,
    # and the system prompt.
    ephemeral = {"type": "ephemeral"}
    assert cache_marks(sent(server, 0)) == [("system", ephemeral), ("user", ephemeral)]
    report = sent(server, 0)["messages"][3]["content"]
    assert report == [
        {"type": "text", "text": "Here is a long report.", "cache_control": ephemeral}
    ]
    assert {json.dumps(c) for _, c in cache_marks(sent(server, 1))} == {
        json.dumps({"type": "ephemeral", "ttl": "1h"})
    }


async def test_servers_without_the_quirk_get_no_cache_control(point: Any) -> None:
    final = completion({"role": "assistant", "content": "Rain."}, "stop", model="m")
    with RecordingServer([final]) as server:
        point("GROQ", server)
        history = [
            callm.Message.system("Be brief."),
            callm.Message("user", (callm.Text("Hi"),), cache=True),
        ]
        await ask("sync", False, "groq/m", history, cache=True)
    assert cache_marks(sent(server, 0)) == []


# --- documents by URL ------------------------------------------------------------------------

PDF_URL = "https://example.org/reports/q3.pdf"


@pytest.mark.parametrize("mode", MODES)
async def test_a_document_by_url_goes_as_a_file_part_to_openrouter(point: Any, mode: str) -> None:
    final = completion({"role": "assistant", "content": "A report."}, "stop", model="m")
    with RecordingServer([final]) as server:
        point("OPENROUTER", server, "/api/v1")
        document = callm.Document(PDF_URL, "application/pdf")
        await ask(
            mode, False, "openrouter/openai/gpt-4o", [callm.Message.user("Summarise", document)]
        )
    part = sent(server, 0)["messages"][0]["content"][1]
    assert part == {"type": "file", "file": {"filename": "q3.pdf", "file_data": PDF_URL}}


@pytest.mark.parametrize("provider", ["openai", "groq", "deepseek"])
def test_a_document_by_url_is_refused_clearly_elsewhere(point: Any, provider: str) -> None:
    with RecordingServer([]) as server:
        point(provider.upper(), server)
        client = callm.Client(max_retries=0)
        message = callm.Message.user("Summarise", callm.Document(PDF_URL, "application/pdf"))
        with pytest.raises(callm.InvalidRequestError, match="not by URL"):
            client.complete(f"{provider}/m", [message])
    assert server.received == []  # refused before anything was sent


# --- max_tokens for a provider entry of your own ---------------------------------------------


@pytest.mark.parametrize(
    ("entry", "field"),
    [
        ({}, "max_tokens"),
        ({"quirks": {"max_tokens_field": "max_completion_tokens"}}, "max_completion_tokens"),
        ({"quirks": ["legacy_max_tokens"]}, "max_tokens"),
        (
            {"quirks": callm.Quirks(max_tokens_field="max_completion_tokens")},
            "max_completion_tokens",
        ),
    ],
)
def test_an_entry_of_your_own_sends_max_tokens_unless_it_says_otherwise(
    entry: dict[str, Any], field: str
) -> None:
    final = completion({"role": "assistant", "content": "ok"}, "stop", model="m")
    with RecordingServer([final]) as server:
        providers = {"mine": {"base_url": server.url + "/v1", "api_key": FAKE_KEY, **entry}}
        with callm.Client(providers=providers, max_retries=0) as client:
            client.complete("mine/m", "hi", max_tokens=42)
    body = sent(server, 0)
    assert body[field] == 42
    other = {"max_tokens", "max_completion_tokens"} - {field}
    assert not other & set(body)


@pytest.mark.parametrize(
    ("provider", "field"),
    [("openai", "max_completion_tokens"), ("openrouter", "max_tokens"), ("deepseek", "max_tokens")],
)
def test_built_in_entries_keep_their_field(point: Any, provider: str, field: str) -> None:
    final = completion({"role": "assistant", "content": "ok"}, "stop", model="m")
    with RecordingServer([final]) as server:
        point(provider.upper(), server)
        with callm.Client(max_retries=0) as client:
            client.complete(f"{provider}/m", "hi", max_tokens=7)
    assert sent(server, 0)[field] == 7


@pytest.mark.parametrize(
    ("quirks", "says"),
    [
        ({"max_token_field": "max_tokens"}, "unknown quirk"),
        ({"reasoning_back": "always"}, "reasoning_back"),
        ({"cache_control": "yes"}, "true or false"),
        (["legacy_tokens"], "unknown quirk flag"),
    ],
)
def test_a_mistaken_quirk_is_a_configuration_error(quirks: Any, says: str) -> None:
    providers = {"mine": {"base_url": "http://127.0.0.1:9/v1", "quirks": quirks}}
    with pytest.raises(callm.ConfigurationError, match=says) as info:
        callm.Client(providers=providers).complete("mine/m", "hi")
    assert "mine" in str(info.value)


def test_quirks_from_the_config_file(isolated_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    first = {
        "role": "assistant",
        "content": "",
        "reasoning_content": "Call the tool.",
        "tool_calls": [tool_call("call_1", "Paris")],
    }
    final = {"role": "assistant", "content": "Sunny."}
    replies = [completion(first, "tool_calls", model="m"), completion(final, "stop", model="m")]
    with RecordingServer(replies) as server:
        isolated_env.mkdir(parents=True, exist_ok=True)
        (isolated_env / "config.toml").write_text(
            "[providers.thinker]\n"
            f'base_url = "{server.url}/v1"\n'
            'api_key_env = "THINKER_KEY"\n'
            'quirks = { reasoning_back = "reasoning_content", '
            'max_tokens_field = "max_completion_tokens" }\n'
        )
        monkeypatch.setenv("THINKER_KEY", FAKE_KEY)
        with callm.Client(max_retries=0) as client:
            response = client.run("thinker/m", "Weather?", tools=[get_weather], max_tokens=9)
    assert response.text == "Sunny."
    assert sent(server, 1)["messages"][1]["reasoning_content"] == "Call the tool."
    assert sent(server, 1)["max_completion_tokens"] == 9
