"""Gemini's ``models/{model}:batchEmbedContents``: many inputs in one request.

Each input becomes one entry of ``requests`` (``{"model", "content": {"parts": [{"text"}]}}``
with ``outputDimensionality`` when ``dimensions`` is given); ``extra_body`` is merged into
every entry, which is where Gemini takes ``taskType`` and ``title``. The API takes at most
100 entries a request. Its reply carries the vectors only, in input order, and no token
counts (Vertex AI's adds ``usageMetadata``, read when present): the engine then estimates
them and says so (``Embeddings.usage_estimated``). On Vertex AI (an endpoint whose quirks
say ``vertex``) the same models answer ``:predict`` instead: see :mod:`.vertex_embeddings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..._core.embeddings import Embeddings, EmbedLimits, EmbedRequest
from ..._core.endpoint import Endpoint
from ..._core.errors import APIResponseError
from ..._core.http import HttpRequest, HttpResponse
from ..._core.json import dumps
from ..._core.types import Usage
from .._shared.embeddings import vector_of
from .._shared.errors import parse_json, request_id_of
from . import vertex_embeddings

# "BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch"
MAX_INPUTS = 100


def embed_limits(endpoint: Endpoint, model: str) -> EmbedLimits:
    """How much one request to ``endpoint`` may carry (each input is truncated to the
    model's window by Gemini itself, so there is no limit on tokens summed)."""
    if endpoint.quirks.vertex:
        return vertex_embeddings.embed_limits(endpoint, model)
    return EmbedLimits(endpoint.quirks.embed_batch_size or MAX_INPUTS)


def _resource(model: str) -> str:
    # Full resource names ("models/x", "tunedModels/y") are used as given.
    return model if model.startswith(("models/", "tunedModels/")) else "models/" + model


def encode_embed_request(endpoint: Endpoint, request: EmbedRequest) -> HttpRequest:
    """Build ``POST …/models/{model}:batchEmbedContents`` for ``request.inputs``."""
    if endpoint.quirks.vertex:
        return vertex_embeddings.encode_embed_request(endpoint, request)
    resource = _resource(request.model)
    shared: dict[str, Any] = {}
    if request.dimensions is not None:
        shared["outputDimensionality"] = request.dimensions
    shared.update(request.extra_body)
    entries = [
        {"model": resource, "content": {"parts": [{"text": text}]}, **shared}
        for text in request.inputs
    ]
    return HttpRequest(
        "POST",
        endpoint.url(f"/{resource}:batchEmbedContents"),
        endpoint.request_headers(request.extra_headers or None),
        dumps({"requests": entries}).encode(),
        endpoint.secret_headers,
    )


def decode_embed_response(
    endpoint: Endpoint,
    request: EmbedRequest,
    response: HttpResponse,
    latency_s: float | None = None,
) -> Embeddings:
    """The vectors of a ``batchEmbedContents`` reply (in input order, as Gemini sends them)."""
    if endpoint.quirks.vertex:
        return vertex_embeddings.decode_embed_response(endpoint, request, response, latency_s)
    data = parse_json(endpoint, response)
    items = data.get("embeddings") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or not isinstance(items, list)
        or len(items) != len(request.inputs)
    ):
        got = len(items) if isinstance(items, list) else "no"
        raise APIResponseError(
            f"the batchEmbedContents reply has {got} vectors for {len(request.inputs)} inputs",
            provider=endpoint.provider,
            request_id=request_id_of(response.headers),
            body=data,
        )
    vectors = [
        vector_of(item.get("values") if isinstance(item, Mapping) else None, endpoint)
        for item in items
    ]
    tokens = _prompt_tokens(data.get("usageMetadata"))
    return Embeddings(
        vectors,
        request.model.rpartition("/")[2],
        endpoint.provider,
        Usage(input_tokens=tokens or 0),
        usage_estimated=tokens is None,
        request_id=request_id_of(response.headers),
        latency_s=latency_s,
    )


def _prompt_tokens(usage: object) -> int | None:
    if not isinstance(usage, Mapping):
        return None
    tokens = usage.get("promptTokenCount")
    return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None
