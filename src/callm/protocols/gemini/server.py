"""The Gemini API protocol, server side: what a gateway needs to speak it to callers.

Pure translation, no I/O, the reverse of the client codec: :func:`decode_request` reads a
caller's ``:generateContent`` / ``:streamGenerateContent`` / ``:countTokens`` body into a
callm :class:`Request` (the model comes from the URL; the caller sets ``stream`` for
``:streamGenerateContent``); :func:`encode_response`, :class:`StreamEncoder` and
:func:`encode_error` write a reply, its ``alt=sse`` stream and errors as Google's SDKs read
them. Field names are read in Gemini's lowerCamelCase and in the snake_case its SDKs send.

How the wire maps onto callm's types, where a choice had to be made:

- ``systemInstruction`` becomes leading system messages, one per text part. A ``user``
  turn becomes ``user`` messages and one ``tool`` message per ``functionResponse``, in
  order; a ``model`` turn one ``assistant`` message.
- A ``functionResponse`` becomes a ToolResult whose content is ``response.output`` (or
  ``response.error``, flagged as an error) when that is a string, else the response as JSON.
  Gemini callers often leave ids out: a call without one gets a stable id from its position
  in the conversation, and a response without one takes the id of the earliest unanswered
  call of that function name, so results stay paired with their calls on any upstream.
- A ``thoughtSignature`` becomes a ``Reasoning("", signature=…)`` right before the part it
  was on (a thought part keeps its own), as the client codec reads replies, so it goes back
  on the same part; a sealed token from another protocol is restored as that protocol's
  reasoning (see :mod:`callm.protocols._shared.reasoning`).
- ``responseSchema`` (Gemini's OpenAPI subset) is read as the JSON Schema it means.
- Fields callm has no slot for (``safetySettings``, ``cachedContent``, generation settings
  such as ``thinkingConfig`` …) go to ``extra_body`` as given (generation settings under
  ``generationConfig``, which the client codec merges key by key). Tools and ``toolConfig``
  that callm reads only in part (built-in tools, several allowed functions) are decoded and
  also kept whole there, so a Gemini upstream receives what the caller sent.
- Replies: ``finishReason`` is the upstream's own when it was Gemini's, else mapped from
  the finish reason; ``promptTokenCount`` is the whole prompt with ``cachedContentTokenCount``
  its cached part, ``thoughtsTokenCount`` the reasoning, ``candidatesTokenCount`` the rest
  of the output. Parts of another protocol with no Gemini part (an Anthropic server tool
  block) are left out of the reply.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator, Mapping

from ..._core.errors import InvalidRequestError
from ..._core.options import ResponseFormat, ToolChoice, tool_choice_of
from ..._core.types import (
    Document,
    Image,
    Message,
    Part,
    RawPart,
    Reasoning,
    Request,
    Text,
    Tool,
    ToolCall,
    ToolResult,
)
from .._shared.ingress import (
    a_string,
    an_array,
    an_object,
    body_object,
    dumps,
    objects,
    optional_string,
    string_list,
)
from .._shared.reasoning import unseal
from . import client
from ._server_reply import (
    PROTOCOL,
    encode_count_tokens,
    encode_error,
    encode_response,
    encode_usage,
    finish_reason,
)
from ._server_stream import StreamEncoder

__all__ = [
    "PROTOCOL",
    "StreamEncoder",
    "decode_request",
    "encode_count_tokens",
    "encode_error",
    "encode_response",
    "encode_usage",
    "finish_reason",
    "from_openapi_schema",
]

# Top-level fields decoded into the Request; any other goes to extra_body as given.
_MODELLED = frozenset(
    {"contents", "systemInstruction", "generationConfig", "tools", "toolConfig", "model"}
)
# generationConfig fields decoded into the Request (the rest stay in extra_body).
_CONFIG_MODELLED = frozenset(
    {
        "temperature",
        "topP",
        "topK",
        "maxOutputTokens",
        "stopSequences",
        "candidateCount",
        "seed",
        "responseMimeType",
        "responseSchema",
        "responseJsonSchema",
    }
)
_MODES = {"AUTO": "auto", "NONE": "none", "VALIDATED": "auto"}
_JSON = "application/json"
_CAMEL = re.compile(r"_([a-z])")


def _camel(key: str) -> str:
    return _CAMEL.sub(lambda m: m.group(1).upper(), key)


def _fields(value: Mapping[str, object]) -> dict[str, object]:
    """An object with its keys in lowerCamelCase (the SDKs send some in snake_case)."""
    return {_camel(k) if "_" in k else k: v for k, v in value.items()}


def _items(value: object, where: str) -> Iterator[tuple[str, dict[str, object]]]:
    """``(path, object)`` for each object of an array, keys in lowerCamelCase."""
    for at, item in objects(value, where):
        yield at, _fields(item)


# --- decoding a caller's request ---------------------------------------------------------


def decode_request(body: Mapping[str, object], *, model: str | None = None) -> Request:
    """A caller's generateContent (or countTokens) body as a callm Request."""
    body = _fields(body_object(body))
    if "generateContentRequest" in body:  # countTokens with the whole request inside
        body = _fields(an_object(body["generateContentRequest"], "generateContentRequest"))
    extra = {key: value for key, value in body.items() if key not in _MODELLED}
    config = _fields(an_object(body.get("generationConfig") or {}, "generationConfig"))
    unmodelled = {k: v for k, v in config.items() if k not in _CONFIG_MODELLED}
    messages = _system_messages(body.get("systemInstruction"))
    messages += _Conversation().read(body.get("contents"))
    request = Request(
        model=_model(body, model),
        messages=tuple(messages),
        max_tokens=_int(config, "maxOutputTokens"),
        temperature=_number(config, "temperature"),
        top_p=_number(config, "topP"),
        top_k=_int(config, "topK"),
        stop=_stop(config.get("stopSequences")),
        seed=_int(config, "seed"),
        n=_int(config, "candidateCount"),
        tools=_tools(body.get("tools"), extra),
        tool_choice=_tool_choice(body.get("toolConfig"), extra),
        response_format=_response_format(config, unmodelled),
        extra_body=extra,
    )
    if unmodelled:
        extra["generationConfig"] = unmodelled
    return request


def _model(body: Mapping[str, object], model: str | None) -> str:
    name = model if model is not None else body.get("model")
    if not isinstance(name, str) or not name:
        raise InvalidRequestError("the model is required: POST /v1beta/models/{model}:…")
    return name.removeprefix("models/")


def _int(config: Mapping[str, object], key: str) -> int | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise InvalidRequestError(f"generationConfig.{key} must be an integer")
    return int(value)


def _number(config: Mapping[str, object], key: str) -> float | None:
    value = config.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidRequestError(f"generationConfig.{key} must be a number")
    return value


def _stop(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    return string_list(value, "generationConfig.stopSequences") or None


def _system_messages(value: object) -> list[Message]:
    if value is None:
        return []
    if isinstance(value, str):
        return [Message.system(value)]
    instruction = _fields(an_object(value, "systemInstruction"))
    out = []
    for where, part in objects(instruction.get("parts") or [], "systemInstruction.parts"):
        text = part.get("text")
        if not isinstance(text, str):
            raise InvalidRequestError(
                f"{where} must be a text part: the system instruction is text"
            )
        out.append(Message.system(text))
    return out


class _Conversation:
    """Reads ``contents``, giving ids to function calls and responses that have none."""

    def __init__(self) -> None:
        self._calls = 0
        self._open: list[tuple[str, str]] = []  # (id, name) of calls not answered yet

    def read(self, contents: object) -> list[Message]:
        if contents is None:
            raise InvalidRequestError("contents is required: the conversation to continue")
        out: list[Message] = []
        for where, content in objects(contents, "contents"):
            role = content.get("role") or "user"
            parts = an_array(content.get("parts") or [], where + ".parts")
            if role == "model":
                out.append(Message("assistant", tuple(self._model_parts(parts, where))))
            elif role in ("user", "function"):
                out += self._user_turn(parts, where)
            else:
                raise InvalidRequestError(f"{where}.role must be 'user' or 'model', not {role!r}")
        return out

    def _model_parts(self, parts: list[object], where: str) -> Iterator[Part]:
        for at, part in _items(parts, where + ".parts"):
            text = part.get("text")
            signature = part.get("thoughtSignature")
            if part.get("thought") and isinstance(text, str):
                yield _thought(text, signature)
                continue
            if signature is not None and not _raw_kind(part):
                yield _thought("", a_string(signature, at + ".thoughtSignature"))
            if isinstance(text, str):
                if text or signature is None:  # "" with a signature only carried it
                    yield Text(text)
            elif "functionCall" in part:
                yield self._call(_fields(an_object(part["functionCall"], at + ".functionCall")), at)
            else:
                yield _other(part, at)

    def _user_turn(self, parts: list[object], where: str) -> list[Message]:
        out: list[Message] = []
        run: list[Part] = []
        for at, part in _items(parts, where + ".parts"):
            if "functionResponse" in part:
                if run:
                    out.append(Message("user", tuple(run)))
                    run = []
                response = _fields(an_object(part["functionResponse"], at + ".functionResponse"))
                out.append(Message("tool", (self._result(response, at + ".functionResponse"),)))
            elif "functionCall" in part:
                raise InvalidRequestError(
                    f"{at} is a functionCall in a user turn: calls belong to model turns"
                )
            elif isinstance(text := part.get("text"), str):
                run.append(Text(text))
            else:
                run.append(_other(part, at))
        if run or not out:
            out.append(Message("user", tuple(run)))
        return out

    def _call(self, call: Mapping[str, object], where: str) -> ToolCall:
        name = a_string(call.get("name"), where + ".functionCall.name")
        arguments = an_object(call.get("args") or {}, where + ".functionCall.args")
        given = call.get("id")
        call_id = given if isinstance(given, str) and given else self._fresh_id(name)
        self._open.append((call_id, name))
        return ToolCall(call_id, name, dict(arguments))

    def _result(self, response: Mapping[str, object], where: str) -> ToolResult:
        name = a_string(response.get("name"), where + ".name")
        given = response.get("id")
        if isinstance(given, str) and given:
            call_id = given
            self._open = [c for c in self._open if c[0] != given]
        else:
            call_id = self._answer(name)
        content, is_error = _result_content(response.get("response"))
        return ToolResult(call_id, content, name=name, is_error=is_error)

    def _answer(self, name: str) -> str:
        for index, (call_id, called) in enumerate(self._open):
            if called == name:
                del self._open[index]
                return call_id
        return self._fresh_id(name)

    def _fresh_id(self, name: str) -> str:
        self._calls += 1
        digest = hashlib.sha256(f"{self._calls}:{name}".encode()).hexdigest()
        return "call_" + digest[:24]


def _thought(text: str, signature: object) -> Reasoning:
    if signature is not None and not isinstance(signature, str):
        raise InvalidRequestError("thoughtSignature must be a string")
    sealed = unseal(signature, text)
    if sealed is not None:
        return sealed
    return Reasoning(text, signature=signature or None, protocol=PROTOCOL)


def _raw_kind(part: Mapping[str, object]) -> bool:
    """Parts callm keeps whole (with their signature) rather than reading."""
    readable = ("text", "functionCall", "functionResponse", "inlineData", "fileData")
    return not any(key in part for key in readable)


def _other(part: Mapping[str, object], where: str) -> Part:
    """Inline or referenced media as Image/Document; anything else (media with settings
    such as ``videoMetadata`` included) kept as a RawPart."""
    single = len(part) - ("thoughtSignature" in part) == 1
    blob = part.get("inlineData") if single else None
    if isinstance(blob, Mapping):
        blob = _fields(blob)
        mime = a_string(blob.get("mimeType"), where + ".inlineData.mimeType")
        url = f"data:{mime};base64,{a_string(blob.get('data'), where + '.inlineData.data')}"
        return Image(url) if mime.startswith("image/") else Document(url, mime)
    file = part.get("fileData") if single else None
    if isinstance(file, Mapping):
        file = _fields(file)
        uri = a_string(file.get("fileUri"), where + ".fileData.fileUri")
        media_type = file.get("mimeType")
        if isinstance(media_type, str) and media_type.startswith("image/"):
            return Image(uri)
        return Document(uri, media_type if isinstance(media_type, str) else None)
    kind = next((k for k in part if k not in ("thoughtSignature", "thought")), None)
    if kind is None:
        raise InvalidRequestError(f"{where} is an empty part")
    return RawPart(PROTOCOL, kind, dict(part))


def _result_content(response: object) -> tuple[str, bool]:
    """A functionResponse's ``response`` as text: its ``output`` or ``error`` when that is
    the whole of it (how callm and most SDK helpers write one), else the JSON."""
    if response is None:
        return "", False
    if isinstance(response, Mapping) and len(response) == 1:
        key, value = next(iter(response.items()))
        if key in ("output", "error"):
            return (value if isinstance(value, str) else dumps(value)), key == "error"
    return dumps(response), False


def _tools(value: object, extra: dict[str, object]) -> tuple[Tool, ...]:
    if value is None:
        return ()
    tools: list[Tool] = []
    exact = True
    for where, entry in _items(value, "tools"):
        declarations = entry.get("functionDeclarations")
        exact = exact and set(entry) == {"functionDeclarations"}
        for at, declaration in objects(declarations or [], where + ".functionDeclarations"):
            tool = _tool(_fields(declaration), at)
            exact = exact and client.encode_tool(tool) == declaration
            tools.append(tool)
    if not exact:
        extra["tools"] = value  # built-in tools (search, code execution …): Gemini's own
    return tuple(tools)


def _tool(declaration: Mapping[str, object], where: str) -> Tool:
    schema = declaration.get("parametersJsonSchema")
    if schema is None and declaration.get("parameters") is not None:
        parameters = an_object(declaration["parameters"], where + ".parameters")
        schema = from_openapi_schema(parameters)
    return Tool(
        name=a_string(declaration.get("name"), where + ".name"),
        description=optional_string(declaration, "description", where + ".") or "",
        parameters=dict(an_object(schema or {"type": "object", "properties": {}}, where)),
    )


def _tool_choice(value: object, extra: dict[str, object]) -> ToolChoice | None:
    if value is None:
        return None
    config = _fields(an_object(value, "toolConfig"))
    calling = _fields(an_object(config.get("functionCallingConfig") or {}, "toolConfig"))
    mode = str(calling.get("mode") or "").upper()
    names = an_array(calling.get("allowedFunctionNames") or [], "toolConfig.allowedFunctionNames")
    choice: str | None
    if mode == "ANY":
        choice = names[0] if len(names) == 1 and isinstance(names[0], str) else "required"
    else:
        choice = _MODES.get(mode)
    typed = tool_choice_of(choice) if choice is not None else None
    if typed is None or client.encode_tool_choice(typed) != value:
        extra["toolConfig"] = value  # several allowed functions, retrieval settings …
    return typed


def _response_format(
    config: Mapping[str, object], unmodelled: dict[str, object]
) -> ResponseFormat | None:
    mime = config.get("responseMimeType")
    schema = config.get("responseJsonSchema")
    if schema is None and config.get("responseSchema") is not None:
        schema = from_openapi_schema(an_object(config["responseSchema"], "responseSchema"))
    if mime not in (None, _JSON) or (mime is None and schema is None):
        if mime is not None:
            unmodelled["responseMimeType"] = mime  # text/x.enum, text/plain …
        return None
    if schema is None:
        return ResponseFormat("json_object")
    return ResponseFormat("json_schema", dict(an_object(schema, "responseJsonSchema")))


# --- Gemini's OpenAPI-subset schemas ------------------------------------------------------

_SCHEMA_NODES = ("items",)
_SCHEMA_LISTS = ("anyOf",)


def from_openapi_schema(schema: Mapping[str, object]) -> dict[str, object]:
    """Gemini's OpenAPI-subset ``Schema`` as the JSON Schema it means: types lower-cased,
    ``nullable`` as a ``null`` type, ``propertyOrdering`` dropped."""
    out: dict[str, object] = {}
    for key, value in _fields(schema).items():
        if key == "type" and isinstance(value, str):
            out["type"] = value.lower()
        elif key == "properties" and isinstance(value, Mapping):
            out["properties"] = {k: _child(v) for k, v in value.items()}
        elif key in _SCHEMA_NODES:
            out[key] = _child(value)
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            out[key] = [_child(v) for v in value]
        elif key not in ("nullable", "propertyOrdering"):
            out[key] = value
    if schema.get("nullable") and isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
    return out


def _child(value: object) -> object:
    return from_openapi_schema(value) if isinstance(value, Mapping) else value
