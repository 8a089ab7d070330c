"""Context windows: genai-prices' values, the user's override, the reply's reserve, unknowns."""

from __future__ import annotations

import json

import pytest

import callm
from callm.testing import FakeOpenAIServer
from helpers import point_builtins

KEY = "sk-context-window-fake-key"


@pytest.fixture
def server(fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    """Every built-in provider of the four protocols, pointed at the one fake."""
    return point_builtins(fake_openai, monkeypatch, KEY)


@pytest.mark.parametrize(
    ("model", "window"),
    [
        ("openai/gpt-4o-mini", 128_000),
        ("openai-responses/gpt-4o-mini", 128_000),
        ("anthropic/claude-sonnet-4-5", 200_000),
        ("gemini/gemini-2.5-flash", 1_048_576),
    ],
)
def test_known_models_take_their_window_from_genai_prices(
    server: FakeOpenAIServer, model: str, window: int
) -> None:
    with callm.Client() as client:
        assert client.conversation(model).context_window == window


def test_the_window_can_be_overridden(server: FakeOpenAIServer) -> None:
    with callm.Client() as client:
        assert client.conversation("openai/gpt-4o-mini", context_window=5000).context_window == 5000


async def test_an_unknown_model_is_never_trimmed(server: FakeOpenAIServer) -> None:
    async with callm.AsyncClient() as client:
        conv = client.conversation("openai/a-model-nobody-has-heard-of")
        assert conv.context_window is None
        for i in range(4):
            await conv.send(f"marker{i} " + "long text " * 2000)
    last = json.dumps(server.requests[-1].json)
    assert all(f"marker{i}" in last for i in range(4))


def test_the_reply_reserve_is_max_tokens(server: FakeOpenAIServer) -> None:
    question = "words and more words " * 120  # about 800 tokens by the local estimate
    with callm.Client() as client:
        conv = client.conversation("anthropic/claude-sonnet-4-5", context_window=1000)
        conv.send(question, max_tokens=100)  # 900 tokens left for the prompt: it fits
        with pytest.raises(callm.ContextWindowExceededError, match="600 kept for the reply"):
            conv.send(question, max_tokens=600)
        tight = client.conversation(
            "anthropic/claude-sonnet-4-5", context_window=1000, max_output_tokens=600
        )
        with pytest.raises(callm.ContextWindowExceededError):
            tight.send(question)
    assert len(server.requests) == 1


def test_a_resumed_conversation_keeps_its_window_override(server: FakeOpenAIServer) -> None:
    with callm.Client() as client:
        conv = client.conversation("openai/gpt-4o-mini", context_window=3000, strategy="summarize")
        conv.send("hello")
    with callm.Client() as client:
        again = client.conversation(id=conv.id)
        assert again.context_window == 3000 and again.strategy == "summarize"
