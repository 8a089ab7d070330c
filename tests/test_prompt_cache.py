"""cache=: Anthropic breakpoints, OpenAI's prompt_cache_key, and cached tokens in usage.

Every scenario runs on the built-in provider of each protocol, streamed or not, through the
sync and the async client, and checks the body the fake server received.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

import callm
import drive
from callm.testing import FakeOpenAIServer, Reply
from protocol_drive import KEY, MODELS, ask, point_builtins, sent

STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
MODES = pytest.mark.parametrize("mode", drive.MODES)
OPENAI = pytest.mark.parametrize("protocol", ["openai_chat", "openai_responses"])

LOOKUP = callm.Tool("lookup", "Look a word up", {"type": "object", "properties": {}})
DEFINE = callm.Tool("define", "Define a word", {"type": "object", "properties": {}})
HISTORY = [
    {"role": "system", "content": "You are a careful lexicographer."},
    {"role": "user", "content": "first question"},
    {"role": "assistant", "content": "first answer"},
    {"role": "user", "content": "second question"},
]
EPHEMERAL = {"type": "ephemeral"}


@pytest.fixture
def server(fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    """Every built-in provider of the four protocols, pointed at the one fake."""
    return point_builtins(fake_openai, monkeypatch)


def marks(body: dict[str, Any]) -> list[tuple[str, Any]]:
    """Where ``cache_control`` sits: ("tools", i) / ("system", i) / ("messages", i, j)."""
    found: list[tuple[str, Any]] = []
    for i, tool in enumerate(body.get("tools") or ()):
        if "cache_control" in tool:
            found.append(("tools", i, tool["cache_control"]))
    for i, block in enumerate(body.get("system") or ()):
        if "cache_control" in block:
            found.append(("system", i, block["cache_control"]))
    for i, message in enumerate(body["messages"]):
        for j, block in enumerate(message["content"]):
            if "cache_control" in block:
                found.append(("messages", (i, j), block["cache_control"]))
    return found


# --- Anthropic breakpoints --------------------------------------------------------------


@STREAMED
@MODES
@pytest.mark.parametrize("cache", [True, "my-key"])
async def test_anthropic_places_three_breakpoints(
    server: FakeOpenAIServer, mode: str, streamed: bool, cache: bool | str
) -> None:
    r = await ask(mode, streamed, MODELS["anthropic"], HISTORY, tools=[LOOKUP, DEFINE], cache=cache)
    assert r.text
    body = sent(server)
    # The newest user turn is messages[2]: the mark goes on the turn before it.
    assert marks(body) == [
        ("tools", 1, EPHEMERAL),
        ("system", 0, EPHEMERAL),
        ("messages", (1, 0), EPHEMERAL),
    ]
    assert body["messages"][1]["content"][0]["text"] == "first answer"
    assert "prompt_cache_key" not in body


@STREAMED
@MODES
async def test_anthropic_without_cache_marks_nothing(
    server: FakeOpenAIServer, mode: str, streamed: bool
) -> None:
    await ask(mode, streamed, MODELS["anthropic"], HISTORY, tools=[LOOKUP])
    assert marks(sent(server)) == []
    await ask(mode, streamed, MODELS["anthropic"], HISTORY, tools=[LOOKUP], cache=False)
    assert marks(sent(server)) == []


async def test_anthropic_single_prompt_marks_only_the_prefix(server: FakeOpenAIServer) -> None:
    with callm.Client() as client:
        client.complete(MODELS["anthropic"], "just one question", system="Be brief.", cache=True)
    # No conversation before the newest user turn: only the system prompt is a prefix.
    assert marks(sent(server)) == [("system", 0, EPHEMERAL)]


async def test_anthropic_tool_loop_marks_the_assistant_call(server: FakeOpenAIServer) -> None:
    call = callm.ToolCall("toolu_1", "lookup", {})
    messages = [
        callm.Message.user("look it up"),
        callm.Message.assistant("Looking.", call),
        callm.Message.tool("toolu_1", "found it"),
    ]
    with callm.Client() as client:
        client.complete(MODELS["anthropic"], messages, tools=[LOOKUP], cache=True)
    body = sent(server)
    # The tool results are the newest user turn; the assistant's tool_use block is the mark.
    assert marks(body) == [("tools", 0, EPHEMERAL), ("messages", (1, 1), EPHEMERAL)]
    assert body["messages"][1]["content"][1]["type"] == "tool_use"


async def test_anthropic_own_marks_win_within_four(server: FakeOpenAIServer) -> None:
    own = [
        callm.Message("system", (callm.Text("Rules."),), cache=True),
        callm.Message.system("More rules."),
        callm.Message("user", (callm.Text("doc one"),), cache=True),
        callm.Message.assistant("ok"),
        callm.Message("user", (callm.Text("doc two"),), cache=True),
        callm.Message.assistant("ok too"),
        callm.Message.user("question"),
    ]
    with callm.Client() as client:
        client.complete(MODELS["anthropic"], own, tools=[LOOKUP], cache=True)
    found = marks(sent(server))
    assert len(found) == 4
    # Three own marks stay; of the automatic ones only the conversation mark fits.
    assert [where for where, _, _ in found] == ["system", "messages", "messages", "messages"]
    assert [at for _, at, _ in found] == [0, (0, 0), (2, 0), (3, 0)]


async def test_anthropic_refuses_more_than_four_own_marks(server: FakeOpenAIServer) -> None:
    many = [callm.Message("user", (callm.Text(f"part {i}"),), cache=True) for i in range(5)]
    with callm.Client() as client, pytest.raises(callm.InvalidRequestError, match="at most 4"):
        client.complete(MODELS["anthropic"], many, cache=True)
    assert server.requests == []


async def test_anthropic_one_hour_ttl_on_every_mark(server: FakeOpenAIServer) -> None:
    messages = [callm.Message("system", (callm.Text("Rules."),), cache=True), *HISTORY[1:]]
    async with callm.AsyncClient() as client:
        await client.complete(MODELS["anthropic"], messages, tools=[LOOKUP], cache="1h")
    found = marks(sent(server))
    assert len(found) == 3
    assert all(control == {"type": "ephemeral", "ttl": "1h"} for _, _, control in found)


# --- OpenAI prompt_cache_key -------------------------------------------------------------


@OPENAI
@STREAMED
@MODES
async def test_openai_key_string_is_sent_as_given(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    r = await ask(mode, streamed, MODELS[protocol], HISTORY, cache="tenant-42")
    assert r.text
    assert sent(server)["prompt_cache_key"] == "tenant-42"


@OPENAI
@STREAMED
@MODES
async def test_openai_derived_key_follows_the_prefix(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    model = MODELS[protocol]
    await ask(mode, streamed, model, HISTORY, tools=[LOOKUP], cache=True)
    first = sent(server)["prompt_cache_key"]
    other_question = [*HISTORY[:3], {"role": "user", "content": "a different question"}]
    await ask(mode, streamed, model, other_question, tools=[LOOKUP], cache=True)
    assert sent(server)["prompt_cache_key"] == first  # same prefix, same routing
    other_system = [{"role": "system", "content": "You are terse."}, *HISTORY[1:]]
    await ask(mode, streamed, model, other_system, tools=[LOOKUP], cache=True)
    assert sent(server)["prompt_cache_key"] != first
    await ask(mode, streamed, model, HISTORY, cache=True)
    assert sent(server)["prompt_cache_key"] != first  # the tools are part of the prefix
    # Anthropic's TTL spellings are not keys: OpenAI derives one as for True.
    await ask(mode, streamed, model, HISTORY, tools=[LOOKUP], cache="1h")
    assert sent(server)["prompt_cache_key"] == first
    assert first.startswith("callm-") and len(first) <= 64


@OPENAI
@STREAMED
@MODES
async def test_openai_without_cache_sends_no_key(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    await ask(mode, streamed, MODELS[protocol], HISTORY)
    assert "prompt_cache_key" not in sent(server)


@pytest.mark.parametrize("provider", ["groq", "mistral", "ollama", "fake"])
async def test_compatible_servers_get_no_key(server: FakeOpenAIServer, provider: str) -> None:
    providers = {provider: {"base_url": server.base_url, "api_key": KEY}}
    with callm.Client(providers=providers) as client:
        client.complete(f"{provider}/some-model", "hi", cache="tenant-42")
        client.complete(f"{provider}/some-model", "hi", cache=True)
    assert all("prompt_cache_key" not in r.json for r in server.requests)


async def test_a_configured_provider_can_opt_in(server: FakeOpenAIServer) -> None:
    providers = {
        "mine": {"base_url": server.base_url, "api_key": KEY, "quirks": ["prompt_cache_key"]}
    }
    with callm.Client(providers=providers) as client:
        client.complete("mine/some-model", "hi", cache="k")
    assert sent(server)["prompt_cache_key"] == "k"


# --- Gemini: implicit caching, nothing to send --------------------------------------------


@STREAMED
@MODES
@pytest.mark.parametrize("cache", [True, "my-key", "1h"])
async def test_gemini_sends_nothing_for_cache(
    server: FakeOpenAIServer, mode: str, streamed: bool, cache: bool | str
) -> None:
    await ask(mode, streamed, MODELS["gemini"], HISTORY, tools=[LOOKUP])
    plain = sent(server)
    await ask(mode, streamed, MODELS["gemini"], HISTORY, tools=[LOOKUP], cache=cache)
    assert sent(server) == plain
    assert "cache" not in json.dumps(plain).lower()


# --- cached tokens in usage ---------------------------------------------------------------

# Each protocol's own usage shape, with 30 prompt tokens read from the cache (and, where the
# protocol reports it, 12 written to it).
USAGE = {
    "openai_chat": {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "total_tokens": 105,
        "prompt_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 12},
    },
    "openai_responses": {
        "input_tokens": 100,
        "input_tokens_details": {"cached_tokens": 30, "cache_write_tokens": 12},
        "output_tokens": 5,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 105,
    },
    "anthropic": {
        "input_tokens": 58,
        "cache_read_input_tokens": 30,
        "cache_creation_input_tokens": 12,
        "output_tokens": 5,
    },
    # The Gemini fake turns OpenAI's shape into usageMetadata.cachedContentTokenCount.
    "gemini": {
        "prompt_tokens": 100,
        "completion_tokens": 5,
        "prompt_tokens_details": {"cached_tokens": 30},
    },
}


@pytest.mark.parametrize("protocol", list(MODELS))
@STREAMED
@MODES
async def test_cached_tokens_are_reported(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    server.queue(Reply("Cached answer.", usage=USAGE[protocol]))
    r = await ask(mode, streamed, MODELS[protocol], HISTORY, cache=True)
    assert r.text == "Cached answer."
    assert r.usage.input_tokens == 100  # the whole prompt, cached part included
    assert r.usage.output_tokens == 5
    assert r.usage.cached_input_tokens == 30
    assert r.usage.cache_write_tokens == (0 if protocol == "gemini" else 12)


@pytest.mark.parametrize("protocol", list(MODELS))
async def test_no_cache_hit_reports_zero(server: FakeOpenAIServer, protocol: str) -> None:
    with callm.Client() as client:
        r = client.complete(MODELS[protocol], "hello")
    assert r.usage.input_tokens > 0
    assert (r.usage.cached_input_tokens, r.usage.cache_write_tokens) == (0, 0)
