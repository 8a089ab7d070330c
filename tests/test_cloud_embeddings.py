"""Embeddings on the clouds: Bedrock's Titan and Cohere models through InvokeModel, Vertex
AI's models through ``:predict`` — split under each model's limit, sent concurrently, joined
in input order, against the fake over real HTTP (signed requests, OAuth 2.0 tokens)."""

from __future__ import annotations

from typing import Any

import pytest

import callm
import drive
from callm.testing import FakeOpenAIServer, Fault
from callm.testing.local_embedding import hash_embedding
from helpers import point_builtins

TITAN = "bedrock/amazon.titan-embed-text-v2:0"
COHERE = "bedrock/cohere.embed-english-v3"
VERTEX_TEXT = "vertex/text-embedding-005"
VERTEX_GEMINI = "vertex/gemini-embedding-001"
pytestmark = pytest.mark.parametrize("mode", drive.MODES)


@pytest.fixture
def server(fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    return point_builtins(fake_openai, monkeypatch, "embed-test")


async def embed(mode: str, model: str, inputs: Any, **params: Any) -> callm.Embeddings:
    if mode == "sync":
        with callm.Client(max_retries=0) as client:
            return client.embed(model, inputs, **params)
    async with callm.AsyncClient(max_retries=0) as ac:
        return await ac.embed(model, inputs, **params)


def bodies(server: FakeOpenAIServer, suffix: str) -> list[dict[str, Any]]:
    return [r.json for r in server.requests if r.path.endswith(suffix)]


async def test_titan_embeds_one_text_a_request(server: FakeOpenAIServer, mode: str) -> None:
    texts = ["the red fox", "a blue whale", "the red fox jumps"]
    e = await embed(mode, TITAN, texts, dimensions=256)
    assert e.vectors == [hash_embedding(t, 256) for t in texts]
    assert (e.requests, e.dimensions, e.usage.input_tokens) == (3, 256, 10)
    assert not e.usage_estimated and e.cost is not None
    sent = bodies(server, "/invoke")
    assert sorted(b["inputText"] for b in sent) == sorted(texts)
    assert all(b["dimensions"] == 256 and b["normalize"] is True for b in sent)
    assert server.requests[-1].headers["authorization"].startswith("AWS4-HMAC-SHA256 ")


async def test_cohere_splits_at_96_and_keeps_the_order(server: FakeOpenAIServer, mode: str) -> None:
    texts = [f"text number {i}" for i in range(100)]
    e = await embed(mode, COHERE, texts)
    assert e.vectors == [hash_embedding(t, 1024) for t in texts]
    assert e.requests == 2 and e.usage.input_tokens == 300 and not e.usage_estimated
    sent = bodies(server, "/invoke")
    assert sorted(len(b["texts"]) for b in sent) == [4, 96]
    assert {b["input_type"] for b in sent} == {"search_document"}


async def test_cohere_takes_its_own_fields_from_extra_body(
    server: FakeOpenAIServer, mode: str
) -> None:
    extra = {"input_type": "search_query", "embedding_types": ["float"]}
    e = await embed(
        mode, "bedrock/us.cohere.embed-v4:0", ["find me"], dimensions=512, extra_body=extra
    )
    assert e.vectors == [hash_embedding("find me", 512)]
    (sent,) = bodies(server, "/invoke")
    assert sent == {"texts": ["find me"], "input_type": "search_query", "output_dimension": 512,
                    "embedding_types": ["float"]}  # fmt: skip


@pytest.mark.parametrize(
    ("model", "params", "match"),
    [
        (TITAN, {"dimensions": 300}, "256, 512 or 1024"),
        ("bedrock/amazon.titan-embed-text-v1", {"dimensions": 256}, "fixed size"),
        ("bedrock/anthropic.claude-3-5-haiku-20241022-v1:0", {}, "not an embedding model"),
    ],
)
async def test_what_a_bedrock_model_cannot_do_is_refused_before_sending(
    server: FakeOpenAIServer, mode: str, model: str, params: dict[str, Any], match: str
) -> None:
    with pytest.raises(callm.InvalidRequestError, match=match):
        await embed(mode, model, ["hi"], **params)
    assert bodies(server, "/invoke") == []


async def test_bedrock_throttling_is_a_rate_limit_error(
    server: FakeOpenAIServer, mode: str
) -> None:
    server.queue(Fault.rate_limit())
    with pytest.raises(callm.RateLimitError) as caught:
        await embed(mode, COHERE, ["hi"])
    assert caught.value.code == "ThrottlingException"


async def test_vertex_text_embedding_splits_at_250(server: FakeOpenAIServer, mode: str) -> None:
    texts = [f"passage {i}" for i in range(300)]
    e = await embed(
        mode, VERTEX_TEXT, texts, dimensions=64, extra_body={"taskType": "RETRIEVAL_DOCUMENT"}
    )
    assert e.vectors == [hash_embedding(t, 64) for t in texts]
    assert e.requests == 2 and e.usage.input_tokens == 600 and not e.usage_estimated
    sent = bodies(server, ":predict")
    assert sorted(len(b["instances"]) for b in sent) == [50, 250]
    assert sent[0]["parameters"] == {"outputDimensionality": 64}
    assert sent[0]["instances"][0]["task_type"] == "RETRIEVAL_DOCUMENT"
    predict = next(r for r in server.requests if r.path.endswith(":predict"))
    assert predict.path.startswith("/v1/projects/callm-test-project/locations/us-east5/")
    assert predict.headers["authorization"].startswith("Bearer ya29.fake-")


async def test_vertex_gemini_embedding_takes_one_input_a_request(
    server: FakeOpenAIServer, mode: str
) -> None:
    texts = ["one", "two words", "three more words"]
    e = await embed(mode, VERTEX_GEMINI, texts)
    assert e.vectors == [hash_embedding(t, 3072) for t in texts]
    assert e.requests == 3 and e.usage.input_tokens == 6
    assert e.cost is not None


async def test_vertex_errors_are_google_errors(server: FakeOpenAIServer, mode: str) -> None:
    server.queue(Fault.overloaded())
    with pytest.raises(callm.OverloadedError):
        await embed(mode, VERTEX_TEXT, ["hi"])
