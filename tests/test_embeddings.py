"""Embeddings through the public API: ``Client.embed``, ``AsyncClient.embed``, ``callm.embed``.

Every call goes over loopback HTTP to the fake server, which answers OpenAI's
``/embeddings`` and Gemini's ``:batchEmbedContents`` with the offline hashing model, refuses
what the real APIs refuse (too many inputs in one request) and records what callm sent.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import callm
from callm._policies.budget import BudgetPolicy
from callm._store import Store
from callm.testing import FakeOpenAIServer, Fault
from callm.testing.local_embedding import hash_embedding
from helpers import FAKE_KEY, fake_provider, point_builtins

MODES = ["sync", "async"]


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=FAKE_KEY) as fake:
        yield point_builtins(fake, monkeypatch)


def embed(mode: str, model: str, inputs: Any, **kwargs: Any) -> callm.Embeddings:
    """One embed() call made the chosen way; client options go in ``client=``."""
    options = kwargs.pop("client", {})
    dimensions = kwargs.pop("dimensions", None)
    if mode == "sync":
        with callm.Client(**options) as client:
            return client.embed(model, inputs, dimensions, **kwargs)

    async def go() -> callm.Embeddings:
        async with callm.AsyncClient(**options) as client:
            return await client.embed(model, inputs, dimensions, **kwargs)

    return asyncio.run(go())


def close(a: list[float], b: list[float]) -> bool:
    """Equal as float32 (what base64 carries)."""
    return all(abs(x - y) < 1e-6 for x, y in zip(a, b, strict=True))


def embeddings_bodies(server: FakeOpenAIServer) -> list[dict[str, Any]]:
    return [r.json for r in server.requests if "mbed" in r.path]


@pytest.mark.parametrize("mode", MODES)
def test_openai_vectors_come_back_in_input_order(mode: str, server: FakeOpenAIServer) -> None:
    texts = ["the cat sat", "on the mat", "a third input"]
    result = embed(mode, "openai/text-embedding-3-small", texts)
    assert len(result) == 3
    assert result.model == "text-embedding-3-small"
    assert result.provider == "openai"
    for text, vector in zip(texts, result, strict=True):
        assert close(vector, hash_embedding(text))
    assert result.usage.input_tokens == 9  # the fake counts words
    assert not result.usage_estimated
    assert result.requests == 1
    assert result.tried == ("openai/text-embedding-3-small",)
    # genai-prices: text-embedding-3-small is $0.02 per million input tokens
    assert result.cost == Decimal("0.02") * 9 / 1_000_000
    (body,) = embeddings_bodies(server)
    assert body == {"model": "text-embedding-3-small", "input": texts, "encoding_format": "base64"}


@pytest.mark.parametrize("mode", MODES)
def test_one_string_is_one_input_and_dimensions_reach_the_server(
    mode: str, server: FakeOpenAIServer
) -> None:
    result = embed(mode, "openai/text-embedding-3-large", "just one", dimensions=32)
    assert len(result) == 1
    assert result.dimensions == 32
    assert close(result[0], hash_embedding("just one", 32))
    assert embeddings_bodies(server)[0]["dimensions"] == 32


def test_a_server_that_sends_floats_is_read_too(server: FakeOpenAIServer) -> None:
    providers = fake_provider(server.base_url, quirks={"embed_encoding": "float"})
    result = embed("sync", "fake/m", ["x y"], client={"providers": providers})
    assert embeddings_bodies(server)[0]["encoding_format"] == "float"
    assert result[0] == hash_embedding("x y")  # exactly: JSON numbers, not float32


def test_encoding_format_per_call(server: FakeOpenAIServer) -> None:
    result = embed("sync", "openai/text-embedding-3-small", ["a"], encoding_format="float")
    assert embeddings_bodies(server)[0]["encoding_format"] == "float"
    assert result[0] == hash_embedding("a")


@pytest.mark.parametrize("mode", MODES)
def test_long_lists_are_split_under_openais_limit_and_joined_in_order(
    mode: str, server: FakeOpenAIServer
) -> None:
    texts = [f"input number {i}" for i in range(4500)]
    result = embed(mode, "openai/text-embedding-3-small", texts, dimensions=4)
    sizes = [len(b["input"]) for b in embeddings_bodies(server)]
    assert sorted(sizes) == [404, 2048, 2048]
    assert result.requests == 3
    assert len(result) == 4500
    for i in (0, 2047, 2048, 4095, 4096, 4499):
        assert close(result[i], hash_embedding(texts[i], 4)), i
    assert result.usage.input_tokens == 3 * 4500


@pytest.mark.parametrize("mode", MODES)
def test_long_inputs_are_split_under_openais_token_limit(
    mode: str, server: FakeOpenAIServer
) -> None:
    texts = [f"document {i} " + "word " * 5000 for i in range(100)]  # 500,000 tokens in all
    result = embed(mode, "openai/text-embedding-3-small", texts, dimensions=2)
    sizes = sorted(len(b["input"]) for b in embeddings_bodies(server))
    assert sum(sizes) == 100
    assert len(sizes) == 3  # a third of each input's bytes is ~8,340 tokens: 35 a request
    assert result.usage.input_tokens == 100 * 5002
    assert close(result[99], hash_embedding(texts[99], 2))


def test_the_fake_refuses_a_request_over_the_token_limit(server: FakeOpenAIServer) -> None:
    """What the engine's token-aware split keeps clear of: OpenAI's own refusal."""
    import urllib.error
    import urllib.request

    body = {"model": "m", "input": ["word " * 200_000, "word " * 100_001]}
    request = urllib.request.Request(
        server.base_url + "/embeddings",
        json.dumps(body).encode(),
        {"authorization": f"Bearer {FAKE_KEY}", "content-type": "application/json"},
    )
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request)
    assert refused.value.code == 400
    message = json.load(refused.value)["error"]["message"]
    assert message == "Requested 300001 tokens, max 300000 tokens per request"


@pytest.mark.parametrize("mode", MODES)
def test_gemini_batches_of_at_most_100(mode: str, server: FakeOpenAIServer) -> None:
    texts = [f"gemini text {i}" for i in range(250)]
    result = embed(mode, "gemini/gemini-embedding-001", texts, dimensions=16)
    bodies = embeddings_bodies(server)
    assert sorted(len(b["requests"]) for b in bodies) == [50, 100, 100]
    first = next(b for b in bodies if b["requests"][0]["content"]["parts"][0]["text"] == texts[0])
    assert first["requests"][0] == {
        "model": "models/gemini-embedding-001",
        "content": {"parts": [{"text": texts[0]}]},
        "outputDimensionality": 16,
    }
    assert list(result) == [hash_embedding(t, 16) for t in texts]
    assert result.model == "gemini-embedding-001"
    # Gemini reports no tokens: callm's estimate (ceil(chars / 3) an input), said so.
    assert result.usage_estimated
    assert result.usage.input_tokens == sum(-(-len(t) // 3) for t in texts)
    assert result.cost == Decimal("0.15") * result.usage.input_tokens / 1_000_000


def test_gemini_task_type_goes_in_every_entry(server: FakeOpenAIServer) -> None:
    extra = {"taskType": "RETRIEVAL_QUERY"}
    embed("sync", "gemini/gemini-embedding-001", ["q1", "q2"], extra_body=extra)
    (body,) = embeddings_bodies(server)
    assert [r["taskType"] for r in body["requests"]] == ["RETRIEVAL_QUERY"] * 2


def test_the_batch_size_quirk_splits_smaller(server: FakeOpenAIServer) -> None:
    providers = fake_provider(server.base_url, quirks={"embed_batch_size": 3})
    result = embed("sync", "fake/m", [str(i) for i in range(10)], client={"providers": providers})
    assert sorted(len(b["input"]) for b in embeddings_bodies(server)) == [1, 3, 3, 3]
    assert list(result) == [pytest.approx(hash_embedding(str(i))) for i in range(10)]


def test_a_limit_set_too_high_meets_the_servers_refusal(server: FakeOpenAIServer) -> None:
    providers = fake_provider(server.base_url, quirks={"embed_batch_size": 5000})
    with pytest.raises(callm.BadRequestError, match="maximum 2048 inputs"):
        embed("sync", "fake/m", ["x"] * 2049, client={"providers": providers})


@pytest.mark.parametrize("mode", MODES)
def test_rate_limits_and_server_errors_are_retried(mode: str, server: FakeOpenAIServer) -> None:
    server.queue(Fault.rate_limit(retry_after=0), Fault.server_error())
    result = embed(mode, "openai/text-embedding-3-small", ["retry me"])
    assert close(result[0], hash_embedding("retry me"))
    assert len(embeddings_bodies(server)) == 3


@pytest.mark.parametrize("mode", MODES)
def test_gemini_throttling_is_a_rate_limit_error(mode: str, server: FakeOpenAIServer) -> None:
    server.queue(*[Fault.rate_limit(retry_after=0)] * 3)
    with pytest.raises(callm.RateLimitError):
        embed(mode, "gemini/gemini-embedding-001", ["a"], max_retries=0)


@pytest.mark.parametrize("mode", MODES)
def test_a_bad_key_is_an_authentication_error(
    mode: str, server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong-" + "0" * 8)
    with pytest.raises(callm.AuthenticationError):
        embed(mode, "openai/text-embedding-3-small", ["a"])


def test_a_failed_piece_fails_the_call(server: FakeOpenAIServer) -> None:
    server.queue(Fault.status(400, "bad input"))
    providers = fake_provider(server.base_url, quirks={"embed_batch_size": 2})
    with pytest.raises(callm.BadRequestError):
        embed("sync", "fake/m", ["a", "b", "c"], client={"providers": providers}, max_retries=0)


def test_a_protocol_without_embeddings_says_so(server: FakeOpenAIServer) -> None:
    with pytest.raises(callm.InvalidRequestError, match="no embeddings endpoint"):
        embed("sync", "anthropic/claude-sonnet-4-5", ["a"])


def test_unknown_parameters_and_non_strings_are_refused() -> None:
    with pytest.raises(callm.InvalidRequestError, match="unknown parameter"):
        callm.Client().embed("local/hash", ["a"], temperature=0.5)  # type: ignore[call-arg]
    with pytest.raises(callm.InvalidRequestError, match="takes strings"):
        callm.Client().embed("local/hash", ["a", 3])  # type: ignore[list-item]


def test_no_inputs_send_nothing(server: FakeOpenAIServer) -> None:
    result = embed("sync", "openai/text-embedding-3-small", [])
    assert list(result) == []
    assert result.requests == 0
    assert embeddings_bodies(server) == []


def test_the_local_provider_embeds_offline() -> None:
    result = callm.embed("local/hash", ["offline vectors", "offline vectors", "other words"])
    assert result.provider == "local"
    assert result.cost == 0
    assert result[0] == pytest.approx(result[1])
    assert result[0] == pytest.approx(hash_embedding("offline vectors"))
    same = sum(a * b for a, b in zip(result[0], result[1], strict=True))
    other = sum(a * b for a, b in zip(result[0], result[2], strict=True))
    assert same == pytest.approx(1.0)
    assert abs(other) < 0.5


def test_the_call_log_counts_inputs_and_keeps_no_text_or_vectors(
    server: FakeOpenAIServer, isolated_env: Path
) -> None:
    texts = ["secret document one", "secret document two", "three"]
    with callm.Client(log=True) as client:
        client.embed("openai/text-embedding-3-small", texts, 8)
        providers = {"openai": {"quirks": {"embed_batch_size": 2}}}
    with callm.Client(log=True, providers=providers) as client:
        client.embed("openai/text-embedding-3-small", texts)
    with Store(isolated_env / "callm.db") as store:
        records = store.recent_calls()
    assert len(records) == 3  # one call of one request, one call of two
    sizes = sorted(r.request["embed"]["inputs"] for r in records)
    assert sizes == [1, 2, 3]
    whole = next(r for r in records if r.request["embed"]["inputs"] == 3)
    assert whole.request["parameters"] == {"dimensions": 8}
    assert whole.model == "text-embedding-3-small"
    assert whole.input_tokens == 7
    assert whole.cost == Decimal("0.02") * 7 / 1_000_000
    assert whole.status == "ok"
    stored = json.dumps([r.request for r in records]) + str([r.response_text for r in records])
    assert "secret" not in stored


def test_a_failed_embedding_call_is_logged(server: FakeOpenAIServer, isolated_env: Path) -> None:
    server.queue(Fault.status(400, "no"))
    with callm.Client(log=True, max_retries=0) as client, pytest.raises(callm.BadRequestError):
        client.embed("openai/text-embedding-3-small", ["a"])
    with Store(isolated_env / "callm.db") as store:
        (record,) = store.recent_calls()
    assert record.status == "BadRequestError"
    assert record.request["embed"] == {"inputs": 1}


@pytest.mark.parametrize("mode", MODES)
def test_requests_already_sent_when_one_fails_finish_and_are_logged(
    mode: str, server: FakeOpenAIServer, isolated_env: Path
) -> None:
    server.queue(Fault.status(400, "no"))  # whichever of the three requests arrives first
    options = {"log": True, "providers": {"openai": {"quirks": {"embed_batch_size": 2}}}}
    with pytest.raises(callm.BadRequestError):
        embed(mode, "openai/text-embedding-3-small", ["a b"] * 6, client=options, max_retries=0)
    with Store(isolated_env / "callm.db") as store:
        records = store.recent_calls()
    # The third request may not have started when the first answer failed (then it is
    # never sent); every request the provider did receive is logged, none is cut off.
    sent = len(embeddings_bodies(server))
    assert 1 <= sent <= 3
    assert sorted(r.status for r in records) == ["BadRequestError"] + ["ok"] * (sent - 1)
    assert sum(r.input_tokens or 0 for r in records if r.status == "ok") == 4 * (sent - 1)


def test_hooks_see_the_embedding_call(server: FakeOpenAIServer) -> None:
    seen: list[callm.CallInfo] = []
    replies: list[callm.Response] = []
    options = {"before_request": [seen.append], "after_response": [lambda i, r: replies.append(r)]}
    embed("sync", "openai/text-embedding-3-small", ["a", "b"], client=options)
    (info,) = seen
    assert info.embed is not None
    assert info.embed.inputs == ("a", "b")
    assert info.model == "openai/text-embedding-3-small"
    assert replies[0].usage.input_tokens == 2


def test_the_budget_is_charged_and_then_refuses(server: FakeOpenAIServer) -> None:
    # $0.13 per million tokens: the first call (10 tokens) passes, and is charged; the
    # second (estimated from its size) would pass the limit.
    budget = callm.Budget(limit=Decimal("0.000003"))
    with callm.Client(budget=budget) as client:
        first = client.embed("openai/text-embedding-3-large", ["one two three four five"] * 2)
        assert first.cost == Decimal("0.0000013")
        assert client.pipeline.find(BudgetPolicy).spent("client") == first.cost  # type: ignore[union-attr]
        with pytest.raises(callm.BudgetExceededError):
            client.embed("openai/text-embedding-3-large", ["again and again"] * 3)


def test_base64_on_the_wire_is_little_endian_float32(server: FakeOpenAIServer) -> None:
    """What the fake sends is what OpenAI documents: read it here independently of callm."""
    import urllib.request

    request = urllib.request.Request(
        server.base_url + "/embeddings",
        json.dumps({"model": "m", "input": ["abc"], "encoding_format": "base64"}).encode(),
        {"authorization": f"Bearer {FAKE_KEY}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request) as answer:
        data = json.load(answer)["data"][0]["embedding"]
    raw = base64.b64decode(data)
    values = struct.unpack(f"<{len(raw) // 4}f", raw)
    assert close(list(values), hash_embedding("abc"))


def test_each_request_is_an_embeddings_span(server: FakeOpenAIServer) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    providers = {"gemini": {"quirks": {"embed_batch_size": 2}}}
    with callm.Client(tracer_provider=provider, providers=providers) as client:
        client.embed("gemini/gemini-embedding-001", ["a", "b", "c"])
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["embeddings gemini-embedding-001"] * 2
    attributes = dict(spans[0].attributes or {})
    assert attributes["gen_ai.operation.name"] == "embeddings"
    assert sorted(dict(s.attributes or {})["gen_ai.usage.input_tokens"] for s in spans) == [1, 2]
    provider.shutdown()


def test_rate_limits_pace_the_requests(server: FakeOpenAIServer) -> None:
    # One request a minute, no wait allowed: the second request of the call is refused
    # before it is sent.
    limit = callm.RateLimit(rpm=1, max_wait=0)
    providers = {"openai": {"quirks": {"embed_batch_size": 1}}}
    with (
        callm.Client(rate_limits=limit, providers=providers) as client,
        pytest.raises(callm.RateLimitError),
    ):
        client.embed("openai/text-embedding-3-small", ["a", "b"], max_concurrency=1)
    assert len(embeddings_bodies(server)) == 1


def test_azure_deployments(server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AZURE_OPENAI_ENDPOINT", server.url)
    monkeypatch.setenv("AZURE_OPENAI_API_KEY", FAKE_KEY)
    result = embed("sync", "azure/my-embedder", ["azure text"])
    assert close(result[0], hash_embedding("azure text"))
    (request,) = [r for r in server.requests if "mbed" in r.path]
    assert request.path == "/openai/deployments/my-embedder/embeddings"
    assert request.query["api-version"]
