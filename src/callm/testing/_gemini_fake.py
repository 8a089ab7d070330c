"""The fake's Google Gemini routes, under ``/v1beta`` as Google serves them.

* ``POST /v1beta/models/{model}:generateContent`` — one JSON reply.
* ``POST /v1beta/models/{model}:streamGenerateContent?alt=sse`` — ``data: {…}`` events
  framed with ``\\r\\n\\r\\n`` exactly as Google sends them, no ``[DONE]``: the last chunk
  carries ``finishReason``. Without ``alt=sse`` the reply is one streamed JSON *array* of the
  same chunks, as the real API sends it.
* ``POST /v1beta/models/{model}:countTokens`` (``contents`` or ``generateContentRequest``).
* ``GET /v1beta/models`` and ``GET /v1beta/models/{model}``: the server's models plus a
  few Gemini names.
* Vertex AI: ``POST /v1/projects/{p}/locations/{l}/publishers/google/models/{model}:…``,
  the same methods, signed in with an OAuth 2.0 bearer token (see ``_google_oauth``), and
  Model Garden's ``GET /v1beta1/publishers/google/models`` (``publisherModels``).

Auth is the ``x-goog-api-key`` header or ``?key=``. A wrong key is a 400
``INVALID_ARGUMENT`` with an ``API_KEY_INVALID`` ErrorInfo detail, and a missing one a 403
``PERMISSION_DENIED``, as on Google. Queued ``Reply`` / ``Fault`` items apply as on the
OpenAI routes; a status Fault keeps its code and message in Google's
``{"error": {code, message, status, details}}`` shape (429 adds ``QuotaFailure`` and, given a
retry-after, ``RetryInfo``); ``stream_error`` sends an error object mid-stream (with
``raw``, as un-framed JSON lines; a plain error answer when not streaming). With nothing
queued, the offline model answers: the Gemini request is translated to the Chat
Completions shape it understands. Function calls
carry no id (as Gemini's usually do not) and the first one a ``thoughtSignature``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from aiohttp import web

from .._core.json import as_object, get_int, get_list, get_object
from . import local_model
from ._google_oauth import check_token
from ._http import AddRoute, Rejected, _drop, _whole, record_request
from ._script import Fault, Reply, split_fragments
from ._state import ServerState
from ._wire import dumps

_JSON = "application/json; charset=UTF-8"
_SSE = {"Content-Type": "text/event-stream", "Content-Disposition": "attachment"}
_CRLF2 = "\r\n\r\n"
GEMINI_MODELS = ("gemini-2.5-flash", "gemini-2.5-pro", "gemini-2.0-flash")
VERTEX_PREFIX = "/v1/projects/{project}/locations/{location}"
FAKE_SIGNATURE = "Y2FsbG0tZmFrZS10aG91Z2h0LXNpZ25hdHVyZQ=="
_STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_BAD_KEY = "API key not valid. Please pass a valid API key."
_NO_KEY = (
    "Method doesn't allow unregistered callers (callers without established identity). "
    "Please use API Key or other form of API consumer identity to call this API."
)
_FINISH = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS"}
_FINISH["content_filter"] = "SAFETY"


def register(add: AddRoute, state: ServerState) -> None:
    """Add the Gemini routes to the fake server's application."""
    routes = _Routes(state)
    add("GET", "/v1beta/models", routes.models)
    add("GET", "/v1beta/models/{model}", routes.model)
    add("POST", "/v1beta/models/{target}", routes.post)
    # Vertex AI: the same protocol under a project's path, with OAuth 2.0 bearer tokens.
    vertex = _Routes(state, vertex=True)
    add("POST", VERTEX_PREFIX + "/publishers/google/models/{target}", vertex.post)
    add("GET", "/v1beta1/publishers/google/models", vertex.publisher_models)


def google_error(
    status: int, message: str, details: list[dict[str, object]] | None = None
) -> web.Response:
    """An error answer in Google's shape."""
    error: dict[str, object] = {"code": status, "message": message, "status": _status_name(status)}
    if details:
        error["details"] = details
    return web.Response(
        status=status, body=dumps({"error": error}), content_type="application/json"
    )


def _status_name(status: int) -> str:
    return _STATUS_NAMES.get(status) or ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION")


def _bad_key() -> web.Response:
    info: dict[str, object] = {
        "@type": "type.googleapis.com/google.rpc.ErrorInfo",
        "reason": "API_KEY_INVALID",
        "domain": "googleapis.com",
        "metadata": {"service": "generativelanguage.googleapis.com"},
    }
    localized: dict[str, object] = {
        "@type": "type.googleapis.com/google.rpc.LocalizedMessage",
        "locale": "en-US",
        "message": _BAD_KEY,
    }
    return google_error(400, _BAD_KEY, [info, localized])


class _Routes:
    def __init__(self, state: ServerState, *, vertex: bool = False) -> None:
        self._state = state
        self._vertex = vertex
        names = dict.fromkeys((*state.models, *GEMINI_MODELS))
        self._models = {name: _model_object(name) for name in names}

    async def _admit(self, request: web.Request) -> object:
        """Record the request, check its key; returns the parsed JSON body (or None)."""
        record = await record_request(request)
        self._state.record(record)
        if self._vertex:
            refused = check_token(self._state, record.headers)
            if refused is not None:
                raise Rejected(refused)
            return record.json
        key = self._state.api_key
        if key is not None:
            given = record.headers.get("x-goog-api-key") or record.query.get("key")
            if given is None:
                raise Rejected(google_error(403, _NO_KEY))
            if given != key:
                raise Rejected(_bad_key())
        return record.json

    async def models(self, request: web.Request) -> web.StreamResponse:
        await self._admit(request)
        return _json({"models": list(self._models.values())})

    async def publisher_models(self, request: web.Request) -> web.StreamResponse:
        """Vertex AI's list of Google's models, in Model Garden's shape."""
        await self._admit(request)
        listed = [
            {
                "name": f"publishers/google/models/{name}",
                "versionId": "001",
                "openSourceCategory": "PROPRIETARY",
                "launchStage": "GA",
            }
            for name in self._models
        ]
        return _json({"publisherModels": listed})

    async def model(self, request: web.Request) -> web.StreamResponse:
        await self._admit(request)
        name = request.match_info["model"]
        if name not in self._models:
            raise Rejected(google_error(404, f"models/{name} is not found for API version v1beta"))
        return _json(self._models[name])

    async def post(self, request: web.Request) -> web.StreamResponse:
        body = await self._admit(request)
        model, _, method = request.match_info["target"].rpartition(":")
        if method not in ("generateContent", "streamGenerateContent", "countTokens") or not model:
            raise Rejected(google_error(404, f"Method not found: {method or '(none)'}."))
        if not isinstance(body, dict):
            raise Rejected(google_error(400, "Invalid JSON payload received."))
        if method == "countTokens":
            return _count_tokens(body)
        if not get_list(body, "contents"):
            raise Rejected(
                google_error(400, "* GenerateContentRequest.contents: contents is not specified\n")
            )
        return await self._generate(request, body, model, method == "streamGenerateContent")

    async def _generate(
        self, request: web.Request, body: Mapping[str, object], model: str, stream: bool
    ) -> web.StreamResponse:
        chat = to_chat(body)
        n = chat.get("n", 1)
        if not isinstance(n, int) or not 1 <= n <= 8:
            raise Rejected(google_error(400, "candidateCount must be between 1 and 8."))
        item = self._state.pop()
        fault = item if isinstance(item, Fault) else None
        if fault is not None and fault.kind == "status":
            return _fault_status(fault)
        if fault is not None and fault.kind == "disconnect":
            return _drop(request, web.StreamResponse())
        reply = item if isinstance(item, Reply) else (fault and fault.reply)
        reply = reply or local_model.reply_to(chat)
        ctx = _Ctx(
            "resp-" + self._state.new_id(),
            reply.model or model,
            n,
            local_model.prompt_tokens(chat),
        )
        if fault is not None and fault.kind == "slow_first_byte":
            await asyncio.sleep(fault.seconds)
        headers = dict(reply.headers)
        if not stream:
            if fault is not None and fault.kind == "stream_error":
                return google_error(fault.status_code, str((fault.error or {}).get("message")))
            return await _whole(request, dumps(whole_body(reply, ctx)).encode(), headers, fault)
        sse = request.query.get("alt") == "sse"
        return await _stream(request, stream_chunks(reply, ctx), headers, fault, sse)


def _json(value: object) -> web.Response:
    return web.Response(body=dumps(value).encode(), headers={"Content-Type": _JSON})


def _model_object(name: str) -> dict[str, object]:
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": name,
        "description": f"{name} served by callm's fake server",
        "inputTokenLimit": 1048576,
        "outputTokenLimit": 65536,
        "supportedGenerationMethods": ["generateContent", "countTokens"],
        "temperature": 1.0,
        "topP": 0.95,
        "topK": 64,
    }


def _fault_status(fault: Fault) -> web.Response:
    status = fault.status_code
    message = str((fault.error or {}).get("message") or "")
    details: list[dict[str, object]] = []
    if status == 429:
        violation = {"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}
        details.append(
            {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [violation]}
        )
        delay = fault.headers.get("retry-after")
        if delay is not None:
            details.append(
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{delay}s"}
            )
    response = google_error(status, message, details)
    response.headers.update(fault.headers)
    return response


def _count_tokens(body: Mapping[str, object]) -> web.Response:
    chat = to_chat(as_object(body.get("generateContentRequest")) or body)
    total = local_model.prompt_tokens(chat)
    details = [{"modality": "TEXT", "tokenCount": total}]
    return _json({"totalTokens": total, "promptTokensDetails": details})


# --- Gemini request → the offline model's Chat Completions shape -----------------------


def _get(data: object, camel: str) -> object:
    """A field by its lowerCamelCase name or its proto snake_case one (both are accepted)."""
    if not isinstance(data, Mapping):
        return None
    if camel in data:
        return data[camel]
    snake = "".join("_" + c.lower() if c.isupper() else c for c in camel)
    return data.get(snake)


def _get_object(data: object, camel: str) -> Mapping[str, object]:
    return as_object(_get(data, camel)) or {}


def _get_list(data: object, camel: str) -> Sequence[object]:
    value = _get(data, camel)
    return value if isinstance(value, list) else ()


def to_chat(body: Mapping[str, object]) -> dict[str, object]:
    """The Chat Completions request the offline model reads for a Gemini request."""
    messages: list[dict[str, object]] = []
    system = _texts(_get_list(_get(body, "systemInstruction"), "parts"))
    if system:
        messages.append({"role": "system", "content": system})
    for content in _get_list(body, "contents"):
        if isinstance(content, Mapping):
            messages.extend(_chat_messages(content))
    chat: dict[str, object] = {"messages": messages}
    tools = [
        {"type": "function", "function": _function(d)}
        for tool in _get_list(body, "tools")
        for d in _get_list(tool, "functionDeclarations")
        if isinstance(d, Mapping)
    ]
    if tools:
        chat["tools"] = tools
    chat.update(_tool_choice(_get(_get(body, "toolConfig"), "functionCallingConfig")))
    chat.update(_config(_get_object(body, "generationConfig")))
    return chat


def _texts(parts: Sequence[object]) -> str:
    return "".join(
        str(p["text"])
        for p in parts
        if isinstance(p, Mapping) and "text" in p and not p.get("thought")
    )


def _chat_messages(content: Mapping[str, object]) -> list[dict[str, object]]:
    parts = [p for p in get_list(content, "parts") if isinstance(p, Mapping)]
    if content.get("role") == "model":
        calls = [call for p in parts if (call := _get_object(p, "functionCall"))]
        message: dict[str, object] = {"role": "assistant", "content": _texts(parts)}
        if calls:
            message["tool_calls"] = [_chat_call(c) for c in calls]
        return [message]
    out: list[dict[str, object]] = []
    for part in parts:
        response = _get(part, "functionResponse")
        if isinstance(response, Mapping):
            ident = response.get("id") or f"call_{response.get('name')}"
            out.append({"role": "tool", "tool_call_id": ident, "content": _result(response)})
    media = [{"type": "image_url"} for p in parts if _get(p, "inlineData") or _get(p, "fileData")]
    if any("text" in p for p in parts) or media:
        out.append({"role": "user", "content": [{"type": "text", "text": _texts(parts)}, *media]})
    return out


def _chat_call(call: Mapping[str, object]) -> dict[str, object]:
    function = {"name": call.get("name"), "arguments": json.dumps(call.get("args") or {})}
    return {
        "id": call.get("id") or f"call_{call.get('name')}",
        "type": "function",
        "function": function,
    }


def _result(response: Mapping[str, object]) -> str:
    value = response.get("response")
    if isinstance(value, Mapping) and len(value) == 1:
        (inner,) = value.values()
        return inner if isinstance(inner, str) else json.dumps(inner)
    return json.dumps(value)


def _function(declaration: Mapping[str, object]) -> dict[str, object]:
    schema = _get(declaration, "parametersJsonSchema")
    if schema is None:
        schema = _lower_types(_get(declaration, "parameters") or {})
    return {
        "name": declaration.get("name"),
        "description": declaration.get("description") or "",
        "parameters": schema,
    }


def _lower_types(schema: object) -> object:
    """OpenAPI-subset schemas spell types in capitals; the offline model reads JSON Schema."""
    if isinstance(schema, list):
        return [_lower_types(s) for s in schema]
    if not isinstance(schema, Mapping):
        return schema
    out = {k: _lower_types(v) for k, v in schema.items()}
    kind = out.get("type")
    if isinstance(kind, str):
        out["type"] = kind.lower()
    return out


def _tool_choice(config: object) -> dict[str, object]:
    mode = str(_get(config, "mode") or "AUTO").upper()
    names = _get_list(config, "allowedFunctionNames")
    if mode == "NONE":
        return {"tool_choice": "none"}
    if mode in ("ANY", "VALIDATED") and len(names) == 1:
        return {"tool_choice": {"type": "function", "function": {"name": names[0]}}}
    return {"tool_choice": "required" if mode == "ANY" else "auto"}


def _config(config: Mapping[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    for camel, key in (("maxOutputTokens", "max_tokens"), ("stopSequences", "stop")):
        if _get(config, camel) is not None:
            out[key] = _get(config, camel)
    if _get(config, "candidateCount") is not None:
        out["n"] = _get(config, "candidateCount")
    if _get(config, "responseMimeType") == "application/json":
        schema = _get(config, "responseJsonSchema")
        if schema is None and _get(config, "responseSchema") is not None:
            schema = _lower_types(_get(config, "responseSchema"))
        if schema is None:
            out["response_format"] = {"type": "json_object"}
        else:
            out["response_format"] = {"type": "json_schema", "json_schema": {"schema": schema}}
    if _get(_get(config, "thinkingConfig"), "includeThoughts"):
        out["reasoning_effort"] = "low"
    return out


# --- a Reply on Gemini's wire ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Ctx:
    response_id: str
    model: str
    n: int
    prompt_tokens: int


def _finish(reply: Reply) -> str:
    if reply.finish_reason is not None:
        return _FINISH.get(reply.finish_reason, reply.finish_reason.upper())
    return "SAFETY" if reply.refusal is not None else "STOP"


def _usage(reply: Reply, ctx: _Ctx, produced: int, thoughts: int) -> dict[str, object]:
    given = reply.usage
    if given is not None and "promptTokenCount" in given:
        return dict(given)
    if given is not None:  # OpenAI-shaped: translate
        reasoning = get_int(get_object(given, "completion_tokens_details"), "reasoning_tokens")
        cached = get_int(get_object(given, "prompt_tokens_details"), "cached_tokens")
        prompt, thoughts = get_int(given, "prompt_tokens"), reasoning
        produced = get_int(given, "completion_tokens") - reasoning
    else:
        prompt, cached = ctx.prompt_tokens, 0
    usage: dict[str, object] = {"promptTokenCount": prompt}
    usage["candidatesTokenCount"] = produced * ctx.n
    usage["totalTokenCount"] = prompt + (produced + thoughts) * ctx.n
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts * ctx.n
    if cached:
        usage["cachedContentTokenCount"] = cached
    return usage


def _calls(reply: Reply) -> list[dict[str, object]]:
    parts = []
    for number, call in enumerate(reply.tool_calls):
        args = call.arguments if not isinstance(call.arguments, str) else _loose(call.arguments)
        part: dict[str, object] = {"functionCall": {"name": call.name, "args": args}}
        if number == 0:
            part["thoughtSignature"] = FAKE_SIGNATURE
        parts.append(part)
    return parts


def _loose(text: str) -> object:
    # Gemini sends args as a JSON object; a scripted malformed string is sent as a string.
    try:
        return json.loads(text)
    except ValueError:
        return text


def _response(
    ctx: _Ctx, candidates: list[dict[str, object]], usage: Mapping[str, object]
) -> dict[str, object]:
    return {
        "candidates": candidates,
        "usageMetadata": usage,
        "modelVersion": ctx.model,
        "responseId": ctx.response_id,
    }


def _candidates(
    ctx: _Ctx, parts: list[dict[str, object]], extra: Mapping[str, object]
) -> list[dict[str, object]]:
    content = {"parts": parts, "role": "model"}
    return [{"content": content, **extra, "index": i} for i in range(ctx.n)]


def _finish_fields(reply: Reply) -> dict[str, object]:
    fields: dict[str, object] = {"finishReason": _finish(reply)}
    if reply.refusal is not None:
        fields["finishMessage"] = reply.refusal
    return fields


def whole_body(reply: Reply, ctx: _Ctx) -> dict[str, object]:
    """The whole ``generateContent`` reply."""
    parts: list[dict[str, object]] = []
    thoughts = split_fragments(reply.reasoning) if reply.reasoning else []
    if reply.reasoning:
        parts.append({"text": reply.reasoning, "thought": True})
    if reply.full_text():
        parts.append({"text": reply.full_text()})
    parts += _calls(reply)
    produced = len(reply.fragments()) + len(reply.tool_calls)
    usage = _usage(reply, ctx, produced, len(thoughts))
    return _response(ctx, _candidates(ctx, parts, _finish_fields(reply)), usage)


def stream_chunks(reply: Reply, ctx: _Ctx) -> list[str]:
    """Every chunk of the stream as JSON text; usage is a running total on each."""
    steps: list[list[dict[str, object]]] = []
    thoughts = split_fragments(reply.reasoning) if reply.reasoning else []
    steps += [[{"text": t, "thought": True}] for t in thoughts]
    steps += [[{"text": f}] for f in reply.fragments()]
    if reply.tool_calls:
        steps.append(_calls(reply))
    chunks = []
    produced = thinking = 0
    for parts in steps:
        thinking += bool(parts[0].get("thought"))
        produced += len(parts) if not parts[0].get("thought") else 0
        usage = _usage(reply, ctx, produced, thinking)
        chunks.append(dumps(_response(ctx, _candidates(ctx, parts, {}), usage)))
    final = _candidates(ctx, [{"text": ""}], _finish_fields(reply))
    chunks.append(dumps(_response(ctx, final, _usage(reply, ctx, produced, thinking))))
    return chunks


async def _stream(
    request: web.Request,
    chunks: list[str],
    headers: dict[str, str],
    fault: Fault | None,
    sse: bool,
) -> web.StreamResponse:
    """SSE (``alt=sse``) or a JSON array, cut or spoiled as the fault says."""
    frames = [
        f"data: {c}{_CRLF2}" if sse else ("[" if i == 0 else ",\r\n") + c
        for i, c in enumerate(chunks)
    ]
    end = "" if sse else "]"
    response = web.StreamResponse(headers={**(_SSE if sse else {"Content-Type": _JSON}), **headers})
    response.enable_chunked_encoding()
    await response.prepare(request)
    if fault is None or fault.kind == "slow_first_byte":
        await response.write(("".join(frames) + end).encode())
        await response.write_eof()
        return response
    cut = min(fault.after_chunks, len(frames))
    if cut:
        await response.write("".join(frames[:cut]).encode())
    if fault.kind == "drop_mid_stream":
        return _drop(request, response)
    if fault.kind == "stall":
        await asyncio.sleep(fault.seconds)
        rest = "".join(frames[cut:]) + end
    else:
        rest = _spoiled(fault, sse, first=cut == 0)
    await response.write(rest.encode())
    await response.write_eof()
    return response


def _spoiled(fault: Fault, sse: bool, *, first: bool) -> str:
    """The tail of a stream after a ``stream_error`` or ``malformed_json`` fault."""
    if fault.kind == "stream_error":
        message = str((fault.error or {}).get("message"))
        status = fault.status_code
        error = {"error": {"code": status, "message": message, "status": _status_name(status)}}
        if sse and fault.raw:  # un-framed and pretty-printed, as Gemini and Vertex send it
            return json.dumps(error, indent=2).replace("\n", "\r\n") + "\r\n"
        payload = dumps(error)
    else:
        payload = "{not json"
    if sse:
        return f"data: {payload}{_CRLF2}"
    return ("[" if first else ",\r\n") + payload + "]"
