"""callm's offline model: a pure, deterministic stand-in for a real LLM.

It answers an OpenAI Chat Completions request (as parsed JSON) with a :class:`Reply` that
exercises every feature a client has — streaming, tool calls, tool results, JSON output,
``max_tokens`` and ``stop`` — without a network or a key. The reply quotes the last user
message in full, so its length follows the prompt's: a 300-word prompt with
``max_tokens=200`` streams exactly 200 content fragments. Every text reply starts with
``"[offline] "`` so nobody mistakes it for a real model. The same request always gets the
same reply: there is no randomness and no clock in here.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from .._core.json import get_list, get_object
from ._script import FakeToolCall, Reply, fragment_matches

__all__ = ["message_text", "prompt_tokens", "reply_to"]

_SIGN_OFF = (
    "This reply comes from callm's built-in offline model; "
    "set a provider key to talk to a real one."
)
_MAX_SCHEMA_DEPTH = 8
_WORD = re.compile(r"\S+")


def reply_to(request: Mapping[str, object]) -> Reply:
    """The offline model's reply to a Chat Completions request body."""
    messages = _messages(request)
    last = messages[-1] if messages else {}
    if last.get("role") == "tool":
        return _limit(request, _tool_results(messages))
    call = _tool_call(request, last)
    if call is not None:
        return Reply(tool_calls=(call,))
    reply = _limit(request, _answer(request, last))
    reasoning = _reasoning(request, last)
    return reply if reasoning is None else replace(reply, reasoning=reasoning)


def prompt_tokens(request: Mapping[str, object]) -> int:
    """Whitespace-separated words across all message texts (at least 1)."""
    words = sum(_word_count(message_text(m)) for m in _messages(request))
    return max(words, 1)


def _word_count(text: str) -> int:
    # Counted, not split: a list of every word of a 50 MB prompt costs gigabytes.
    return sum(1 for _ in _WORD.finditer(text))


def message_text(message: Mapping[str, object]) -> str:
    """The text of a message whose content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            text
            for part in content
            if isinstance(part, dict) and isinstance(text := part.get("text"), str)
        )
    return ""


def _messages(request: Mapping[str, object]) -> list[Mapping[str, object]]:
    messages = request.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict)]


# --- plain answers -----------------------------------------------------------------------


def _answer(request: Mapping[str, object], last: Mapping[str, object]) -> str:
    text = message_text(last) if last.get("role") == "user" else ""
    kind = _response_format(request)
    if kind == "json_object":
        return json.dumps({"reply": _echo(text, last)}, ensure_ascii=False)
    if kind == "json_schema":
        schema = _json_schema(request)
        return json.dumps(_instance(schema, schema, _pick_word(text, ()), 0), ensure_ascii=False)
    return _echo(text, last)


def _echo(text: str, last: Mapping[str, object]) -> str:
    if not text:
        return f"[offline] Hello! {_SIGN_OFF}"
    # Quoted in full: a long prompt gives a long reply, so benchmarks can size streams
    # with the prompt and cut them exactly with max_tokens.
    attached = _attachment_count(last)
    extra = f" You also sent {attached} non-text part(s)." if attached else ""
    return f'[offline] You said: "{text}".{extra} {_SIGN_OFF}'


def _attachment_count(message: Mapping[str, object]) -> int:
    content = message.get("content")
    if not isinstance(content, list):
        return 0
    return sum(1 for p in content if isinstance(p, dict) and p.get("type") != "text")


def _reasoning(request: Mapping[str, object], last: Mapping[str, object]) -> str | None:
    # Only when asked for, so that plain requests get plain replies.
    if request.get("reasoning_effort") not in ("low", "medium", "high"):
        return None
    words = _word_count(message_text(last))
    return f"[offline] The user wrote {words} word(s); I will repeat them back."


def _tool_results(messages: Sequence[Mapping[str, object]]) -> str:
    names = _tool_names_by_id(messages)
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        name = names.get(str(message.get("tool_call_id")), "tool")
        results.append(f"Tool {name} returned: {message_text(message)}")
    return "[offline] " + "; ".join(reversed(results))


def _tool_names_by_id(messages: Sequence[Mapping[str, object]]) -> dict[str, str]:
    names: dict[str, str] = {}
    for message in messages:
        for call in get_list(message, "tool_calls"):
            if isinstance(call, dict) and isinstance(function := call.get("function"), dict):
                names[str(call.get("id"))] = str(function.get("name"))
    return names


# --- max_tokens and stop -----------------------------------------------------------------


def _limit(request: Mapping[str, object], text: str) -> Reply:
    """Apply ``stop`` then ``max_tokens``, as a real model would stop generating."""
    for stop in _stops(request):
        if stop in text:
            text = text[: text.index(stop)]
    limit = request.get("max_completion_tokens", request.get("max_tokens"))
    if isinstance(limit, int) and not isinstance(limit, bool):
        end = _end_of_fragments(text, max(limit, 0))
        if end is not None:
            return Reply(text[:end], finish_reason="length")
    # Split into fragments as it streams (Reply.iter_fragments), never all at once: a
    # 50 MB prompt is quoted back without a list of millions of words.
    return Reply(text)


def _end_of_fragments(text: str, limit: int) -> int | None:
    """Where the first ``limit`` fragments of ``text`` end, or None when it has no more."""
    end = 0
    for count, match in enumerate(fragment_matches(text)):
        if count == limit:
            return end
        end = match.end()
    return None


def _stops(request: Mapping[str, object]) -> list[str]:
    stop = request.get("stop")
    if isinstance(stop, str):
        return [stop] if stop else []
    if isinstance(stop, list):
        return [s for s in stop if isinstance(s, str) and s]
    return []


# --- tool calls --------------------------------------------------------------------------


def _tool_call(request: Mapping[str, object], last: Mapping[str, object]) -> FakeToolCall | None:
    tools = _function_tools(request)
    choice = request.get("tool_choice", "auto")
    if not tools or choice == "none" or last.get("role") != "user":
        return None
    text = message_text(last)
    tool = _chosen_tool(tools, choice, text)
    if tool is None:
        return None
    name = str(tool.get("name"))
    schema = get_object(tool, "parameters")
    arguments = _instance(schema, schema, _pick_word(text, (name,)), 0)
    if not isinstance(arguments, dict):
        arguments = {}
    return FakeToolCall(name, arguments, id=_call_id(name, request))


def _function_tools(request: Mapping[str, object]) -> list[Mapping[str, object]]:
    tools = request.get("tools")
    if not isinstance(tools, list):
        return []
    functions = (get_object(t, "function") if isinstance(t, dict) else None for t in tools)
    return [f for f in functions if f and f.get("name")]


def _chosen_tool(
    tools: list[Mapping[str, object]], choice: object, text: str
) -> Mapping[str, object] | None:
    if isinstance(choice, dict):
        forced = get_object(choice, "function").get("name")
        return next((t for t in tools if t.get("name") == forced), None)
    mentioned = next((t for t in tools if str(t["name"]) in text), None)
    if mentioned is not None:
        return mentioned
    return tools[0] if choice == "required" else None


def _call_id(name: str, request: Mapping[str, object]) -> str:
    # Deterministic, yet different on each turn of a conversation.
    seed = f"{name}:{len(_messages(request))}".encode()
    return "call_" + hashlib.sha256(seed).hexdigest()[:24]


def _pick_word(text: str, avoid: Sequence[str]) -> str:
    """A word from the prompt to fill string arguments: the last capitalised one, if any."""
    last = capitalised = None
    for match in _WORD.finditer(text):  # one at a time: the prompt may be huge
        word = match.group().strip(".,;:!?\"'()[]{}")
        if not word or word in avoid:
            continue
        if last is not None and word[0].isupper():  # not the first word
            capitalised = word
        last = word
    return capitalised or last or "example"


# --- JSON output -------------------------------------------------------------------------


def _response_format(request: Mapping[str, object]) -> str | None:
    fmt = request.get("response_format")
    return str(fmt.get("type")) if isinstance(fmt, dict) else None


def _json_schema(request: Mapping[str, object]) -> Mapping[str, object]:
    spec = get_object(get_object(request, "response_format"), "json_schema")
    return get_object(spec, "schema")


def _instance(schema: object, root: Mapping[str, object], word: str, depth: int) -> object:
    """A small JSON value that validates against ``schema`` (common keywords only)."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    enum = get_list(schema, "enum")
    if enum:
        return enum[0]
    for key in ("anyOf", "oneOf", "allOf"):
        choices = get_list(schema, key)
        if choices:
            return _instance(choices[0], root, word, depth + 1)
    return _typed_instance(schema, root, word, depth)


def _typed_instance(
    schema: Mapping[str, object], root: Mapping[str, object], word: str, depth: int
) -> object:
    kind = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = get_object(schema, "properties")
        # Required properties only, unless the schema lists none.
        names = get_list(schema, "required") if "required" in schema else list(properties)
        return {
            n: _instance(properties.get(n, {}), root, word, depth + 1)
            for n in names
            if isinstance(n, str)
        }
    if kind == "array":
        return []
    return _SCALARS.get(str(kind), word)


# Strings (and untyped values) get the word picked from the prompt instead.
_SCALARS: dict[str, object] = {"integer": 1, "number": 1.0, "boolean": True, "null": None}


def _resolve(schema: object, root: Mapping[str, object]) -> object:
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    node: object = root
    for part in ref[2:].split("/"):
        node = node.get(part) if isinstance(node, Mapping) else None
    return node
