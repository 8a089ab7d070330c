"""The aiohttp application behind :class:`FakeOpenAIServer`: routes, auth, replies, faults.

Imported only when a server starts, so ``import callm.testing`` stays cheap.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Literal

from aiohttp import web

from . import local_model
from ._http import (
    _SSE_HEADERS,
    AddRoute,
    Handler,
    Rejected,
    _body,
    _drop,
    _error,
    _fault_status,
    _given_key,
    _json_response,
    _reply,
    _whole,
    record_request,
)
from ._script import Fault, RecordedRequest, invalid_key_message, model_not_found_message
from ._state import ServerState
from ._wire import DONE, WireContext, dumps, json_body, sse_events

_MODEL_CREATED = 1_700_000_000
_MAX_BODY = 64 * 1024 * 1024  # base64 images make bodies big
_WRITE_SIZE = 64 * 1024  # a stream is written in pieces of about this many characters
_NO_KEY = (
    "You didn't provide an API key. You need to provide your API key in an Authorization "
    "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
)
_NO_API_VERSION = "The api-version query parameter (?api-version=) is required for all requests."


def build_app(state: ServerState) -> web.Application:
    """The application, with one route per endpoint and an OpenAI-style 404 for the rest."""
    routes = _Routes(state)
    app = web.Application(middlewares=[_answer_rejections], client_max_size=_MAX_BODY)
    add = app.router.add_route
    for prefix in ("/v1", "/openai/v1"):
        add("POST", f"{prefix}/chat/completions", routes.chat)
        add("GET", f"{prefix}/models", routes.models)
        add("GET", prefix + "/models/{model:.+}", routes.model)
    add("POST", "/v1/completions", routes.text)
    add("POST", "/openai/deployments/{deployment}/chat/completions", routes.azure_chat)
    for register in _protocol_routes():
        register(add, state)
    add("*", "/{tail:.*}", routes.unknown)
    return app


def _protocol_routes() -> list[Callable[[AddRoute, ServerState], None]]:
    """The other protocols served beside OpenAI Chat, each from a module of its own."""
    from . import (
        _anthropic_fake,
        _batch_fake,
        _bedrock_fake,
        _cloud_embed_fake,
        _embed_fake,
        _gemini_fake,
        _google_oauth,
        _responses_fake,
    )

    # The batch and embeddings routes first: Gemini's generation route would match
    # ":batchGenerateContent" and ":batchEmbedContents".
    return [
        _batch_fake.register,
        _embed_fake.register,
        _cloud_embed_fake.register,
        _anthropic_fake.register,
        _gemini_fake.register,
        _responses_fake.register,
        _bedrock_fake.register,
        _google_oauth.register,
    ]


@web.middleware
async def _answer_rejections(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Rejected as rejected:
        return rejected.response


class _Routes:
    """The request handlers; each records the request first, then checks auth."""

    def __init__(self, state: ServerState) -> None:
        self._state = state
        self._models = {m: _model_object(m) for m in state.models}
        self._model_list = dumps({"object": "list", "data": list(self._models.values())}).encode()
        self._anthropic_model_list = _anthropic_models(state.models)

    async def chat(self, request: web.Request) -> web.StreamResponse:
        record, request_id = await self._admit(request)
        body = _body(record, request_id)
        model = body.get("model")
        if not isinstance(model, str) or not model:
            raise Rejected(_error(400, "you must provide a model parameter", request_id))
        _require_messages(body, request_id)
        return await self._generate(request, request_id, body, "chat", model)

    async def azure_chat(self, request: web.Request) -> web.StreamResponse:
        record, request_id = await self._admit(request)
        if not record.query.get("api-version"):
            error = _error(400, _NO_API_VERSION, request_id, code="MissingApiVersionParameter")
            raise Rejected(error)
        body = _body(record, request_id)
        _require_messages(body, request_id)
        # The deployment picks the model; ``model`` in the body is ignored, as on Azure.
        model = request.match_info["deployment"]
        return await self._generate(request, request_id, body, "chat", model)

    async def text(self, request: web.Request) -> web.StreamResponse:
        record, request_id = await self._admit(request)
        body = _body(record, request_id)
        model = body.get("model")
        prompt = body.get("prompt")
        if isinstance(prompt, list):
            prompt = "\n".join(p for p in prompt if isinstance(p, str))
        if not isinstance(model, str) or not model or not isinstance(prompt, str):
            message = "Missing required parameters: 'model' and 'prompt' (a string)."
            raise Rejected(_error(400, message, request_id, code="missing_required_parameter"))
        # The offline model speaks chat: the prompt becomes one user message.
        chat = {**body, "messages": [{"role": "user", "content": prompt}]}
        return await self._generate(request, request_id, chat, "text", model)

    async def models(self, request: web.Request) -> web.StreamResponse:
        record, request_id = await self._admit(request)
        if "anthropic-version" in record.headers:  # Anthropic lists models at the same path
            return _json_response(self._anthropic_model_list, request_id)
        return _json_response(self._model_list, request_id)

    async def model(self, request: web.Request) -> web.StreamResponse:
        _, request_id = await self._admit(request)
        name = request.match_info["model"]
        if name not in self._models:
            message = model_not_found_message(name)
            raise Rejected(_error(404, message, request_id, code="model_not_found"))
        return _json_response(dumps(self._models[name]).encode(), request_id)

    async def unknown(self, request: web.Request) -> web.StreamResponse:
        _, request_id = await self._admit(request)
        # OpenAI's own wording for a route it does not have.
        message = f"Invalid URL ({request.method} {request.path})"
        raise Rejected(_error(404, message, request_id))

    async def _admit(self, request: web.Request) -> tuple[RecordedRequest, str]:
        """Record the request (always, even if it is then refused) and check its key."""
        record = await record_request(request)
        self._state.record(record)
        request_id = "req_" + self._state.new_id()
        key = self._state.api_key
        if key is not None:
            given = _given_key(record.headers)
            if given != key:
                message = _NO_KEY if given is None else invalid_key_message()
                raise Rejected(_error(401, message, request_id, code="invalid_api_key"))
        return record, request_id

    async def _generate(
        self,
        request: web.Request,
        request_id: str,
        body: dict[str, object],
        kind: Literal["chat", "text"],
        model: str,
    ) -> web.StreamResponse:
        """Answer with the next scripted item, or the offline model when none is queued."""
        n = _choice_count(body, request_id)  # may refuse: do it before taking an item
        item = self._state.pop()
        fault = item if isinstance(item, Fault) else None
        if fault is not None and fault.kind == "status":
            return _fault_status(fault, request_id)
        if fault is not None and fault.kind == "disconnect":
            return _drop(request, web.StreamResponse())
        reply = _reply(item, body)
        ctx = WireContext(
            kind=kind,
            id=("chatcmpl-" if kind == "chat" else "cmpl-") + self._state.new_id(),
            created=int(time.time()),
            model=reply.model or model,
            n=n,
            include_usage=_include_usage(body),
            prompt_tokens=local_model.prompt_tokens(body),
        )
        headers = {"x-request-id": request_id, **reply.headers}
        if fault is not None and fault.kind == "slow_first_byte":
            await asyncio.sleep(fault.seconds)
        if body.get("stream") is True:
            return await _stream(request, sse_events(reply, ctx), headers, fault)
        return await _whole(request, json_body(reply, ctx), headers, fault)


# --- requests ----------------------------------------------------------------------------


def _anthropic_models(models: Sequence[str]) -> bytes:
    """Anthropic's ``GET /v1/models`` page: typed model objects and paging ids."""
    data = [
        {"type": "model", "id": m, "display_name": m, "created_at": "2025-01-01T00:00:00Z"}
        for m in models
    ]
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return dumps({"data": data, "has_more": False, "first_id": first, "last_id": last}).encode()


def _require_messages(body: Mapping[str, object], request_id: str) -> None:
    if not isinstance(body.get("messages"), list):
        message = "Missing required parameter: 'messages'."
        code = "missing_required_parameter"
        raise Rejected(_error(400, message, request_id, param="messages", code=code))


def _choice_count(body: Mapping[str, object], request_id: str) -> int:
    n = body.get("n")
    if n is None:
        return 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128:
        message = f"Invalid 'n': expected an integer between 1 and 128, got {n!r}."
        raise Rejected(_error(400, message, request_id, param="n", code="invalid_value"))
    return n


def _include_usage(body: Mapping[str, object]) -> bool:
    options = body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


def _model_object(model: str) -> dict[str, object]:
    return {"id": model, "object": "model", "created": _MODEL_CREATED, "owned_by": "callm"}


# --- responses ---------------------------------------------------------------------------


async def _stream(
    request: web.Request, frames: Iterable[str], headers: dict[str, str], fault: Fault | None
) -> web.StreamResponse:
    """An SSE answer, written as it is made unless a fault needs to cut it."""
    response = web.StreamResponse(headers={**_SSE_HEADERS, **headers})
    response.enable_chunked_encoding()
    await response.prepare(request)
    frames = iter(frames)
    if fault is None or fault.kind == "slow_first_byte":
        await _write_frames(response, frames, DONE)
        await response.write_eof()
        return response
    before = list(itertools.islice(frames, fault.after_chunks))
    if before:
        await response.write("".join(before).encode())
    if fault.kind == "drop_mid_stream":
        return _drop(request, response)
    if fault.kind == "stall":
        await asyncio.sleep(fault.seconds)
    if fault.kind == "stream_error":
        await response.write(f"data: {dumps({'error': fault.error})}\n\n{DONE}".encode())
    elif fault.kind == "malformed_json":
        await response.write(("data: {not json\n\n" + DONE).encode())
    else:  # after a stall
        await _write_frames(response, frames, DONE)
    await response.write_eof()
    return response


async def _write_frames(response: web.StreamResponse, frames: Iterator[str], end: str) -> None:
    """``frames`` then ``end``, about 64 KiB a write: few writes, and one piece in memory
    at a time — write() waits while the client is behind, so a long stream is never
    buffered whole."""
    batch: list[str] = []
    size = 0
    for frame in frames:
        batch.append(frame)
        size += len(frame)
        if size >= _WRITE_SIZE:
            await response.write("".join(batch).encode())
            batch, size = [], 0
    batch.append(end)
    await response.write("".join(batch).encode())
