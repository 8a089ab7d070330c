"""callm.count_tokens: exact through a provider's endpoint, otherwise a documented estimate."""

from __future__ import annotations

import pytest

import callm
from callm.testing import FakeOpenAIServer
from helpers import FAKE_KEY, fake_provider


def test_estimate_where_no_endpoint_exists(fake_openai: FakeOpenAIServer) -> None:
    client = callm.Client(providers=fake_provider(fake_openai.base_url))
    short = client.count_tokens("fake/m", "hi")
    long = client.count_tokens("fake/m", "hello " * 300, tools=[callm.Tool("lookup")])
    assert not short.exact and "estimate" in short.method
    assert 0 < short.tokens < long.tokens
    # Conservative: at least one token per four characters of text.
    assert long.tokens >= len("hello " * 300) / 4
    assert fake_openai.requests == []  # estimated locally, nothing sent


def test_images_are_charged(fake_openai: FakeOpenAIServer) -> None:
    client = callm.Client(providers=fake_provider(fake_openai.base_url))
    image = callm.Image.from_bytes(b"\x89PNG" + b"\0" * 10)
    plain = client.count_tokens("fake/m", "what is this")
    with_image = client.count_tokens("fake/m", [callm.Message.user("what is this", image)])
    assert with_image.tokens >= plain.tokens + 1000


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_anthropic_counts_exactly(
    mode: str, fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", fake_openai.url)
    monkeypatch.setenv("ANTHROPIC_API_KEY", FAKE_KEY)
    messages = [callm.Message.system("Be brief."), callm.Message.user("one two three four")]
    if mode == "sync":
        count = callm.Client().count_tokens("anthropic/claude-sonnet-4-5", messages)
    else:
        async with callm.AsyncClient() as ac:
            count = await ac.count_tokens("anthropic/claude-sonnet-4-5", messages)
    assert count.exact and count.method == "anthropic token counting endpoint"
    assert count.tokens > 0
    (seen,) = fake_openai.requests
    assert seen.path == "/v1/messages/count_tokens"
    assert seen.json["messages"][0]["content"][0]["text"] == "one two three four"


def test_count_endpoint_errors_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    with FakeOpenAIServer(api_key=FAKE_KEY) as server:
        monkeypatch.setenv("ANTHROPIC_BASE_URL", server.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-wrong-fake")
        monkeypatch.setattr(callm, "_default_client", None)
        with pytest.raises(callm.AuthenticationError, match="ANTHROPIC_API_KEY"):
            callm.count_tokens("anthropic/claude-sonnet-4-5", "hi")
        assert server.requests[0].path == "/v1/messages/count_tokens"
    monkeypatch.setattr(callm, "_default_client", None)
