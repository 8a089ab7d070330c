"""The fake's embeddings on the clouds: Bedrock's InvokeModel (Titan, Cohere Embed) and
Vertex AI's ``:predict``, answered by the offline embedding model.

Written from the providers' documented bodies, apart from callm's codecs:

* ``POST /model/{id}/invoke`` — Titan Text Embeddings (``{"inputText", "dimensions",
  "normalize"}`` → ``{"embedding", "inputTextTokenCount"}``; v2 makes 256, 512 or 1024
  dimensions, v1 has no such field) and Cohere Embed (``{"texts" (≤ 96), "input_type",
  "embedding_types", "output_dimension" (v4)}`` → ``{"embeddings", "id", "response_type",
  "texts"}``, the token count in ``X-Amzn-Bedrock-Input-Token-Count``). Signed like every
  Bedrock route; errors in Bedrock's shape.
* ``POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:predict`` —
  ``{"instances": [{"content"}], "parameters": {"outputDimensionality"}}`` →
  ``{"predictions": [{"embeddings": {"values", "statistics": {"token_count"}}}]}``;
  ``gemini-embedding-…`` takes one instance a request, the others 250. OAuth 2.0 tokens.

A queued :class:`Fault` applies to the next embeddings request, as on the other routes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web

from ._aws_wire import aws_error, check_auth
from ._bedrock_fake import exception_name
from ._embed_fake import _early_fault
from ._gemini_fake import VERTEX_PREFIX, google_error
from ._gemini_fake import _fault_status as _google_fault
from ._google_oauth import check_token
from ._http import AddRoute, Rejected, _whole, record_request
from ._script import Fault
from ._state import ServerState
from .local_embedding import hash_embedding, input_tokens

COHERE_MAX_TEXTS = 96
VERTEX_MAX_INSTANCES = 250
_TITAN_V2_DIMENSIONS = (256, 512, 1024)
_COHERE_V4_DIMENSIONS = (256, 512, 1024, 1536)
_INPUT_TYPES = ("search_document", "search_query", "classification", "clustering")
_JSON = "application/json"


def register(add: AddRoute, state: ServerState) -> None:
    """Add the routes (Vertex's before Gemini's catch-all ``models/{target}``)."""
    routes = _Routes(state)
    add("POST", "/model/{model}/invoke", routes.invoke)
    add("POST", VERTEX_PREFIX + "/publishers/google/models/{model}:predict", routes.predict)


class _Routes:
    def __init__(self, state: ServerState) -> None:
        self._state = state

    async def invoke(self, request: web.Request) -> web.StreamResponse:
        record = await record_request(request)
        self._state.record(record)
        request_id = self._state.new_uuid()
        refused = check_auth(
            request,
            record.headers,
            record.body,
            api_key=self._state.api_key,
            aws_keys=self._state.aws_keys(),
            request_id=request_id,
        )
        if refused is not None:
            raise Rejected(refused)
        model = request.match_info["model"]
        body = record.json if isinstance(record.json, dict) else {}
        headers: dict[str, str] = {}
        if "titan-embed" in model:
            payload = _titan(model, body, request_id)
        elif "cohere.embed" in model:
            payload, headers = _cohere(model, body, request_id)
        else:
            raise Rejected(_invalid(f"The model {model} does not make embeddings.", request_id))
        fault = self._state.pop_fault()
        early = await _early_fault(request, fault, _bedrock_fault(fault, request_id))
        if early is not None:
            return early
        headers = {"Content-Type": _JSON, "x-amzn-RequestId": request_id, **headers}
        return await _whole(request, json.dumps(payload).encode(), headers, fault)

    async def predict(self, request: web.Request) -> web.StreamResponse:
        record = await record_request(request)
        self._state.record(record)
        refused = check_token(self._state, record.headers)
        if refused is not None:
            raise Rejected(refused)
        model = request.match_info["model"]
        body = record.json if isinstance(record.json, dict) else {}
        texts = _instances(model, body)
        given = body.get("parameters")
        parameters: dict[str, Any] = given if isinstance(given, dict) else {}
        default = 3072 if model.startswith("gemini-embedding") else 768
        dimensions = parameters.get("outputDimensionality", default)
        if not isinstance(dimensions, int) or isinstance(dimensions, bool) or dimensions < 1:
            raise Rejected(google_error(400, "outputDimensionality must be a positive integer"))
        fault = self._state.pop_fault()
        early = await _early_fault(request, fault, _google_fault(fault) if fault else None)
        if early is not None:
            return early
        predictions = [
            {
                "embeddings": {
                    "values": hash_embedding(text, dimensions),
                    "statistics": {"truncated": False, "token_count": input_tokens(text)},
                }
            }
            for text in texts
        ]
        metadata = {"billableCharacterCount": sum(len(t) for t in texts)}
        reply = json.dumps({"predictions": predictions, "metadata": metadata}).encode()
        return await _whole(request, reply, {"Content-Type": _JSON}, fault)


def _invalid(message: str, request_id: str) -> web.Response:
    return aws_error(400, "ValidationException", message, request_id)


def _bedrock_fault(fault: Fault | None, request_id: str) -> web.Response | None:
    if fault is None:
        return None
    message = str((fault.error or {}).get("message") or "")
    response = aws_error(fault.status_code, exception_name(fault), message, request_id)
    response.headers.update(fault.headers)
    return response


def _titan(model: str, body: Mapping[str, Any], request_id: str) -> dict[str, Any]:
    text = body.get("inputText")
    if not isinstance(text, str) or not text:
        message = "Malformed input request: #: required key [inputText] not found"
        raise Rejected(_invalid(message, request_id))
    extra = set(body) - {"inputText", "dimensions", "normalize", "embeddingTypes"}
    if "text-v1" in model:
        extra |= set(body) & {"dimensions", "normalize"}
    if extra:
        key = sorted(extra)[0]
        message = f"Malformed input request: #: extraneous key [{key}] is not permitted"
        raise Rejected(_invalid(message, request_id))
    dimensions = body.get("dimensions", 1536 if "text-v1" in model else 1024)
    if "text-v1" not in model and dimensions not in _TITAN_V2_DIMENSIONS:
        message = f"Malformed input request: #/dimensions: {dimensions} is not a valid enum value"
        raise Rejected(_invalid(message, request_id))
    return {
        "embedding": hash_embedding(text, dimensions),
        "inputTextTokenCount": input_tokens(text),
    }


def _cohere(
    model: str, body: Mapping[str, Any], request_id: str
) -> tuple[dict[str, Any], dict[str, str]]:
    texts = body.get("texts")
    if not isinstance(texts, list) or not texts or not all(isinstance(t, str) and t for t in texts):
        raise Rejected(
            _invalid("Malformed input request: #: required key [texts] not found", request_id)
        )
    if len(texts) > COHERE_MAX_TEXTS:
        message = (
            "Malformed input request: #/texts: expected maximum item count: 96, "
            f"found: {len(texts)}"
        )
        raise Rejected(_invalid(message, request_id))
    if body.get("input_type") not in _INPUT_TYPES:
        message = "Malformed input request: #/input_type: is not a valid enum value"
        raise Rejected(_invalid(message, request_id))
    dimensions = body.get("output_dimension", 1536 if "v4" in model else 1024)
    if "output_dimension" in body and (
        "v4" not in model or dimensions not in _COHERE_V4_DIMENSIONS
    ):
        message = "Malformed input request: #: extraneous key [output_dimension] is not permitted"
        raise Rejected(_invalid(message, request_id))
    vectors = [hash_embedding(t, dimensions) for t in texts]
    by_type = isinstance(body.get("embedding_types"), list)
    payload = {
        "id": request_id,
        "embeddings": {"float": vectors} if by_type else vectors,
        "response_type": "embeddings_by_type" if by_type else "embeddings_floats",
        "texts": texts,
    }
    tokens = sum(input_tokens(t) for t in texts)
    return payload, {"X-Amzn-Bedrock-Input-Token-Count": str(tokens)}


def _instances(model: str, body: Mapping[str, Any]) -> list[str]:
    instances = body.get("instances")
    if not isinstance(instances, list) or not instances:
        raise Rejected(google_error(400, "instances must be a non-empty list"))
    limit = 1 if model.startswith("gemini-embedding") else VERTEX_MAX_INSTANCES
    if len(instances) > limit:
        message = (
            "Unable to submit request because the model supports up to "
            f"{limit} instances per request."
        )
        raise Rejected(google_error(400, message))
    texts = [i.get("content") if isinstance(i, dict) else None for i in instances]
    if not all(isinstance(t, str) and t for t in texts):
        raise Rejected(google_error(400, "each instance needs a non-empty content"))
    return [str(t) for t in texts]
