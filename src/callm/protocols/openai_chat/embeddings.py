"""OpenAI's embeddings endpoint, ``POST /embeddings``, and every server compatible with it.

``encode_embed_request`` asks for base64 vectors unless the provider entry's quirks say
``embed_encoding = "float"``, and ``decode_embed_response`` reads either (a server that
ignores the field and sends numbers is read as well). Vectors are put back in input order
by their ``index``.
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

# OpenAI refuses more than 2048 inputs, or 300,000 tokens summed over them, in one request.
MAX_INPUTS = 2048
MAX_TOKENS = 300_000


def embed_limits(endpoint: Endpoint, model: str) -> EmbedLimits:
    """How much one request to ``endpoint`` may carry (OpenAI's limits, unless the entry's
    ``embed_batch_size`` quirk says fewer inputs)."""
    return EmbedLimits(endpoint.quirks.embed_batch_size or MAX_INPUTS, MAX_TOKENS)


def encode_embed_request(endpoint: Endpoint, request: EmbedRequest) -> HttpRequest:
    """Build ``POST /embeddings`` for ``request.inputs``."""
    body: dict[str, Any] = {
        "model": request.model,
        "input": list(request.inputs),
        "encoding_format": request.encoding_format or endpoint.quirks.embed_encoding,
    }
    if request.dimensions is not None:
        body["dimensions"] = request.dimensions
    if request.user is not None:
        body["user"] = request.user
    body.update(request.extra_body)
    return HttpRequest(
        "POST",
        endpoint.url("/embeddings", request.model),
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
    """The vectors of a ``/embeddings`` reply, in input order, with the usage it reports."""
    data = parse_json(endpoint, response)
    items = data.get("data") if isinstance(data, dict) else None
    if (
        not isinstance(data, dict)
        or not isinstance(items, list)
        or len(items) != len(request.inputs)
    ):
        got = len(items) if isinstance(items, list) else "no"
        raise APIResponseError(
            f"the embeddings reply has {got} vectors for {len(request.inputs)} inputs",
            provider=endpoint.provider,
            request_id=request_id_of(response.headers),
            body=data,
        )
    vectors = _in_order(items, endpoint)
    usage = data.get("usage")
    tokens = _prompt_tokens(usage)
    model = data.get("model")
    return Embeddings(
        vectors,
        model if isinstance(model, str) and model else request.model,
        endpoint.provider,
        Usage(input_tokens=tokens or 0),
        usage_estimated=tokens is None,
        request_id=request_id_of(response.headers),
        latency_s=latency_s,
    )


def _in_order(items: list[Any], endpoint: Endpoint) -> list[list[float]]:
    vectors: list[list[float] | None] = [None] * len(items)
    for position, item in enumerate(items):
        index = item.get("index", position) if isinstance(item, Mapping) else None
        if not isinstance(index, int) or not 0 <= index < len(items) or vectors[index] is not None:
            raise APIResponseError(
                f"an embedding has a missing or repeated index: {str(item)[:100]}",
                provider=endpoint.provider,
            )
        vectors[index] = vector_of(item.get("embedding"), endpoint)
    return vectors  # type: ignore[return-value]  # every index was filled exactly once


def _prompt_tokens(usage: object) -> int | None:
    if not isinstance(usage, Mapping):
        return None
    tokens = usage.get("prompt_tokens", usage.get("total_tokens"))
    return tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None
