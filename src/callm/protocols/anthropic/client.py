"""The Anthropic Messages protocol (``POST /v1/messages``, ``/v1/messages/count_tokens``,
``GET /v1/models``).

Pure translation, no I/O. How callm's types map onto the wire:

- ``system`` / ``developer`` messages, wherever they stand, are lifted in order into the
  top-level ``system`` array of text blocks.
- ``Message.cache=True`` puts ``cache_control: {"type": "ephemeral"}`` on the last block that
  message produced (system, user, assistant or tool alike).
- ``Request.cache`` (``cache=True`` or a key string) places breakpoints itself, by
  :func:`place_cache_breakpoints`: on the last block before the newest user turn (the
  conversation so far), on the last system block and on the last tool definition, in that
  order of preference, never past Anthropic's limit of four marks; the caller's own
  ``Message(cache=True)`` marks count first and always stay. ``cache="1h"`` (or ``"5m"``)
  sets that ``ttl`` on every mark. A key string means nothing to Anthropic: it caches by
  prefix.
- Consecutive ``tool`` messages become one ``user`` turn of ``tool_result`` blocks.
- ``max_tokens`` is required by Anthropic: when the caller gives none, :func:`default_max_tokens`
  picks one by model family (raised to fit a ``thinking`` budget given in ``extra_body``).
- ``response_format`` json_schema becomes native structured output,
  ``output_config: {"format": {"type": "json_schema", "schema": …}}`` (generally available: no
  beta header). Anthropic has no schema-less JSON mode, so ``json_object`` is refused.
  Constraints its decoder lacks (``minimum``, ``maxLength`` …) move into the description
  (:func:`to_anthropic_schema`).
- Thinking comes back as :class:`Reasoning` (``signature`` kept; redacted thinking keeps its
  payload in ``data``) and goes back unchanged. Reasoning from another protocol (no signature)
  cannot be verified by Anthropic and is left out of the request.
- Server-side blocks (``server_tool_use``, ``web_search_tool_result``, ``mcp_*``, code execution
  results, compaction …) are kept in order as ``RawPart(protocol="anthropic", type=<block type>,
  data=<block>)`` and resent verbatim. A text block's ``citations`` follow its :class:`Text` as
  ``RawPart(type="citations", data={"citations": […]})`` and are folded back into that text
  block when the history returns to Anthropic.
- Usage: ``input_tokens`` is the whole prompt (Anthropic's ``input_tokens`` plus
  ``cache_creation_input_tokens`` plus ``cache_read_input_tokens``), so it compares across
  providers; ``cached_input_tokens`` is the cache read part, ``cache_write_tokens`` the cache
  creation part, ``reasoning_tokens`` is ``output_tokens_details.thinking_tokens`` when sent.
- On Vertex AI (an endpoint whose quirks say ``vertex``) the same body goes to
  ``…/publishers/anthropic/models/{model}:rawPredict`` (``:streamRawPredict``) without its
  ``model``, with ``anthropic_version: vertex-2023-10-16``; replies and streams are the same.
- Stop reasons: see :data:`FINISH_REASONS`. ``pause_turn`` (a long server-tool turn paused)
  maps to ``"length"``: the reply is unfinished, and resending the conversation with it
  appended lets the model continue; ``native_finish_reason`` says which it was.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypedDict, assert_never

from ..._core.endpoint import Endpoint
from ..._core.errors import (
    APIError,
    APIResponseError,
    ContextWindowExceededError,
    InvalidRequestError,
)
from ..._core.http import HttpRequest, HttpResponse
from ..._core.json import get_list, get_str
from ..._core.media import PDF, is_text
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
from .._shared.errors import decode_error, parse_json, request_id_of
from .schema import to_anthropic_schema
from .stream import (
    FINISH_REASONS,
    PROTOCOL,
    AnthropicStreamDecoder,
    block_parts,
    decode_usage,
    normalise_finish,
)

__all__ = [
    "FINISH_REASONS",
    "PROTOCOL",
    "block_parts",
    "decode",
    "decode_count_tokens",
    "decode_failure",
    "decode_models",
    "decode_usage",
    "default_max_tokens",
    "encode",
    "encode_body",
    "encode_count_tokens",
    "encode_models",
    "normalise_finish",
    "stream_decoder",
]

# Output-token defaults by model family, first match wins; sized so that a reply is rarely
# cut short while a non-streaming call still finishes well inside the server's time limit.
MAX_TOKENS_BY_FAMILY: tuple[tuple[str, int], ...] = (
    ("claude-3-5-", 8192),
    ("claude-3-7-", 16384),
    ("claude-3-", 4096),  # the original Claude 3 models (opus, sonnet, haiku) stop at 4096
    ("claude-", 16384),  # Claude 4 and later
)
FALLBACK_MAX_TOKENS = 4096  # a name we do not know (a proxy's alias …): a size every model takes
_THINKING_HEADROOM = 4096  # room for the answer on top of a caller's thinking budget

# Body fields /v1/messages takes but /v1/messages/count_tokens refuses.
_NOT_COUNTED = (
    "max_tokens",
    "stream",
    "temperature",
    "top_p",
    "top_k",
    "stop_sequences",
    "metadata",
    "service_tier",
)
# Anthropic-specific phrasings of "the prompt does not fit" beyond the shared markers.
_CONTEXT_MARKERS = ("prompt is too long", "exceed context limit", "context window")
_EPHEMERAL = {"type": "ephemeral"}
MAX_CACHE_BREAKPOINTS = 4  # Anthropic refuses a request with more cache_control marks
CACHE_TTLS = ("5m", "1h")  # cache= values read as a time to live rather than a key
_UNCACHEABLE = ("thinking", "redacted_thinking")  # blocks that may not carry cache_control
_BASE64_MARK = ";base64,"
VERTEX_VERSION = "vertex-2023-10-16"  # what Anthropic's models on Vertex AI read

_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


# --- encoding ---------------------------------------------------------------------------


def encode(endpoint: Endpoint, request: Request) -> HttpRequest:
    """Build the HTTP request for ``POST /v1/messages`` (Vertex AI: ``:rawPredict``)."""
    body = encode_body(request)
    if endpoint.quirks.vertex:
        method = "streamRawPredict" if request.stream else "rawPredict"
        path = f"/models/{body.pop('model')}:{method}"
        return _post(endpoint, path, _on_vertex(body), request.extra_headers)
    return _post(endpoint, "/v1/messages", body, request.extra_headers)


def encode_count_tokens(endpoint: Endpoint, request: Request) -> HttpRequest:
    """Build ``POST /v1/messages/count_tokens`` for the prompt ``request`` would send."""
    body = encode_body(request)
    for key in _NOT_COUNTED:
        body.pop(key, None)
    if endpoint.quirks.vertex:  # the model stays in the body here
        path = "/models/count-tokens:rawPredict"
        return _post(endpoint, path, _on_vertex(body), request.extra_headers)
    return _post(endpoint, "/v1/messages/count_tokens", body, request.extra_headers)


def _on_vertex(body: dict[str, object]) -> dict[str, object]:
    """Vertex AI names the API version in the body (and the model in the URL)."""
    return {"anthropic_version": VERTEX_VERSION, **body}


def encode_models(endpoint: Endpoint) -> HttpRequest:
    """Build ``GET /v1/models`` (one page of up to 1000, Anthropic's largest)."""
    headers = dict(endpoint.request_headers())
    headers.pop("content-type", None)
    url = endpoint.url("/v1/models")
    url += ("&" if "?" in url else "?") + "limit=1000"
    return HttpRequest("GET", url, headers, None, endpoint.secret_headers)


def _post(
    endpoint: Endpoint, path: str, body: Mapping[str, object], extra: Mapping[str, str]
) -> HttpRequest:
    return HttpRequest(
        "POST",
        endpoint.url(path),
        endpoint.request_headers(extra),
        _dumps(body).encode(),
        endpoint.secret_headers,
    )


def encode_body(request: Request) -> dict[str, object]:
    """The JSON body of a Messages request, ``extra_body`` merged in last."""
    system, messages = encode_messages(request.messages)
    tools = [encode_tool(t) for t in request.tools]
    body: dict[str, object] = {
        "model": request.model,
        "max_tokens": _max_tokens(request),
        "messages": messages,
    }
    if system:
        body["system"] = system
    _encode_sampling(body, request)
    if tools:
        body["tools"] = tools
    if request.tool_choice is not None:
        body["tool_choice"] = encode_tool_choice(request.tool_choice)
    if request.response_format is not None:
        output_format = encode_response_format(request.response_format)
        if output_format is not None:
            body["output_config"] = {"format": output_format}
    if request.cache:
        place_cache_breakpoints(Prefix(tools, system, messages), request.cache)
    if request.stream:
        body["stream"] = True
    body.update(request.extra_body)
    return body


class Turn(TypedDict):
    """One message of the ``messages`` array, as it is built."""

    role: str
    content: list[dict[str, object]]


@dataclass(frozen=True, slots=True)
class Prefix:
    """The parts of a request body that may carry ``cache_control``, in prefix order."""

    tools: list[dict[str, object]]
    system: list[dict[str, object]]
    messages: list[Turn]

    def blocks(self) -> list[dict[str, object]]:
        """Every block that may carry ``cache_control``, in prefix order."""
        blocks = [*self.tools, *self.system]
        for message in self.messages:
            blocks.extend(message["content"])
        return blocks

    def breakpoint_candidates(self) -> list[dict[str, object] | None]:
        """Where callm places its marks, in order of preference."""
        system = self.system[-1] if self.system else None
        tools = self.tools[-1] if self.tools else None
        return [_conversation_breakpoint(self.messages), system, tools]


def place_cache_breakpoints(prefix: Prefix, cache: bool | str) -> None:
    """``cache=``: mark the stable prefix of the conversation, the system prompt and the tool
    definitions, in that order of preference, within Anthropic's four-breakpoint limit.

    The caller's own ``Message(cache=True)`` marks are kept and count first. A ``"1h"`` or
    ``"5m"`` value is the cache's time to live and is set on every mark, the caller's too
    (Anthropic refuses a longer-lived mark after a shorter-lived one).
    """
    control = cache_control(cache)
    marked = [block for block in prefix.blocks() if "cache_control" in block]
    if len(marked) > MAX_CACHE_BREAKPOINTS:
        raise InvalidRequestError(
            f"Anthropic takes at most {MAX_CACHE_BREAKPOINTS} cache breakpoints and "
            f"{len(marked)} messages have cache=True: mark fewer"
        )
    if "ttl" in control:
        for block in marked:
            block["cache_control"] = dict(control)
    for candidate in prefix.breakpoint_candidates():
        if len(marked) == MAX_CACHE_BREAKPOINTS:
            break
        if candidate is not None and "cache_control" not in candidate:
            candidate["cache_control"] = dict(control)
            marked.append(candidate)


def cache_control(cache: bool | str) -> dict[str, object]:
    """The ``cache_control`` object for a ``cache=`` value: ephemeral, with its TTL if one."""
    if isinstance(cache, str) and cache in CACHE_TTLS:
        return {**_EPHEMERAL, "ttl": cache}
    return dict(_EPHEMERAL)


def _conversation_breakpoint(messages: Sequence[Turn]) -> dict[str, object] | None:
    """The last block before the newest user turn: what this call writes to the cache is
    what the next turn of the conversation reads back."""
    newest = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=0)
    for message in reversed(messages[:newest]):
        for block in reversed(message["content"]):
            if block.get("type") not in _UNCACHEABLE:
                return block
    return None


def default_max_tokens(model: str) -> int:
    """The ``max_tokens`` callm sends for ``model`` when the caller gives none."""
    name = model.lower()
    for family, limit in MAX_TOKENS_BY_FAMILY:
        if family in name:  # "in", not startswith: Bedrock/Vertex names carry prefixes
            return limit
    return FALLBACK_MAX_TOKENS


def _max_tokens(request: Request) -> int:
    if request.max_tokens is not None:
        return request.max_tokens
    default = default_max_tokens(request.model)
    thinking = request.extra_body.get("thinking")
    budget = thinking.get("budget_tokens") if isinstance(thinking, Mapping) else None
    if isinstance(budget, int) and budget >= default:
        # Anthropic requires budget_tokens < max_tokens: leave room for the answer too.
        return budget + _THINKING_HEADROOM
    return default


def _encode_sampling(body: dict[str, object], request: Request) -> None:
    if request.temperature is not None:
        body["temperature"] = request.temperature
    if request.top_p is not None:
        body["top_p"] = request.top_p
    if request.top_k is not None:
        body["top_k"] = request.top_k
    if request.stop:
        body["stop_sequences"] = list(request.stop)
    if request.user is not None:
        body["metadata"] = {"user_id": request.user}
    if request.seed is not None:
        raise InvalidRequestError("Anthropic has no seed parameter: leave seed unset")
    if request.n is not None and request.n != 1:
        raise InvalidRequestError("Anthropic returns one reply per request: leave n unset or 1")


def encode_messages(
    messages: Sequence[Message],
) -> tuple[list[dict[str, object]], list[Turn]]:
    """``(system blocks, messages)``: system text lifted out, tool results merged per turn."""
    system: list[dict[str, object]] = []
    out: list[Turn] = []
    merging_results = False  # is out[-1] a user turn made of tool results only?
    for message in messages:
        if message.role in ("system", "developer"):
            blocks = [_system_block(p) for p in message.content]
            _mark_cache(message, blocks)
            system.extend(blocks)
            continue
        if message.role == "tool":
            blocks = [_tool_result_block(p) for p in message.content]
            _mark_cache(message, blocks)
            if merging_results:
                out[-1]["content"].extend(blocks)
            else:
                out.append({"role": "user", "content": blocks})
            merging_results = True
            continue
        if message.role == "assistant":
            blocks = _assistant_blocks(message.content)
        else:
            blocks = [_user_block(p) for p in message.content]
        _mark_cache(message, blocks)
        out.append({"role": message.role, "content": blocks})
        merging_results = False
    return system, out


def _mark_cache(message: Message, blocks: list[dict[str, object]]) -> None:
    if message.cache:
        if not blocks:
            raise InvalidRequestError("a message with cache=True needs some content to mark")
        blocks[-1] = {**blocks[-1], "cache_control": dict(_EPHEMERAL)}


def _system_block(part: Part) -> dict[str, object]:
    if isinstance(part, Text):
        return {"type": "text", "text": part.text}
    raise InvalidRequestError(
        f"Anthropic's system prompt holds text only, not a {part.kind} part: "
        "move it to a user message"
    )


def _user_block(part: Part) -> dict[str, object]:
    match part:
        case Text(text=text):
            return {"type": "text", "text": text}
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


def _assistant_blocks(parts: Sequence[Part]) -> list[dict[str, object]]:
    blocks: list[dict[str, object]] = []
    for part in parts:
        match part:
            case Text(text=text) | Refusal(text=text):
                if text:  # Anthropic refuses empty text blocks; nothing is lost skipping one
                    blocks.append({"type": "text", "text": text})
            case ToolCall():
                blocks.append(_tool_use_block(part))
            case Reasoning():
                block = _thinking_block(part)
                if block is not None:
                    blocks.append(block)
            case RawPart(type="citations"):
                _fold_citations(part, blocks)
            case RawPart():
                blocks.append(_raw(part))
            case Image() | Document() | ToolResult():
                raise InvalidRequestError(f"an assistant message cannot carry a {part.kind} part")
            case _:
                assert_never(part)
    return blocks


def _thinking_block(part: Reasoning) -> dict[str, object] | None:
    if part.protocol not in (None, "anthropic"):
        return None  # another provider's signature would be refused: see below
    if part.signature:
        return {"type": "thinking", "thinking": part.text, "signature": part.signature}
    if part.data and part.id is None:  # OpenAI's encrypted reasoning carries an id as well
        return {"type": "redacted_thinking", "data": part.data}
    # Reasoning from another protocol has no Anthropic signature, and Anthropic rejects
    # unsigned thinking: like Chat Completions, it stays out of the request.
    return None


def _fold_citations(part: RawPart, blocks: list[dict[str, object]]) -> None:
    _raw(part)  # refuses citations from another protocol
    if not blocks or blocks[-1].get("type") != "text":
        raise InvalidRequestError("an Anthropic citations part must follow the text it cites")
    blocks[-1] = {**blocks[-1], "citations": list(get_list(part.data, "citations"))}


def _tool_use_block(call: ToolCall) -> dict[str, object]:
    # Anthropic takes the input as an object; a call whose arguments were malformed JSON has
    # none, so it goes back with {} (its tool result should say what went wrong).
    arguments = {} if call.invalid_arguments else dict(call.arguments)
    return {"type": "tool_use", "id": call.id, "name": call.name, "input": arguments}


def _tool_result_block(part: Part) -> dict[str, object]:
    if not isinstance(part, ToolResult):
        raise InvalidRequestError(f"a tool message holds only tool results, not a {part.kind} part")
    block: dict[str, object] = {
        "type": "tool_result",
        "tool_use_id": part.tool_call_id,
        "content": part.content,
    }
    if part.is_error:
        block["is_error"] = True
    return block


def _raw(part: RawPart) -> dict[str, object]:
    """A raw part goes back only to the protocol it came from."""
    if part.protocol != PROTOCOL:
        raise InvalidRequestError(
            f"a {part.type!r} part from the {part.protocol} protocol cannot be sent over "
            f"{PROTOCOL}: remove it from the history first"
        )
    return dict(part.data)


def encode_image(image: Image) -> dict[str, object]:
    """An image block: a base64 source for a ``data:`` URL, a url source otherwise."""
    return {"type": "image", "source": _source(image.url, "image")}


def encode_document(document: Document) -> dict[str, object]:
    """A document block; inline text documents travel as a ``text`` source, PDFs as base64."""
    url = document.url
    if url.startswith("data:"):
        media_type, data = _split_data_url(url, "document")
        media_type = document.media_type or media_type
        if is_text(media_type):
            try:
                text = base64.b64decode(data, validate=True).decode("utf-8", "replace")
            except binascii.Error:
                raise InvalidRequestError("the document's data: URL is not valid base64") from None
            source: dict[str, object] = {"type": "text", "media_type": "text/plain", "data": text}
        elif media_type == PDF:
            source = {"type": "base64", "media_type": media_type, "data": data}
        else:
            raise InvalidRequestError(
                f"Anthropic takes PDF and plain-text documents only, not {media_type}"
            )
    else:
        source = _source(url, "document")
    block: dict[str, object] = {"type": "document", "source": source}
    if document.title:
        block["title"] = document.title
    return block


def _source(url: str, what: str) -> dict[str, object]:
    if url.startswith("data:"):
        media_type, data = _split_data_url(url, what)
        return {"type": "base64", "media_type": media_type, "data": data}
    if url.startswith(("https://", "http://")):
        return {"type": "url", "url": url}
    raise InvalidRequestError(f"an {what} URL must be https:// or a base64 data: URL")


def _split_data_url(url: str, what: str) -> tuple[str, str]:
    head, mark, data = url.partition(_BASE64_MARK)
    if not mark:
        raise InvalidRequestError(
            f"Anthropic takes inline {what}s as base64 data: URLs (data:<type>;base64,…)"
        )
    return head[len("data:") :] or "application/octet-stream", data


def encode_tool(tool: Tool) -> dict[str, object]:
    """A client tool: name, description and its JSON Schema as ``input_schema``."""
    entry: dict[str, object] = {"name": tool.name, "input_schema": dict(tool.parameters)}
    if tool.description:
        entry["description"] = tool.description
    if tool.strict is not None:
        entry["strict"] = tool.strict
    return entry


def encode_tool_choice(choice: ToolChoice) -> dict[str, object]:
    """``auto``/``none`` as they are, ``required`` → ``any``, a name → that tool; a native
    object as given."""
    if choice.native is not None:
        return dict(choice.native)
    if choice.name is not None:
        return {"type": "tool", "name": choice.name}
    return {"type": "any" if choice.mode == "required" else choice.mode}


def encode_response_format(fmt: ResponseFormat) -> dict[str, object] | None:
    """A JSON schema → the ``output_config.format`` object; ``text`` asks for nothing."""
    if fmt.type == "text" and fmt.native is None:
        return None
    if fmt.type != "json_schema":
        raise InvalidRequestError(
            "Anthropic has no JSON mode without a schema: pass "
            '{"type": "json_schema", "schema": {...}} (or output=YourModel) instead'
        )
    if fmt.schema is None:
        raise InvalidRequestError("a json_schema response_format needs a 'schema' object")
    return {"type": "json_schema", "schema": to_anthropic_schema(fmt.schema)}


# --- decoding ---------------------------------------------------------------------------


def decode(endpoint: Endpoint, response: HttpResponse, latency_s: float | None = None) -> Response:
    """Decode a 2xx ``/v1/messages`` response."""
    data = parse_json(endpoint, response)
    if not isinstance(data, dict) or not isinstance(data.get("content"), list):
        if isinstance(data, dict) and data.get("type") == "error":
            raise _error_of(endpoint, 0, response.headers, data)
        raise APIResponseError(
            f"the provider answered HTTP {response.status} without a message: {str(data)[:200]}",
            provider=endpoint.provider,
            request_id=request_id_of(response.headers),
            body=data,
            headers=response.headers,
        )
    parts: list[Part] = []
    for block in data["content"]:
        if isinstance(block, dict):
            parts.extend(block_parts(block))
    native = data.get("stop_reason")
    return Response(
        id=data.get("id") or "",
        model=data.get("model") or "",
        provider=endpoint.provider,
        content=tuple(parts),
        finish_reason=normalise_finish(native),
        usage=decode_usage(data.get("usage")),
        raw=data,
        native_finish_reason=native,
        request_id=request_id_of(response.headers),
        latency_s=latency_s,
    )


def decode_count_tokens(endpoint: Endpoint, response: HttpResponse) -> int:
    """The ``input_tokens`` of a ``/v1/messages/count_tokens`` answer."""
    if response.status >= 400:
        raise decode_failure(endpoint, response)
    data = parse_json(endpoint, response)
    count = data.get("input_tokens") if isinstance(data, dict) else None
    if not isinstance(count, int):
        raise APIResponseError(
            f"the token count answer has no input_tokens: {str(data)[:200]}",
            provider=endpoint.provider,
            request_id=request_id_of(response.headers),
            body=data,
        )
    return count


def decode_failure(endpoint: Endpoint, response: HttpResponse) -> APIError:
    """The typed error of a non-2xx answer, whatever its body holds."""
    body: object
    try:
        body = parse_json(endpoint, response)
    except APIError:
        body = response.body.decode("utf-8", "replace")
    return _error_of(endpoint, response.status, response.headers, body)


def _error_of(
    endpoint: Endpoint, status: int, headers: Mapping[str, str], body: object
) -> APIError:
    """``decode_error`` plus Anthropic's habits: the error type as ``.code``, the body's
    ``request_id`` when no header carried one, and its own context-window wordings."""
    error = body.get("error") if isinstance(body, dict) else None
    error = error if isinstance(error, dict) else {}
    exc = decode_error(endpoint, status, headers, body)
    message = str(error.get("message") or "")
    if (
        status == 400
        and not isinstance(exc, ContextWindowExceededError)
        and any(marker in message.lower() for marker in _CONTEXT_MARKERS)
    ):
        exc = ContextWindowExceededError(
            f"{message} — shorten the conversation or lower max_tokens",
            provider=exc.provider,
            status_code=exc.status_code,
            request_id=exc.request_id,
            body=body,
            headers=headers,
        )
    if exc.code is None and error.get("type"):
        exc.code = str(error["type"])
    if exc.request_id is None and isinstance(body, dict) and body.get("request_id"):
        exc.request_id = str(body["request_id"])
    return exc


def decode_models(endpoint: Endpoint, response: HttpResponse) -> list[ModelInfo]:
    """Decode ``GET /v1/models``: ``{"data": [{"type": "model", "id", "created_at" …}]}``."""
    data = parse_json(endpoint, response)
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise APIResponseError(
            "the models endpoint sent no model list", provider=endpoint.provider, body=data
        )
    return [
        ModelInfo(
            id=get_str(item, "id"),
            provider=endpoint.provider,
            created=_epoch(item.get("created_at", item.get("created"))),
            owned_by=get_str(item, "owned_by", None),
            raw=item,
        )
        for item in items
        if isinstance(item, dict)
    ]


def _epoch(value: object) -> int | None:
    """Seconds since the epoch of an RFC 3339 time (or an int already), None if unreadable."""
    if isinstance(value, int):
        return value
    if not isinstance(value, str):
        return None
    from datetime import datetime

    try:
        return int(datetime.fromisoformat(value).timestamp())
    except ValueError:
        return None


def stream_decoder(endpoint: Endpoint, request_id: str | None) -> AnthropicStreamDecoder:
    """A decoder for one Messages stream."""
    return AnthropicStreamDecoder(endpoint, request_id)
