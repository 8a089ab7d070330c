"""Histories cross protocols: a tool call made through one is answered through another."""

from __future__ import annotations

import pytest

import callm
import drive
from callm.testing import FakeOpenAIServer
from test_parity import MODELS, WEATHER, ask, server

__all__ = ["server"]  # the fixture, shared with the parity matrix

PAIRS = [(a, b) for a in MODELS for b in MODELS if a != b]
# The wire protocol of each entry of the matrix: Vertex AI's models speak Gemini's and
# Anthropic's.
PROTOCOL = {name: name.removeprefix("vertex_") for name in MODELS}


@pytest.mark.parametrize("mode", drive.MODES)
@pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
@pytest.mark.parametrize(("first", "second"), PAIRS)
async def test_tool_history_crosses_protocols(
    server: FakeOpenAIServer, mode: str, streamed: bool, first: str, second: str
) -> None:
    messages: list[callm.Message] = [callm.Message.user("Use get_weather for Oslo")]
    asked = await ask(mode, streamed, first, messages, tools=[WEATHER])
    (call,) = asked.tool_calls
    messages += [asked.to_message(), callm.Message.tool(call.id, "4C and windy")]
    answered = await ask(mode, streamed, second, messages, tools=[WEATHER])
    assert answered.text == "[offline] Tool get_weather returned: 4C and windy"
    assert call.id in str(server.requests[-1].json)  # the result still names its call


@pytest.mark.parametrize("source", sorted(set(PROTOCOL.values())))
@pytest.mark.parametrize("target", list(MODELS))
def test_reasoning_signatures_go_back_only_to_their_protocol(
    server: FakeOpenAIServer, source: str, target: str
) -> None:
    thought = callm.Reasoning("let me think", signature="SIG-123", id="rs_9", protocol=source)
    history = [
        callm.Message.user("hi"),
        callm.Message.assistant(thought, "hello"),
        callm.Message.user("again"),
    ]
    body = callm.Client().http_request(MODELS[target], history).body or b""
    carried = b"SIG-123" in body
    # Chat Completions has no slot for reasoning at all.
    assert carried == (source == PROTOCOL[target] != "openai_chat")
