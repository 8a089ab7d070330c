"""Embeddings on Vertex AI: ``…/publishers/google/models/{model}:predict``.

Vertex serves Google's embedding models through ``predict``, not the Gemini API's
``batchEmbedContents``: ``{"instances": [{"content": text}, …], "parameters":
{"outputDimensionality"}}`` → ``{"predictions": [{"embeddings": {"values": […],
"statistics": {"token_count"}}}]}``. ``gemini-embedding-001`` takes one instance a request;
the ``text-embedding-…`` and ``text-multilingual-embedding-…`` models up to 250 and 20,000
tokens summed. ``extra_body`` is merged into each instance, where Vertex takes ``task_type``
and ``title`` (the Gemini API's ``taskType`` is accepted and renamed).
"""

from __future__ import annotations

from collections.abc import Mapping

from ..._core.embeddings import Embeddings, EmbedLimits, EmbedRequest
from ..._core.endpoint import Endpoint
from ..._core.errors import APIResponseError
from ..._core.http import HttpRequest, HttpResponse
from ..._core.json import dumps
from ..._core.types import Usage
from .._shared.embeddings import vector_of
from .._shared.errors import parse_json, request_id_of

MAX_INSTANCES = 250
MAX_TOKENS = 20_000
_RENAMED = {"taskType": "task_type"}


def embed_limits(endpoint: Endpoint, model: str) -> EmbedLimits:
    """One instance a request for the Gemini embedding models, else 250 (20,000 tokens)."""
    if model.startswith("gemini-embedding"):
        return EmbedLimits(1)
    return EmbedLimits(endpoint.quirks.embed_batch_size or MAX_INSTANCES, MAX_TOKENS)


def encode_embed_request(endpoint: Endpoint, request: EmbedRequest) -> HttpRequest:
    """Build ``POST …/models/{model}:predict`` for ``request.inputs``."""
    extra = {_RENAMED.get(k, k): v for k, v in request.extra_body.items()}
    instances = [{"content": text, **extra} for text in request.inputs]
    body: dict[str, object] = {"instances": instances}
    if request.dimensions is not None:
        body["parameters"] = {"outputDimensionality": request.dimensions}
    return HttpRequest(
        "POST",
        endpoint.url(f"/models/{request.model}:predict"),
        endpoint.request_headers(request.extra_headers or None),
        dumps(body).encode(),
        endpoint.secret_headers,
    )


def decode_embed_response(
    endpoint: Endpoint,
    request: EmbedRequest,
    response: HttpResponse,
    latency_s: float | None = None,
) -> Embeddings:
    """The vectors of a ``predict`` answer, in input order, with their token counts."""
    data = parse_json(endpoint, response)
    predictions = data.get("predictions") if isinstance(data, Mapping) else None
    if not isinstance(predictions, list) or len(predictions) != len(request.inputs):
        got = len(predictions) if isinstance(predictions, list) else "no"
        raise APIResponseError(
            f"the predict answer has {got} embeddings for {len(request.inputs)} inputs",
            provider=endpoint.provider,
            request_id=request_id_of(response.headers),
            body=data,
        )
    vectors: list[list[float]] = []
    tokens = 0
    counted = True
    for prediction in predictions:
        embedding = prediction.get("embeddings") if isinstance(prediction, Mapping) else None
        embedding = embedding if isinstance(embedding, Mapping) else {}
        vectors.append(vector_of(embedding.get("values"), endpoint))
        statistics = embedding.get("statistics")
        count = statistics.get("token_count") if isinstance(statistics, Mapping) else None
        if isinstance(count, int | float) and not isinstance(count, bool):
            tokens += int(count)
        else:
            counted = False
    return Embeddings(
        vectors,
        request.model,
        endpoint.provider,
        Usage(input_tokens=tokens),
        usage_estimated=not counted,
        request_id=request_id_of(response.headers),
        latency_s=latency_s,
    )
