"""The Google Gemini API protocol (``models/{model}:generateContent`` and friends).

Pure translation, no I/O, like every protocol module: :func:`encode` builds the HTTP
request, :func:`decode` reads a reply, :func:`stream_decoder` reads an ``alt=sse`` stream,
:func:`decode_failure` types an error answer. :func:`encode_count_tokens` /
:func:`decode_count_tokens` speak ``:countTokens``.

How callm's types map onto Gemini, and the choices made where they do not fit:

* System and developer messages become ``systemInstruction`` (text only), wherever they
  sit in the conversation. Assistant turns have role ``model``; user and tool turns role
  ``user``. Consecutive turns of one role are merged, as the API requires.
* A tool result becomes a ``functionResponse`` part whose ``response`` is
  ``{"output": content}`` (``{"error": content}`` when ``is_error``). Gemini needs the
  function *name*: it is ``ToolResult.name`` when set, else recovered from the earlier
  ``ToolCall`` with the same id.
* Gemini usually omits function-call ids; callm synthesises a stable one (the same for a
  streamed and a whole reply) and sends ids back on ``functionCall`` / ``functionResponse``.
* **Thought signatures.** A part's opaque ``thoughtSignature`` must go back on the same part.
  A thought part becomes ``Reasoning(text, signature=…)``. A signature on any other part
  (text, function call, image) is kept as a ``Reasoning("", signature=…)`` placed right
  before that part; encoding attaches it to the part that follows it again, so a history
  sent back is byte-for-byte what Gemini produced. (``Reasoning.id`` / ``.data`` from
  other protocols have no Gemini slot and are not sent.)
* Images and documents go inline (``inlineData``) from ``data:`` URLs, by reference
  (``fileData{fileUri, mimeType}``) otherwise (Files API, ``gs://`` or https URIs). The
  ``mimeType`` is the Document's ``media_type``, else guessed from the URL's suffix; a web
  URL whose type cannot be known that way is refused before sending (Gemini needs it), except
  Files API and YouTube URIs, which carry their own. ``Image.detail`` and
  ``Document.title`` have no Gemini field and are not sent.
* Tool schemas and ``response_format`` schemas are sent as standard JSON Schema
  (``parametersJsonSchema`` / ``responseJsonSchema``, which Gemini 2.0 and later accept,
  ``$ref`` and ``anyOf`` included). An endpoint whose quirks say ``openapi_schema`` sends
  the older OpenAPI-subset ``parameters`` / ``responseSchema`` instead, converted by
  :func:`to_openapi_schema`.
* ``Request.user`` and ``Tool.strict`` have no Gemini equivalent and are not sent.
* ``extra_body`` is merged last; its ``generationConfig`` / ``toolConfig`` dicts are merged
  key by key, so ``extra_body={"generationConfig": {"thinkingConfig": {…}}}`` keeps the
  sampling settings callm wrote.
* Usage: ``input_tokens`` = ``promptTokenCount`` + ``toolUsePromptTokenCount``;
  ``output_tokens`` = ``candidatesTokenCount`` + ``thoughtsTokenCount`` (thoughts are billed
  as output, and OpenAI counts reasoning inside output too), with ``reasoning_tokens`` the
  thoughts alone, so ``total_tokens`` equals Gemini's ``totalTokenCount``.
* Content callm does not model is kept: unknown parts (``executableCode``,
  ``codeExecutionResult``, ``toolCall`` …) as ``RawPart("gemini", <key>, part)``, sent back
  verbatim; candidate metadata (``groundingMetadata``, ``citationMetadata``,
  ``urlContextMetadata``) as ``RawPart("gemini", <key>, value)`` at the end of the content —
  information only, never sent back (Gemini's contents have no slot for it). The whole
  reply is always in ``Response.raw``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import TypedDict, assert_never
from urllib.parse import quote

from ..._core.endpoint import Endpoint
from ..._core.errors import APIResponseError, InvalidRequestError
from ..._core.http import HttpRequest, HttpResponse
from ..._core.options import ResponseFormat, ToolChoice
from ..._core.quirks import DEFAULT as DEFAULT_QUIRKS
from ..._core.quirks import Quirks
from ..._core.types import (
    Document,
    Image,
    Message,
    ModelInfo,
    Part,
    RawPart,
    Reasoning,
    Refusal,
    Request,
    Response,
    Text,
    Tool,
    ToolCall,
    ToolResult,
)
from .._shared.errors import parse_json, request_id_of
from .errors import decode_failure, typed_error
from .schema import to_openapi_schema
from .stream import METADATA_KEYS, PROTOCOL, GeminiStreamDecoder

__all__ = [
    "OPENAPI_SCHEMA",
    "PROTOCOL",
    "decode",
    "decode_count_tokens",
    "decode_failure",
    "decode_models",
    "encode",
    "encode_body",
    "encode_count_tokens",
    "encode_models",
    "stream_decoder",
    "to_openapi_schema",
]

# Quirk flag: send OpenAPI-subset schemas (``parameters`` / ``responseSchema``) instead of
# JSON Schema, for models or gateways that predate ``parametersJsonSchema``.
OPENAPI_SCHEMA = "gemini_openapi_schema"  # the older flag name of Quirks.openapi_schema

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_TOOL_CHOICE_MODES = {"auto": "AUTO", "none": "NONE", "required": "ANY"}
_MERGED_EXTRA_KEYS = ("generationConfig", "toolConfig")
_MODELS_PAGE = "pageSize=1000"  # the API's maximum: one page holds every model
# Hosts whose URIs Gemini resolves to a known media type (uploaded files, YouTube videos).
_TYPED_HOSTS = frozenset({"generativelanguage.googleapis.com", "youtube.com", "youtu.be"})

# --- encoding ---------------------------------------------------------------------------


def encode(endpoint: Endpoint, request: Request) -> HttpRequest:
    """Build ``POST …/models/{model}:generateContent`` (``:streamGenerateContent?alt=sse``)."""
    body = encode_body(endpoint, request)
    method = "streamGenerateContent" if request.stream else "generateContent"
    url = endpoint.url(_model_url(request.model) + ":" + method)
    if request.stream:
        url = _with_query(url, "alt=sse")
    return _post(endpoint, url, body, request.extra_headers)


def encode_body(endpoint: Endpoint, request: Request) -> dict[str, object]:
    """The JSON body of a ``generateContent`` request, ``extra_body`` merged in last."""
    quirks = endpoint.quirks
    contents, system = encode_messages(request.messages)
    body: dict[str, object] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": system}
    config = _generation_config(request, quirks)
    if config:
        body["generationConfig"] = config
    if request.tools:
        body["tools"] = [{"functionDeclarations": [encode_tool(t, quirks) for t in request.tools]}]
    if request.tool_choice is not None:
        body["toolConfig"] = encode_tool_choice(request.tool_choice)
    _merge_extra(body, request.extra_body)
    return body


def _with_query(url: str, query: str) -> str:
    """Append ``query`` to a URL that may already carry the endpoint's own query."""
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _model_path(model: str) -> str:
    # Full resource names ("models/x", "tunedModels/y") are used as given.
    if model.startswith(("models/", "tunedModels/")):
        return "/" + model
    return "/models/" + model


def _model_url(model: str) -> str:
    """The model's path in a URL: its id escaped, so a name holding "?", "/" or ".." stays
    one path segment (never a query, another resource or a key parameter)."""
    collection, _, name = _model_path(model)[1:].partition("/")
    return f"/{collection}/{quote(name, safe='')}"


def _post(
    endpoint: Endpoint, url: str, body: Mapping[str, object], extra: Mapping[str, str]
) -> HttpRequest:
    headers = endpoint.request_headers(extra or None)
    return HttpRequest("POST", url, headers, _dumps(body).encode(), endpoint.secret_headers)


def _merge_extra(body: dict[str, object], extra: Mapping[str, object]) -> None:
    for key, value in extra.items():
        current = body.get(key)
        if key in _MERGED_EXTRA_KEYS and isinstance(current, dict) and isinstance(value, Mapping):
            body[key] = {**current, **value}
        else:
            body[key] = value


def _generation_config(request: Request, quirks: Quirks) -> dict[str, object]:
    config: dict[str, object] = {}
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.top_k is not None:
        config["topK"] = request.top_k
    if request.max_tokens is not None:
        config["maxOutputTokens"] = request.max_tokens
    if request.stop:
        config["stopSequences"] = list(request.stop)
    if request.n is not None:
        config["candidateCount"] = request.n
    if request.seed is not None:
        config["seed"] = request.seed
    if request.response_format is not None:
        _encode_response_format(config, request.response_format, quirks)
    return config


def _encode_response_format(config: dict[str, object], fmt: ResponseFormat, quirks: Quirks) -> None:
    """A JSON schema (or any JSON) as Gemini's response MIME type and schema."""
    if fmt.type == "text":
        return
    if fmt.type is None:
        raise InvalidRequestError(
            f"response_format type {fmt.given_type!r} is not supported: "
            "use json_schema or json_object"
        )
    config["responseMimeType"] = "application/json"
    if fmt.type == "json_object":
        return
    schema = fmt.schema or {}
    if quirks.openapi_schema:
        config["responseSchema"] = to_openapi_schema(schema)
    else:
        config["responseJsonSchema"] = dict(schema)


# --- messages ---------------------------------------------------------------------------


class Content(TypedDict):
    """One turn of ``contents``, as it is built."""

    role: str
    parts: list[dict[str, object]]


def encode_messages(
    messages: Sequence[Message],
) -> tuple[list[Content], list[dict[str, object]]]:
    """``(contents, systemInstruction parts)``; consecutive same-role turns are merged."""
    names = _tool_names(messages)
    system: list[dict[str, object]] = []
    contents: list[Content] = []
    for message in messages:
        if message.role in ("system", "developer"):
            system.extend(_system_parts(message))
            continue
        if message.role == "assistant":
            role, parts = "model", _model_parts(message)
        elif message.role == "tool":
            role, parts = "user", _tool_parts(message, names)
        else:
            role, parts = "user", _user_parts(message, names)
        if not parts:  # an empty message carries nothing, and Gemini rejects empty turns
            continue
        if contents and contents[-1]["role"] == role:
            contents[-1]["parts"].extend(parts)
        else:
            contents.append({"role": role, "parts": parts})
    return contents, system


def _tool_names(messages: Iterable[Message]) -> dict[str, str]:
    """Function name by call id, from every tool call in the history."""
    return {
        part.id: part.name
        for message in messages
        for part in message.content
        if isinstance(part, ToolCall)
    }


def _system_parts(message: Message) -> list[dict[str, object]]:
    parts: list[dict[str, object]] = []
    for part in message.content:
        if not isinstance(part, Text):
            raise InvalidRequestError(
                f"a {message.role} message becomes Gemini's systemInstruction, which takes "
                f"text only, not a {part.kind} part"
            )
        parts.append({"text": part.text})
    return parts


def _user_parts(message: Message, names: Mapping[str, str]) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    for part in message.content:
        match part:
            case Text(text=text):
                out.append({"text": text})
            case Image(url=url):
                out.append(_media(url, None))
            case Document(url=url, media_type=media_type):
                out.append(_media(url, media_type))
            case ToolResult():
                out.append(_function_response(part, names))
            case RawPart():
                raw = _raw(part)
                if raw is not None:
                    out.append(raw)
            case ToolCall() | Reasoning() | Refusal():
                raise InvalidRequestError(
                    f"a {message.role} message cannot carry a {part.kind} part: tool calls, "
                    "reasoning and refusals belong in assistant messages"
                )
            case _:
                assert_never(part)
    return out


def _tool_parts(message: Message, names: Mapping[str, str]) -> list[dict[str, object]]:
    out = []
    for part in message.content:
        if not isinstance(part, ToolResult):
            raise InvalidRequestError(
                f"a tool message holds only tool results, not a {part.kind} part"
            )
        out.append(_function_response(part, names))
    return out


def _model_parts(message: Message) -> list[dict[str, object]]:
    """A model turn; a signature-only Reasoning goes onto the part that follows it."""
    out: list[dict[str, object]] = []
    pending: str | None = None
    for part in message.content:
        if isinstance(part, Reasoning) and part.protocol not in (None, "gemini"):
            continue  # another provider's thinking and signatures mean nothing to Gemini
        if isinstance(part, Reasoning) and not part.text:
            if part.signature:
                if pending:
                    out.append({"text": "", "thoughtSignature": pending})
                pending = part.signature
            continue
        encoded = _model_part(part)
        if encoded is None:
            continue
        if pending:
            if "thoughtSignature" in encoded:
                out.append({"text": "", "thoughtSignature": pending})
            else:
                encoded["thoughtSignature"] = pending
            pending = None
        out.append(encoded)
    if pending:  # Gemini itself ends turns this way: an empty text part with the signature
        out.append({"text": "", "thoughtSignature": pending})
    return out


def _model_part(part: Part) -> dict[str, object] | None:
    match part:
        case Text(text=text) | Refusal(text=text):
            return {"text": text}
        case Reasoning(text=text, signature=signature):
            thought: dict[str, object] = {"text": text, "thought": True}
            if signature:
                thought["thoughtSignature"] = signature
            return thought
        case ToolCall():
            return _function_call(part)
        case Image(url=url):
            return _media(url, None)
        case Document(url=url, media_type=media_type):
            return _media(url, media_type)
        case RawPart():
            return _raw(part)
        case ToolResult():
            raise InvalidRequestError(
                "an assistant message cannot carry a tool result: put it in a tool message"
            )
        case _:
            assert_never(part)


def _function_call(call: ToolCall) -> dict[str, object]:
    if call.invalid_arguments:
        raise InvalidRequestError(
            f"tool call {call.name!r} ({call.id}) has arguments that are not a JSON object "
            f"({call.raw_arguments!r}); Gemini needs an object: fix or remove the call"
        )
    return {"functionCall": {"id": call.id, "name": call.name, "args": dict(call.arguments)}}


def _function_response(result: ToolResult, names: Mapping[str, str]) -> dict[str, object]:
    name = result.name or names.get(result.tool_call_id)
    if not name:
        raise InvalidRequestError(
            f"the tool result for call {result.tool_call_id!r} names no function, and no "
            "earlier tool call has that id; Gemini needs the function name: pass "
            "ToolResult(..., name=...) or keep the assistant's tool call in the history"
        )
    response = {"error" if result.is_error else "output": result.content}
    return {"functionResponse": {"id": result.tool_call_id, "name": name, "response": response}}


def _media(url: str, media_type: str | None) -> dict[str, object]:
    """``inlineData`` for a ``data:`` URL, ``fileData`` (a URI reference) for anything else."""
    if url.startswith("data:"):
        header, _, data = url.partition(",")
        mime = media_type or header[5:].split(";", 1)[0] or "application/octet-stream"
        if ";base64" not in header:
            import base64
            import urllib.parse

            data = base64.b64encode(urllib.parse.unquote_to_bytes(data)).decode("ascii")
        return {"inlineData": {"mimeType": mime, "data": data}}
    file: dict[str, object] = {"fileUri": url}
    media_type = media_type or _guess_type(url)
    if media_type:
        file["mimeType"] = media_type
    elif url.startswith(("http://", "https://")) and not _knows_its_type(url):
        raise InvalidRequestError(
            f"Gemini needs the media type of {url!r} and its name does not tell it: use a "
            "URL ending in .png, .jpg, .pdf …, give Document.from_url(url, media_type=...), "
            "or download it and send it inline (from_bytes / from_path)"
        )
    return {"fileData": file}


def _guess_type(url: str) -> str | None:
    from ..._core.media import guess_from_name

    return guess_from_name(url)


def _knows_its_type(url: str) -> bool:
    """Files API URIs and YouTube links carry their own type; other web URLs do not."""
    host = url.split("://", 1)[1].split("/", 1)[0].lower()
    return host in _TYPED_HOSTS or host.endswith(".youtube.com")


def _raw(part: RawPart) -> dict[str, object] | None:
    """A raw part goes back only to Gemini; candidate metadata is not content, so not sent."""
    if part.protocol != PROTOCOL:
        raise InvalidRequestError(
            f"a {part.type!r} part from the {part.protocol} protocol cannot be sent over "
            f"{PROTOCOL}: remove it from the history first"
        )
    if part.type in METADATA_KEYS:
        return None
    return dict(part.data)


# --- tools ------------------------------------------------------------------------------


def encode_tool(tool: Tool, quirks: Quirks = DEFAULT_QUIRKS) -> dict[str, object]:
    """One ``functionDeclarations`` entry."""
    declaration: dict[str, object] = {"name": tool.name}
    if tool.description:
        declaration["description"] = tool.description
    if quirks.openapi_schema:
        declaration["parameters"] = to_openapi_schema(tool.parameters)
    else:
        declaration["parametersJsonSchema"] = dict(tool.parameters)
    return declaration


def encode_tool_choice(choice: ToolChoice) -> dict[str, object]:
    """``toolConfig``: auto/none/required → AUTO/NONE/ANY; a named tool → ANY, that tool only.

    A native object is sent as ``toolConfig`` when it has ``functionCallingConfig``, else
    as the ``functionCallingConfig`` itself.
    """
    native = choice.native
    if native is not None:
        if "functionCallingConfig" in native:
            return dict(native)
        return {"functionCallingConfig": dict(native)}
    if choice.name is not None:
        return _only(choice.name)
    return {"functionCallingConfig": {"mode": _TOOL_CHOICE_MODES[choice.mode]}}


def _only(name: str) -> dict[str, object]:
    return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}


# --- decoding ---------------------------------------------------------------------------


def decode(endpoint: Endpoint, response: HttpResponse, latency_s: float | None = None) -> Response:
    """Decode a 2xx ``generateContent`` reply (the same accumulator a stream uses)."""
    data = parse_json(endpoint, response)
    if isinstance(data, list) and len(data) == 1:
        data = data[0]  # a streamed JSON array (no alt=sse) of one item
    decoder = GeminiStreamDecoder(endpoint, request_id_of(response.headers))
    if not isinstance(data, dict) or not decoder.is_reply(data):
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            # An error inside a 2xx: its own code says what kind it is.
            code = data["error"].get("code")
            status = code if isinstance(code, int) else 0
            raise typed_error(endpoint, status, response.headers, data)
        raise APIResponseError(
            f"the provider answered HTTP {response.status} without a reply: {str(data)[:200]}",
            provider=endpoint.provider,
            request_id=request_id_of(response.headers),
            body=data,
            headers=response.headers,
        )
    decoder.absorb(data)
    from dataclasses import replace

    return replace(decoder.response(), latency_s=latency_s)


def stream_decoder(endpoint: Endpoint, request_id: str | None) -> GeminiStreamDecoder:
    """A decoder for one ``streamGenerateContent?alt=sse`` stream."""
    return GeminiStreamDecoder(endpoint, request_id)


# --- models and countTokens -------------------------------------------------------------


def encode_models(endpoint: Endpoint) -> HttpRequest:
    """Build ``GET …/models`` (one page of up to 1000 models: all of them). On Vertex AI,
    Model Garden's list of the publisher's models: ``GET {root}/v1beta1/publishers/google/
    models`` (no project in the path; it exists only in v1beta1)."""
    headers = dict(endpoint.request_headers())
    headers.pop("content-type", None)
    url = _vertex_models_url(endpoint) if endpoint.quirks.vertex else endpoint.url("/models")
    url = _with_query(url, _MODELS_PAGE)
    return HttpRequest("GET", url, headers, None, endpoint.secret_headers)


def _vertex_models_url(endpoint: Endpoint) -> str:
    """``{root}/projects/{p}/locations/{l}/publishers/{publisher}`` (the endpoint's base)
    becomes ``{root without /v1}/v1beta1/publishers/{publisher}/models``."""
    root, _, rest = endpoint.base_url.partition("/projects/")
    publisher = rest.rpartition("/publishers/")[2] or "google"
    return f"{root.removesuffix('/v1')}/v1beta1/publishers/{publisher}/models{endpoint.query}"


def decode_models(endpoint: Endpoint, response: HttpResponse) -> list[ModelInfo]:
    """Decode ``GET …/models``; ids lose their ``models/`` prefix (Vertex AI's
    ``publisherModels`` their ``publishers/{publisher}/models/`` one)."""
    data = parse_json(endpoint, response)
    if endpoint.quirks.vertex:
        return _vertex_models(endpoint, data)
    items = data.get("models") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise APIResponseError(
            "the models endpoint sent no model list", provider=endpoint.provider, body=data
        )
    return [
        ModelInfo(
            id=str(item.get("name") or "").removeprefix("models/"),
            provider=endpoint.provider,
            owned_by="google",
            raw=item,
        )
        for item in items
        if isinstance(item, dict)
    ]


def _vertex_models(endpoint: Endpoint, data: object) -> list[ModelInfo]:
    items = data.get("publisherModels") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise APIResponseError(
            "the models endpoint sent no model list", provider=endpoint.provider, body=data
        )
    models = []
    for item in items:
        if not isinstance(item, dict):
            continue
        _, _, model = str(item.get("name") or "").partition("/models/")
        publisher = str(item.get("name") or "").removeprefix("publishers/").partition("/")[0]
        models.append(ModelInfo(id=model, provider=endpoint.provider, owned_by=publisher, raw=item))
    return models


def encode_count_tokens(endpoint: Endpoint, request: Request) -> HttpRequest:
    """Build ``POST …/models/{model}:countTokens`` for the prompt of ``request``.

    Plain conversations send ``{"contents": […]}``; with a system instruction, tools or
    generation settings the whole ``generateContentRequest`` goes, so they are counted too.
    """
    body = encode_body(endpoint, request)
    payload: dict[str, object]
    if set(body) == {"contents"}:
        payload = body
    else:
        model = _model_path(request.model)[1:]
        payload = {"generateContentRequest": {"model": model, **body}}
    url = endpoint.url(_model_url(request.model) + ":countTokens")
    return _post(endpoint, url, payload, request.extra_headers)


def decode_count_tokens(endpoint: Endpoint, response: HttpResponse) -> int:
    """The ``totalTokens`` of a ``:countTokens`` reply."""
    data = parse_json(endpoint, response)
    total = data.get("totalTokens", 0) if isinstance(data, dict) else None
    if not isinstance(total, int) or isinstance(total, bool):
        raise APIResponseError(
            f"the countTokens reply has no totalTokens: {str(data)[:200]}",
            provider=endpoint.provider,
            body=data,
        )
    return total
