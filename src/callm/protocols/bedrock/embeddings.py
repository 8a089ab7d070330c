"""Bedrock's embedding models through InvokeModel (``POST /model/{modelId}/invoke``).

Each model family has its own body, as Bedrock passes it through:

* Amazon Titan Text Embeddings (``amazon.titan-embed-text-v2:0``, ``…-v1``): one text a
  request, ``{"inputText", "dimensions", "normalize"}`` (v2 takes 256, 512 or 1024
  dimensions; v1 none) → ``{"embedding": […], "inputTextTokenCount"}``.
* Cohere Embed (``cohere.embed-english-v3``, ``cohere.embed-multilingual-v3``,
  ``cohere.embed-v4:0``): up to 96 texts, ``{"texts", "input_type"}`` (``search_document``
  unless ``extra_body`` says ``search_query``, ``classification`` or ``clustering``), v4's
  ``output_dimension`` → ``{"embeddings": [[…]]}`` (or ``{"float": [[…]]}`` when
  ``embedding_types`` was asked), the token count in the ``X-Amzn-Bedrock-Input-Token-Count``
  header.

An inference profile's region prefix (``us.``, ``eu.``, ``global.`` …) does not change the
family. ``extra_body`` is merged into the body. Requests are signed like every Bedrock call.
"""

from __future__ import annotations

from collections.abc import Mapping

from ..._core.embeddings import Embeddings, EmbedLimits, EmbedRequest
from ..._core.endpoint import Endpoint
from ..._core.errors import APIResponseError, InvalidRequestError
from ..._core.http import HttpRequest, HttpResponse
from ..._core.json import dumps
from ..._core.types import Usage
from .._shared.embeddings import vector_of
from .._shared.errors import parse_json, request_id_of
from .client import model_path

COHERE_MAX_INPUTS = 96
_TITAN_V2_DIMENSIONS = (256, 512, 1024)
_TOKEN_HEADER = "x-amzn-bedrock-input-token-count"
_REGION_PREFIXES = ("us.", "eu.", "apac.", "jp.", "au.", "ca.", "us-gov.", "global.")


def family(model: str) -> str:
    """``"titan"`` or ``"cohere"``: the body a Bedrock embedding model takes."""
    name = model.rsplit("/", 1)[-1]  # an ARN ends with the model or profile id
    for prefix in _REGION_PREFIXES:
        name = name.removeprefix(prefix)
    if name.startswith("amazon.titan-embed"):
        return "titan"
    if name.startswith("cohere.embed"):
        return "cohere"
    raise InvalidRequestError(
        f"{model!r} is not an embedding model callm knows on Bedrock: use Amazon Titan Text "
        "Embeddings (amazon.titan-embed-text-v2:0) or Cohere Embed (cohere.embed-english-v3 …)"
    )


def embed_limits(endpoint: Endpoint, model: str) -> EmbedLimits:
    """Titan embeds one text a request, Cohere up to 96."""
    if family(model) == "titan":
        return EmbedLimits(1)
    return EmbedLimits(endpoint.quirks.embed_batch_size or COHERE_MAX_INPUTS)


def encode_embed_request(endpoint: Endpoint, request: EmbedRequest) -> HttpRequest:
    """Build the signed ``POST /model/{id}/invoke`` of one Titan text or up to 96 Cohere texts."""
    titan = family(request.model) == "titan"
    body = _titan_body(request) if titan else _cohere_body(request)
    body.update(request.extra_body)
    headers = dict(endpoint.request_headers(request.extra_headers or None))
    url = endpoint.url(model_path(request.model, "invoke"))
    http = HttpRequest("POST", url, headers, dumps(body).encode(), endpoint.secret_headers)
    return endpoint.signed(http)


def _titan_body(request: EmbedRequest) -> dict[str, object]:
    (text,) = request.inputs  # embed_limits: one a request
    body: dict[str, object] = {"inputText": text}
    if request.dimensions is not None:
        if "text-v1" in request.model:
            raise InvalidRequestError(
                "Titan Text Embeddings v1 has a fixed size: leave dimensions unset"
            )
        if request.dimensions not in _TITAN_V2_DIMENSIONS:
            raise InvalidRequestError(
                "Titan Text Embeddings v2 makes 256, 512 or 1024 dimensions, "
                f"not {request.dimensions}"
            )
        body["dimensions"] = request.dimensions
        body["normalize"] = True
    return body


def _cohere_body(request: EmbedRequest) -> dict[str, object]:
    body: dict[str, object] = {"texts": list(request.inputs), "input_type": "search_document"}
    if request.dimensions is not None:
        body["output_dimension"] = request.dimensions  # Embed v4; v3 models refuse it
    return body


def decode_embed_response(
    endpoint: Endpoint,
    request: EmbedRequest,
    response: HttpResponse,
    latency_s: float | None = None,
) -> Embeddings:
    """The vectors of an InvokeModel answer, Titan's or Cohere's."""
    data = parse_json(endpoint, response)
    if not isinstance(data, Mapping):
        data = {}
    if family(request.model) == "titan":
        vectors = [vector_of(data.get("embedding"), endpoint)]
        tokens = data.get("inputTextTokenCount")
    else:
        vectors = _cohere_vectors(data, endpoint)
        tokens = _int(response.headers.get(_TOKEN_HEADER))
    if len(vectors) != len(request.inputs):
        raise APIResponseError(
            f"the InvokeModel answer has {len(vectors)} vectors for {len(request.inputs)} inputs",
            provider=endpoint.provider,
            request_id=request_id_of(response.headers),
            body=data,
        )
    counted = tokens if isinstance(tokens, int) and not isinstance(tokens, bool) else None
    return Embeddings(
        vectors,
        request.model,
        endpoint.provider,
        Usage(input_tokens=counted or 0),
        usage_estimated=counted is None,
        request_id=request_id_of(response.headers),
        latency_s=latency_s,
    )


def _cohere_vectors(data: Mapping[str, object], endpoint: Endpoint) -> list[list[float]]:
    embeddings = data.get("embeddings")
    if isinstance(embeddings, Mapping):  # embedding_types asked: {"float": [[…]], …}
        embeddings = embeddings.get("float")
    if not isinstance(embeddings, list):
        return []
    return [vector_of(v, endpoint) for v in embeddings]


def _int(text: str | None) -> int | None:
    return int(text) if text is not None and text.isdigit() else None
