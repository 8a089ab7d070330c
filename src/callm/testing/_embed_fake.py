"""The fake server's embeddings endpoints: OpenAI's ``/embeddings`` and Gemini's
``:batchEmbedContents``, answered by the offline embedding model.

Written from the providers' documented wire shapes, not from callm's codecs, so the tests
check one against the other. Each endpoint refuses what its provider refuses — more inputs
than one request may carry (OpenAI 2048 and 300,000 tokens, Gemini 100), an empty input, an unknown
``encoding_format`` — with the provider's own error shape. A queued :class:`Fault` applies
to the next embeddings request (a scripted Reply does not: it is left for a chat request).
``base64`` vectors are little-endian float32, as OpenAI sends them.
"""

from __future__ import annotations

import asyncio
import base64
import struct
from collections.abc import Mapping
from typing import Any, TypeGuard

from aiohttp import web

from ._gemini_fake import _NO_KEY, _bad_key, google_error
from ._gemini_fake import _fault_status as _google_fault
from ._http import AddRoute, Rejected, _drop, _error, _fault_status, _given_key, _whole
from ._http import record_request as _record
from ._script import Fault, invalid_key_message
from ._state import ServerState
from ._wire import dumps
from .local_embedding import DEFAULT_DIMENSIONS, hash_embedding, input_tokens

OPENAI_MAX_INPUTS = 2048
OPENAI_MAX_TOKENS = 300_000  # summed over a request's inputs
GEMINI_MAX_INPUTS = 100
_MAX_DIMENSIONS = 8192
_GEMINI_TOO_MANY = (
    "* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\n"
)


def register(add: AddRoute, state: ServerState) -> None:
    """Add the embeddings routes (before Gemini's catch-all ``models/{target}`` route)."""
    routes = _Routes(state)
    add("POST", "/v1/embeddings", routes.openai)
    add("POST", "/openai/v1/embeddings", routes.openai)
    add("POST", "/openai/deployments/{deployment}/embeddings", routes.azure)
    add("POST", "/v1beta/models/{model}:batchEmbedContents", routes.gemini)


class _Routes:
    def __init__(self, state: ServerState) -> None:
        self._state = state

    # -- OpenAI ------------------------------------------------------------------------

    async def openai(self, request: web.Request) -> web.StreamResponse:
        body, request_id = await self._admit_openai(request)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise Rejected(_error(400, "you must provide a model parameter", request_id))
        return await self._answer_openai(request, request_id, body, model)

    async def azure(self, request: web.Request) -> web.StreamResponse:
        body, request_id = await self._admit_openai(request)
        if not request.query.get("api-version"):
            message = "The api-version query parameter (?api-version=) is required."
            raise Rejected(_error(400, message, request_id, code="MissingApiVersionParameter"))
        # The deployment picks the model, as on Azure.
        return await self._answer_openai(
            request, request_id, body, request.match_info["deployment"]
        )

    async def _admit_openai(self, request: web.Request) -> tuple[dict[str, Any], str]:
        record = await _record(request)
        self._state.record(record)
        request_id = "req_" + self._state.new_id()
        key = self._state.api_key
        if key is not None and _given_key(record.headers) != key:
            message = invalid_key_message() if _given_key(record.headers) else "No API key."
            raise Rejected(_error(401, message, request_id, code="invalid_api_key"))
        if not isinstance(record.json, dict):
            raise Rejected(_error(400, "We could not parse the JSON body.", request_id))
        return record.json, request_id

    async def _answer_openai(
        self, request: web.Request, request_id: str, body: Mapping[str, Any], model: str
    ) -> web.StreamResponse:
        texts = _openai_inputs(body, request_id)
        dimensions = _dimensions(body.get("dimensions"), request_id)
        encoding = body.get("encoding_format", "float")
        if encoding not in ("float", "base64"):
            message = f"Invalid value for 'encoding_format': {encoding!r}."
            raise Rejected(_error(400, message, request_id, param="encoding_format"))
        fault = self._state.pop_fault()
        early = await _early_fault(
            request, fault, _fault_status(fault, request_id) if fault else None
        )
        if early is not None:
            return early
        data = [
            {"object": "embedding", "index": i, "embedding": _encoded(t, dimensions, encoding)}
            for i, t in enumerate(texts)
        ]
        tokens = sum(input_tokens(t) for t in texts)
        reply = {
            "object": "list",
            "data": data,
            "model": model,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }
        return await _whole(request, dumps(reply).encode(), {"x-request-id": request_id}, fault)

    # -- Gemini ------------------------------------------------------------------------

    async def gemini(self, request: web.Request) -> web.StreamResponse:
        record = await _record(request)
        self._state.record(record)
        key = self._state.api_key
        if key is not None:
            given = record.headers.get("x-goog-api-key") or record.query.get("key")
            if given is None:
                raise Rejected(google_error(403, _NO_KEY))
            if given != key:
                raise Rejected(_bad_key())
        body = record.json
        if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
            raise Rejected(google_error(400, "* BatchEmbedContentsRequest.requests: required\n"))
        model = "models/" + request.match_info["model"]
        entries: list[Any] = body["requests"]
        if len(entries) > GEMINI_MAX_INPUTS:
            raise Rejected(google_error(400, _GEMINI_TOO_MANY))
        vectors = [_gemini_vector(entry, model, i) for i, entry in enumerate(entries)]
        fault = self._state.pop_fault()
        early = await _early_fault(request, fault, _google_fault(fault) if fault else None)
        if early is not None:
            return early
        reply = dumps({"embeddings": [{"values": v} for v in vectors]}).encode()
        return await _whole(request, reply, {}, fault)


async def _early_fault(
    request: web.Request, fault: Fault | None, status_answer: web.Response | None
) -> web.StreamResponse | None:
    """The answer a fault gives before any vector is made, or None to answer normally."""
    if fault is None:
        return None
    if fault.kind == "status":
        return status_answer
    if fault.kind == "disconnect":
        return _drop(request, web.StreamResponse())
    if fault.kind == "slow_first_byte":
        await asyncio.sleep(fault.seconds)
    return None


def _openai_inputs(body: Mapping[str, Any], request_id: str) -> list[str]:
    value = body.get("input")
    texts = [value] if isinstance(value, str) else value
    invalid = "'$.input' is invalid. Please check the API reference: https://platform.openai.com/docs/api-reference."
    if not isinstance(texts, list) or not texts:
        raise Rejected(_error(400, invalid, request_id, param="input"))
    if len(texts) > OPENAI_MAX_INPUTS:
        message = f"'input' : maximum {OPENAI_MAX_INPUTS} inputs per request, got {len(texts)}."
        raise Rejected(_error(400, message, request_id, param="input"))
    if not all(isinstance(t, str) and t for t in texts):
        raise Rejected(_error(400, invalid, request_id, param="input"))
    tokens = sum(input_tokens(t) for t in texts)
    if tokens > OPENAI_MAX_TOKENS:
        message = f"Requested {tokens} tokens, max {OPENAI_MAX_TOKENS} tokens per request"
        raise Rejected(_error(400, message, request_id, param="input"))
    return texts


def _dimensions(value: object, request_id: str) -> int:
    if value is None:
        return DEFAULT_DIMENSIONS
    if not _whole_number(value) or not 1 <= value <= _MAX_DIMENSIONS:
        message = f"Invalid value for 'dimensions': {value!r}."
        raise Rejected(_error(400, message, request_id, param="dimensions"))
    return value


def _encoded(text: str, dimensions: int, encoding: str) -> list[float] | str:
    vector = hash_embedding(text, dimensions)
    if encoding == "float":
        return vector
    return base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")


def _gemini_vector(entry: object, model: str, index: int) -> list[float]:
    where = f"* BatchEmbedContentsRequest.requests[{index}]"
    if not isinstance(entry, dict):
        raise Rejected(google_error(400, f"{where}: must be an object\n"))
    if entry.get("model") != model:
        message = f"{where}.model: unexpected model name format or model mismatch\n"
        raise Rejected(google_error(400, message))
    content = entry.get("content")
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not parts:
        raise Rejected(google_error(400, f"{where}.content: contents is not specified\n"))
    text = " ".join(
        p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)
    )
    if not text:
        raise Rejected(google_error(400, f"{where}.content: text is empty\n"))
    dimensions = entry.get("outputDimensionality", DEFAULT_DIMENSIONS)
    if (
        isinstance(dimensions, bool)
        or not isinstance(dimensions, int)
        or not 1 <= dimensions <= _MAX_DIMENSIONS
    ):
        raise Rejected(google_error(400, f"{where}.output_dimensionality: invalid\n"))
    return hash_embedding(text, dimensions)


def _whole_number(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
