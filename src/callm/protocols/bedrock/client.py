"""The Amazon Bedrock Converse protocol (``POST /model/{modelId}/converse`` and
``/converse-stream``, ``/count-tokens``, and the control plane's ``GET /foundation-models``).

Pure translation, no I/O. Every request is signed as it is encoded, by the endpoint's
signer (AWS Signature V4 with the credentials the provider entry resolved), or carries a
Bedrock API key as a bearer token. How callm's types map onto Converse:

- ``system`` / ``developer`` messages become the top-level ``system`` text blocks.
- Turns must alternate between ``user`` and ``assistant``: tool results become ``toolResult``
  blocks of a user turn, and consecutive turns of one role are merged.
- Images and documents go inline (``bytes``, base64 in JSON) from ``data:`` URLs, or from
  Amazon S3 for ``s3://`` URLs; Bedrock fetches no web URL. A document's name is its title
  reduced to the characters Bedrock allows (letters, digits, spaces, ``-()[]``).
- ``max_tokens``, ``temperature``, ``top_p`` and ``stop`` go in ``inferenceConfig``;
  ``top_k`` has no Converse field and goes in ``additionalModelRequestFields`` as
  ``top_k`` (the name Anthropic's and Mistral's models read). Converse has no seed and one
  reply per request: ``seed`` and ``n`` > 1 are refused.
- Tools are ``toolSpec`` entries; ``tool_choice`` "required" is ``any``, a name is ``tool``;
  Converse has no "none" (leave the tools out instead).
- A ``json_schema`` response format is native structured output:
  ``outputConfig.textFormat`` with the schema as a JSON string. There is no schema-less
  JSON mode.
- ``Message(cache=True)`` adds a ``cachePoint`` block after the message; ``cache=True`` on
  the request adds one after the system prompt and one before the newest user turn.
- Reasoning comes back as :class:`Reasoning` (signature kept; redacted reasoning in
  ``data``) and goes back to Bedrock unchanged; reasoning from another protocol stays out.
- Blocks callm does not model (citations, guard content …) are kept as
  ``RawPart("bedrock", <key>, block)`` and sent back verbatim.
- Usage: ``input_tokens`` is the whole prompt (``inputTokens`` plus cache reads and writes).
- ``extra_body`` is merged last; its ``inferenceConfig``, ``additionalModelRequestFields`` and
  ``toolConfig`` are merged key by key.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any, assert_never
from urllib.parse import quote, urlsplit, urlunsplit

from ..._core.endpoint import Endpoint
from ..._core.errors import APIResponseError, InvalidRequestError
from ..._core.http import HttpRequest, HttpResponse
from ..._core.options import ResponseFormat, ToolChoice
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
from .errors import decode_failure
from .eventstream import CONTENT_TYPE, EventStreamDecoder
from .stream import (
    FINISH_REASONS,
    PROTOCOL,
    BedrockStreamDecoder,
    block_parts,
    decode_usage,
    normalise_finish,
)

__all__ = [
    "FINISH_REASONS",
    "PROTOCOL",
    "decode",
    "decode_count_tokens",
    "decode_failure",
    "decode_models",
    "encode",
    "encode_body",
    "encode_count_tokens",
    "encode_models",
    "model_path",
    "stream_decoder",
    "stream_framing",
]

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode
_BASE64_MARK = ";base64,"
_IMAGE_FORMATS = {
    "image/png": "png",
    "image/jpeg": "jpeg",
    "image/gif": "gif",
    "image/webp": "webp",
}
_DOCUMENT_FORMATS = {
    "application/pdf": "pdf",
    "text/csv": "csv",
    "application/msword": "doc",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.ms-excel": "xls",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "text/html": "html",
    "text/plain": "txt",
    "text/markdown": "md",
}
_MERGED_EXTRA_KEYS = ("inferenceConfig", "additionalModelRequestFields", "toolConfig")
_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9\-()\[\] ]+")
_CACHE_POINT = {"cachePoint": {"type": "default"}}

# --- encoding ---------------------------------------------------------------------------


def model_path(model: str, action: str) -> str:
    """``/model/{modelId}/{action}``, the id one path segment (an ARN's ``/`` as ``%2F``).

    ``:`` stays as it is: it is legal in a path, and aiohttp (yarl) would decode a ``%3A``
    before sending — the path on the wire must be the one that was signed.
    """
    return f"/model/{quote(model, safe=':')}/{action}"


def encode(endpoint: Endpoint, request: Request) -> HttpRequest:
    """Build ``POST /model/{id}/converse`` (``/converse-stream`` when streaming), signed."""
    action = "converse-stream" if request.stream else "converse"
    accept = CONTENT_TYPE if request.stream else "application/json"
    body = encode_body(request)
    return _post(endpoint, model_path(request.model, action), body, request.extra_headers, accept)


def _post(
    endpoint: Endpoint,
    path: str,
    body: Mapping[str, object],
    extra: Mapping[str, str],
    accept: str = "application/json",
) -> HttpRequest:
    headers = dict(endpoint.request_headers(extra or None))
    headers["accept"] = accept
    http = HttpRequest(
        "POST", endpoint.url(path), headers, _dumps(body).encode(), endpoint.secret_headers
    )
    return endpoint.signed(http)


def encode_body(request: Request) -> dict[str, object]:
    """The JSON body of a Converse request (the model goes in the URL)."""
    system, messages = encode_messages(request.messages)
    if request.cache:
        _place_cache_points(system, messages)
    body: dict[str, object] = {"messages": messages}
    if system:
        body["system"] = system
    config = _inference_config(request)
    if config:
        body["inferenceConfig"] = config
    if request.top_k is not None:
        body["additionalModelRequestFields"] = {"top_k": request.top_k}
    if request.tools:
        body["toolConfig"] = encode_tool_config(request.tools, request.tool_choice)
    elif request.tool_choice is not None and request.tool_choice.forced:
        raise InvalidRequestError("tool_choice needs tools: pass tools=[...] as well")
    if request.response_format is not None:
        text_format = encode_response_format(request.response_format)
        if text_format is not None:
            body["outputConfig"] = {"textFormat": text_format}
    _merge_extra(body, request.extra_body)
    return body


def _inference_config(request: Request) -> dict[str, object]:
    if request.seed is not None:
        raise InvalidRequestError("Bedrock's Converse API has no seed: leave seed unset")
    if request.n is not None and request.n != 1:
        raise InvalidRequestError("Bedrock returns one reply per request: leave n unset or 1")
    config: dict[str, object] = {}
    if request.max_tokens is not None:
        config["maxTokens"] = request.max_tokens
    if request.temperature is not None:
        config["temperature"] = request.temperature
    if request.top_p is not None:
        config["topP"] = request.top_p
    if request.stop:
        config["stopSequences"] = list(request.stop)
    return config


def _merge_extra(body: dict[str, object], extra: Mapping[str, object]) -> None:
    for key, value in extra.items():
        current = body.get(key)
        if key in _MERGED_EXTRA_KEYS and isinstance(current, dict) and isinstance(value, Mapping):
            body[key] = {**current, **value}
        else:
            body[key] = value


def encode_messages(messages: Sequence[Message]) -> tuple[list[Any], list[dict[str, Any]]]:
    """``(system blocks, turns)``: system text lifted out, turns of one role merged."""
    system: list[Any] = []
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.role in ("system", "developer"):
            system.extend(_system_block(p) for p in message.content)
            if message.cache:
                system.append(dict(_CACHE_POINT))
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if message.cache:
            if not blocks:
                raise InvalidRequestError("a message with cache=True needs some content to mark")
            blocks.append(dict(_CACHE_POINT))
        if turns and turns[-1]["role"] == role:
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return system, turns


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "assistant":
        return _assistant_blocks(message.content)
    if message.role == "tool":
        return [_tool_result_block(p) for p in message.content]
    return [_user_block(p) for p in message.content]


def _place_cache_points(system: list[Any], turns: list[dict[str, Any]]) -> None:
    """``cache=True``: the system prompt and the conversation before the newest user turn."""
    if system and "cachePoint" not in system[-1]:
        system.append(dict(_CACHE_POINT))
    earlier = [t for t in turns[:-1] if t["content"]]
    if earlier and "cachePoint" not in earlier[-1]["content"][-1]:
        earlier[-1]["content"].append(dict(_CACHE_POINT))


def _system_block(part: Part) -> dict[str, Any]:
    if isinstance(part, Text):
        return {"text": part.text}
    raise InvalidRequestError(
        f"Bedrock's system prompt holds text only, not a {part.kind} part: "
        "move it to a user message"
    )


def _user_block(part: Part) -> dict[str, Any]:
    match part:
        case Text(text=text):
            return {"text": text}
        case Image():
            return encode_image(part)
        case Document():
            return encode_document(part)
        case RawPart():
            return _raw(part)
        case ToolCall() | ToolResult() | Reasoning() | Refusal():
            raise InvalidRequestError(
                f"a user message cannot carry a {part.kind} part: tool calls belong in "
                "assistant messages and tool results in tool messages"
            )
        case _:
            assert_never(part)


def _assistant_blocks(parts: Sequence[Part]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in parts:
        match part:
            case Text(text=text) | Refusal(text=text):
                if text:  # Bedrock refuses a blank text block; skipping one loses nothing
                    blocks.append({"text": text})
            case ToolCall():
                arguments = {} if part.invalid_arguments else dict(part.arguments)
                use = {"toolUseId": part.id, "name": part.name, "input": arguments}
                blocks.append({"toolUse": use})
            case Reasoning():
                block = _reasoning_block(part)
                if block is not None:
                    blocks.append(block)
            case RawPart():
                blocks.append(_raw(part))
            case Image() | Document() | ToolResult():
                raise InvalidRequestError(f"an assistant message cannot carry a {part.kind} part")
            case _:
                assert_never(part)
    return blocks


def _reasoning_block(part: Reasoning) -> dict[str, Any] | None:
    if part.protocol != PROTOCOL:
        return None  # another provider's reasoning cannot be verified here: left out
    if part.data and not part.signature:
        return {"reasoningContent": {"redactedContent": part.data}}
    text: dict[str, Any] = {"text": part.text}
    if part.signature:
        text["signature"] = part.signature
    return {"reasoningContent": {"reasoningText": text}}


def _tool_result_block(part: Part) -> dict[str, Any]:
    if not isinstance(part, ToolResult):
        raise InvalidRequestError(f"a tool message holds only tool results, not a {part.kind} part")
    result: dict[str, Any] = {"toolUseId": part.tool_call_id, "content": [{"text": part.content}]}
    if part.is_error:
        result["status"] = "error"
    return {"toolResult": result}


def _raw(part: RawPart) -> dict[str, Any]:
    """A raw part goes back only to the protocol it came from."""
    if part.protocol != PROTOCOL:
        raise InvalidRequestError(
            f"a {part.type!r} part from the {part.protocol} protocol cannot be sent over "
            f"{PROTOCOL}: remove it from the history first"
        )
    return dict(part.data)


def encode_image(image: Image) -> dict[str, Any]:
    """An image block: inline bytes from a ``data:`` URL, or an S3 location."""
    if image.url.startswith("data:"):
        media_type, data = _split_data_url(image.url, "image")
        image_format = _IMAGE_FORMATS.get(media_type)
        if image_format is None:
            known = ", ".join(_IMAGE_FORMATS)
            raise InvalidRequestError(f"Bedrock takes {known} images, not {media_type}")
        return {"image": {"format": image_format, "source": {"bytes": data}}}
    fmt = _IMAGE_FORMATS.get(_guess(image.url) or "")
    if fmt is None:
        raise InvalidRequestError(
            "Bedrock takes images inline or from S3 (s3://… ending .png/.jpg/.gif/.webp), "
            "not by web URL: use Image.from_path or Image.from_bytes"
        )
    return {"image": {"format": fmt, "source": _s3_source(image.url, "image")}}


def encode_document(document: Document) -> dict[str, Any]:
    """A document block: inline bytes from a ``data:`` URL, or an S3 location."""
    if document.url.startswith("data:"):
        media_type, data = _split_data_url(document.url, "document")
        source: dict[str, Any] = {"bytes": data}
    else:
        media_type, source = "", _s3_source(document.url, "document")
    media_type = document.media_type or media_type or _guess(document.url) or ""
    doc_format = _DOCUMENT_FORMATS.get(media_type)
    if doc_format is None:
        known = ", ".join(sorted(set(_DOCUMENT_FORMATS.values())))
        raise InvalidRequestError(f"Bedrock takes {known} documents, not {media_type or '?'}")
    name = " ".join(_NAME_UNSAFE.sub(" ", document.title or "").split()) or "document"
    return {"document": {"format": doc_format, "name": name, "source": source}}


def _s3_source(url: str, what: str) -> dict[str, Any]:
    if not url.startswith("s3://"):
        raise InvalidRequestError(
            f"Bedrock takes {what}s inline (a base64 data: URL) or from S3 (s3://…), not by web URL"
        )
    return {"s3Location": {"uri": url}}


def _guess(url: str) -> str | None:
    from ..._core.media import guess_from_name

    return guess_from_name(url)


def _split_data_url(url: str, what: str) -> tuple[str, str]:
    head, mark, data = url.partition(_BASE64_MARK)
    if not mark:
        raise InvalidRequestError(
            f"Bedrock takes inline {what}s as base64 data: URLs (data:<type>;base64,…)"
        )
    return head[len("data:") :], data


def encode_tool_config(tools: Sequence[Tool], choice: ToolChoice | None) -> dict[str, object]:
    config: dict[str, object] = {"tools": [encode_tool(t) for t in tools]}
    if choice is not None:
        encoded = encode_tool_choice(choice)
        if encoded is not None:
            config["toolChoice"] = encoded
    return config


def encode_tool(tool: Tool) -> dict[str, object]:
    """A ``toolSpec``: name, description and the JSON Schema of its input."""
    spec: dict[str, object] = {"name": tool.name, "inputSchema": {"json": dict(tool.parameters)}}
    if tool.description:
        spec["description"] = tool.description
    if tool.strict is not None:
        spec["strict"] = tool.strict
    return {"toolSpec": spec}


def encode_tool_choice(choice: ToolChoice) -> dict[str, object] | None:
    if choice.native is not None:
        return dict(choice.native)
    if choice.name is not None:
        return {"tool": {"name": choice.name}}
    if choice.mode == "none":
        raise InvalidRequestError(
            "Bedrock's Converse API has no tool_choice 'none': leave the tools out instead"
        )
    return {"any": {}} if choice.mode == "required" else {"auto": {}}


def encode_response_format(fmt: ResponseFormat) -> dict[str, object] | None:
    """A JSON schema → ``outputConfig.textFormat``; ``text`` asks for nothing."""
    if fmt.type == "text" and fmt.native is None:
        return None
    if fmt.type != "json_schema":
        raise InvalidRequestError(
            "Bedrock has no JSON mode without a schema: pass "
            '{"type": "json_schema", "schema": {...}} (or output=YourModel) instead'
        )
    if fmt.schema is None:
        raise InvalidRequestError("a json_schema response_format needs a 'schema' object")
    definition: dict[str, object] = {"schema": _dumps(dict(fmt.schema))}
    if fmt.name:
        definition["name"] = fmt.name
    if fmt.description:
        definition["description"] = fmt.description
    return {"type": "json_schema", "structure": {"jsonSchema": definition}}


# --- decoding ---------------------------------------------------------------------------


def decode(endpoint: Endpoint, response: HttpResponse, latency_s: float | None = None) -> Response:
    """Decode a 2xx Converse answer."""
    data = parse_json(endpoint, response)
    output = data.get("output") if isinstance(data, dict) else None
    message = output.get("message") if isinstance(output, dict) else None
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list) or not isinstance(data, dict):
        raise APIResponseError(
            f"the provider answered HTTP {response.status} without a message: {str(data)[:200]}",
            provider=endpoint.provider,
            request_id=request_id_of(response.headers),
            body=data,
            headers=response.headers,
        )
    parts: list[Part] = []
    for block in content:
        if isinstance(block, dict):
            parts.extend(block_parts(block))
    native = data.get("stopReason")
    request_id = request_id_of(response.headers)
    return Response(
        id=request_id or "",
        model="",  # Converse does not name the model: the request did
        provider=endpoint.provider,
        content=tuple(parts),
        finish_reason=normalise_finish(native),
        usage=decode_usage(data.get("usage")),
        raw=data,
        native_finish_reason=native,
        request_id=request_id,
        latency_s=latency_s,
    )


def stream_decoder(endpoint: Endpoint, request_id: str | None) -> BedrockStreamDecoder:
    """A decoder for one ConverseStream reply."""
    return BedrockStreamDecoder(endpoint, request_id)


def stream_framing() -> EventStreamDecoder:
    """ConverseStream's framing: AWS's binary event stream, not SSE."""
    return EventStreamDecoder()


# --- token counting and models ----------------------------------------------------------


def encode_count_tokens(endpoint: Endpoint, request: Request) -> HttpRequest:
    """Build ``POST /model/{id}/count-tokens`` for the prompt ``request`` would send."""
    body = encode_body(request)
    converse = {
        k: body[k]
        for k in ("messages", "system", "toolConfig", "additionalModelRequestFields")
        if k in body
    }
    path = model_path(request.model, "count-tokens")
    return _post(endpoint, path, {"input": {"converse": converse}}, request.extra_headers)


def decode_count_tokens(endpoint: Endpoint, response: HttpResponse) -> int:
    """The ``inputTokens`` of a CountTokens answer."""
    data = parse_json(endpoint, response)
    count = data.get("inputTokens") if isinstance(data, dict) else None
    if not isinstance(count, int) or isinstance(count, bool):
        raise APIResponseError(
            f"the token count answer has no inputTokens: {str(data)[:200]}",
            provider=endpoint.provider,
            body=data,
        )
    return count


def encode_models(endpoint: Endpoint) -> HttpRequest:
    """Build ``GET /foundation-models`` on Bedrock's control plane (``bedrock.{region}``)."""
    headers = dict(endpoint.request_headers())
    headers.pop("content-type", None)
    url = _control_plane(endpoint.url("/foundation-models"))
    return endpoint.signed(HttpRequest("GET", url, headers, None, endpoint.secret_headers))


def _control_plane(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc
    if host.startswith("bedrock-runtime."):
        host = "bedrock." + host[len("bedrock-runtime.") :]
    return urlunsplit(parts._replace(netloc=host))


def decode_models(endpoint: Endpoint, response: HttpResponse) -> list[ModelInfo]:
    """Decode ``ListFoundationModels``: ``{"modelSummaries": [{"modelId", "providerName" …}]}``."""
    data = parse_json(endpoint, response)
    items = data.get("modelSummaries") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise APIResponseError(
            "the models endpoint sent no model list", provider=endpoint.provider, body=data
        )
    return [
        ModelInfo(
            id=str(item.get("modelId") or ""),
            provider=endpoint.provider,
            owned_by=item.get("providerName"),
            raw=item,
        )
        for item in items
        if isinstance(item, dict)
    ]
