"""``POST /v1/embeddings`` on the gateway, with the official openai SDK as the caller."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import openai
import pytest
from gateway_process import UPSTREAM_KEY, GatewayProcess

from callm.testing import FakeOpenAIServer, Fault
from callm.testing.local_embedding import hash_embedding

_clients: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def sdk(gateway: GatewayProcess, key: str) -> openai.OpenAI:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    _clients.append(client)
    return client


def key_id_of(gateway: GatewayProcess, key: str) -> str:
    _, listing = gateway.admin("GET", "/admin/keys")
    return str(next(k["id"] for k in listing["data"] if key.startswith(k["prefix"])))


def upstream_embeddings(upstream: FakeOpenAIServer) -> list[Any]:
    return [r for r in upstream.requests if "mbed" in r.path]


@pytest.mark.parametrize(
    "model",
    ["openai/text-embedding-3-small", "text-embedding-3-small", "gemini/gemini-embedding-001"],
)
def test_the_sdk_gets_vectors_from_any_upstream(
    gateway: GatewayProcess, upstream: FakeOpenAIServer, model: str
) -> None:
    texts = ["first text", "second text", "third"]
    reply = sdk(gateway, gateway.new_key()).embeddings.create(model=model, input=texts)
    assert [d.index for d in reply.data] == [0, 1, 2]
    for text, item in zip(texts, reply.data, strict=True):
        assert item.embedding == pytest.approx(hash_embedding(text), abs=1e-6)
    assert reply.model == model
    assert reply.usage.prompt_tokens > 0
    (sent,) = upstream_embeddings(upstream)
    assert UPSTREAM_KEY in json.dumps(sent.headers)  # the gateway's key, never the caller's


def test_floats_when_the_caller_asks_for_them(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    reply = sdk(gateway, gateway.new_key()).embeddings.create(
        model="openai/text-embedding-3-small",
        input="one input",
        dimensions=8,
        encoding_format="float",
    )
    assert reply.data[0].embedding == pytest.approx(hash_embedding("one input", 8), abs=1e-6)
    assert upstream_embeddings(upstream)[0].json["dimensions"] == 8


def test_a_long_list_is_split_upstream_and_answered_in_order(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    texts = [f"text {i}" for i in range(250)]
    reply = sdk(gateway, gateway.new_key()).embeddings.create(
        model="gemini/gemini-embedding-001", input=texts, dimensions=4
    )
    assert len(reply.data) == 250
    assert reply.data[249].embedding == pytest.approx(hash_embedding(texts[249], 4), abs=1e-6)
    assert sorted(len(r.json["requests"]) for r in upstream_embeddings(upstream)) == [50, 100, 100]


def test_usage_and_cost_are_accounted_to_the_key(gateway: GatewayProcess) -> None:
    key = gateway.new_key()
    client = sdk(gateway, key)
    client.embeddings.create(model="openai/text-embedding-3-small", input=["a b c", "d e"])
    client.embeddings.create(model="openai/text-embedding-3-small", input="f")
    key_id = key_id_of(gateway, key)
    _, shown = gateway.admin("GET", f"/admin/keys/{key_id}")
    assert shown["calls"] == 2
    assert Decimal(shown["spend_usd"]) == Decimal("0.02") * 6 / 1_000_000
    _, usage = gateway.admin("GET", "/admin/usage")
    (mine,) = [row for row in usage["data"] if row["key_id"] == key_id]
    assert (mine["model"], mine["input_tokens"]) == ("openai/text-embedding-3-small", 6)


def test_a_key_limited_to_other_models_is_refused(gateway: GatewayProcess) -> None:
    key = gateway.new_key(models=["openai/gpt-*"])
    with pytest.raises(openai.PermissionDeniedError):
        sdk(gateway, key).embeddings.create(model="openai/text-embedding-3-small", input="x")


def test_no_key_and_a_wrong_key_are_401(gateway: GatewayProcess) -> None:
    with pytest.raises(openai.AuthenticationError):
        sdk(gateway, "sk-not-a-gateway-key").embeddings.create(
            model="openai/text-embedding-3-small", input="x"
        )


def test_a_spent_budget_is_a_429(gateway: GatewayProcess) -> None:
    key = gateway.new_key(budget_usd="0.0000001")
    client = sdk(gateway, key)
    with pytest.raises(openai.RateLimitError) as caught:
        client.embeddings.create(model="openai/text-embedding-3-large", input=["many words"] * 50)
    assert caught.value.code == "budget_exceeded"


def test_upstream_errors_reach_the_caller_typed(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    client = sdk(gateway, gateway.new_key())
    upstream.queue(Fault.status(400, "that input is too long"))
    with pytest.raises(openai.BadRequestError, match="that input is too long"):
        client.embeddings.create(model="openai/text-embedding-3-small", input="x")
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model="openai/text-embedding-3-small", input=[[1, 2, 3]])
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="nosuch/model", input="x")
    with pytest.raises(openai.BadRequestError, match="no embeddings endpoint"):
        client.embeddings.create(model="anthropic/claude-sonnet-4-5", input="x")


def test_the_async_sdk_concurrently(gateway: GatewayProcess) -> None:
    key = gateway.new_key()

    async def burst() -> list[list[float]]:
        client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
        try:
            replies = await asyncio.gather(
                *(
                    client.embeddings.create(model="fast-embed", input=f"text {i}")
                    for i in range(20)
                )
            )
        finally:
            await client.close()
        return [r.data[0].embedding for r in replies]

    vectors = asyncio.run(burst())
    assert vectors[7] == pytest.approx(hash_embedding("text 7"), abs=1e-6)


@pytest.fixture(scope="module")
def small_batch_gateway(
    upstream: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """A gateway whose OpenAI upstream takes two inputs a request, so six make three."""
    config = "[providers.openai.quirks]\nembed_batch_size = 2\n"
    home: Path = tmp_path_factory.mktemp("small-batch-gateway")
    with GatewayProcess(upstream, home, config=config) as process:
        yield process


def test_a_failed_piece_still_charges_the_key_for_the_pieces_that_succeeded(
    small_batch_gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    gateway = small_batch_gateway
    key = gateway.new_key(budget_usd="1")
    upstream.queue(Fault.status(400, "one piece refused"))  # whichever piece arrives first
    texts = ["two words"] * 6  # three requests of two inputs, 4 tokens each
    with pytest.raises(openai.BadRequestError, match="one piece refused"):
        sdk(gateway, key).embeddings.create(model="openai/text-embedding-3-small", input=texts)
    answered = [r for r in upstream_embeddings(upstream) if r.json["input"]]
    assert len(answered) == 3  # every piece was sent; one was refused
    key_id = key_id_of(gateway, key)
    _, shown = gateway.admin("GET", f"/admin/keys/{key_id}")
    assert Decimal(shown["spend_usd"]) == Decimal("0.02") * 8 / 1_000_000
    _, usage = gateway.admin("GET", "/admin/usage")
    (mine,) = [row for row in usage["data"] if row["key_id"] == key_id]
    assert mine["input_tokens"] == 8
