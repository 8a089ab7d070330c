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
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from ._script import FakeToolCall, Reply, split_fragments

__all__ = ["message_text", "prompt_tokens", "reply_to"]

_SIGN_OFF = (
    "This reply comes from callm's built-in offline model; "
    "set a provider key to talk to a real one."
)
_MAX_SCHEMA_DEPTH = 8


def reply_to(request: Mapping[str, Any]) -> Reply:
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


def prompt_tokens(request: Mapping[str, Any]) -> int:
    """Whitespace-separated words across all message texts (at least 1)."""
    words = sum(len(message_text(m).split()) for m in _messages(request))
    return max(words, 1)


def message_text(message: Mapping[str, Any]) -> str:
    """The text of a message whose content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(
            part["text"]
            for part in content
            if isinstance(part, dict) and isinstance(part.get("text"), str)
        )
    return ""


def _messages(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    messages = request.get("messages")
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict)]


# --- plain answers -----------------------------------------------------------------------


def _answer(request: Mapping[str, Any], last: Mapping[str, Any]) -> str:
    text = message_text(last) if last.get("role") == "user" else ""
    kind = _response_format(request)
    if kind == "json_object":
        return json.dumps({"reply": _echo(text, last)}, ensure_ascii=False)
    if kind == "json_schema":
        schema = _json_schema(request)
        return json.dumps(_instance(schema, schema, _pick_word(text, ()), 0), ensure_ascii=False)
    return _echo(text, last)


def _echo(text: str, last: Mapping[str, Any]) -> str:
    if not text:
        return f"[offline] Hello! {_SIGN_OFF}"
    # Quoted in full: a long prompt gives a long reply, so benchmarks can size streams
    # with the prompt and cut them exactly with max_tokens.
    attached = _attachment_count(last)
    extra = f" You also sent {attached} non-text part(s)." if attached else ""
    return f'[offline] You said: "{text}".{extra} {_SIGN_OFF}'


def _attachment_count(message: Mapping[str, Any]) -> int:
    content = message.get("content")
    if not isinstance(content, list):
        return 0
    return sum(1 for p in content if isinstance(p, dict) and p.get("type") != "text")


def _reasoning(request: Mapping[str, Any], last: Mapping[str, Any]) -> str | None:
    # Only when asked for, so that plain requests get plain replies.
    if request.get("reasoning_effort") not in ("low", "medium", "high"):
        return None
    words = len(message_text(last).split())
    return f"[offline] The user wrote {words} word(s); I will repeat them back."


def _tool_results(messages: Sequence[Mapping[str, Any]]) -> str:
    names = _tool_names_by_id(messages)
    results: list[str] = []
    for message in reversed(messages):
        if message.get("role") != "tool":
            break
        name = names.get(str(message.get("tool_call_id")), "tool")
        results.append(f"Tool {name} returned: {message_text(message)}")
    return "[offline] " + "; ".join(reversed(results))


def _tool_names_by_id(messages: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    names: dict[str, str] = {}
    for message in messages:
        for call in message.get("tool_calls") or ():
            if isinstance(call, dict) and isinstance(call.get("function"), dict):
                names[str(call.get("id"))] = str(call["function"].get("name"))
    return names


# --- max_tokens and stop -----------------------------------------------------------------


def _limit(request: Mapping[str, Any], text: str) -> Reply:
    """Apply ``stop`` then ``max_tokens``, as a real model would stop generating."""
    for stop in _stops(request):
        if stop in text:
            text = text[: text.index(stop)]
    fragments = split_fragments(text)
    limit = request.get("max_completion_tokens", request.get("max_tokens"))
    if isinstance(limit, int) and not isinstance(limit, bool) and len(fragments) > limit:
        kept = fragments[: max(limit, 0)]
        return Reply("".join(kept), chunks=kept, finish_reason="length")
    return Reply(text, chunks=fragments)


def _stops(request: Mapping[str, Any]) -> list[str]:
    stop = request.get("stop")
    if isinstance(stop, str):
        return [stop] if stop else []
    if isinstance(stop, list):
        return [s for s in stop if isinstance(s, str) and s]
    return []


# --- tool calls --------------------------------------------------------------------------


def _tool_call(request: Mapping[str, Any], last: Mapping[str, Any]) -> FakeToolCall | None:
    tools = _function_tools(request)
    choice = request.get("tool_choice", "auto")
    if not tools or choice == "none" or last.get("role") != "user":
        return None
    text = message_text(last)
    tool = _chosen_tool(tools, choice, text)
    if tool is None:
        return None
    name = str(tool.get("name"))
    schema = tool.get("parameters") or {}
    arguments = _instance(schema, schema, _pick_word(text, (name,)), 0)
    if not isinstance(arguments, dict):
        arguments = {}
    return FakeToolCall(name, arguments, id=_call_id(name, request))


def _function_tools(request: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    tools = request.get("tools")
    if not isinstance(tools, list):
        return []
    return [
        t["function"]
        for t in tools
        if isinstance(t, dict) and isinstance(t.get("function"), dict) and t["function"].get("name")
    ]


def _chosen_tool(
    tools: list[Mapping[str, Any]], choice: Any, text: str
) -> Mapping[str, Any] | None:
    if isinstance(choice, dict):
        forced = (choice.get("function") or {}).get("name")
        return next((t for t in tools if t.get("name") == forced), None)
    mentioned = next((t for t in tools if str(t["name"]) in text), None)
    if mentioned is not None:
        return mentioned
    return tools[0] if choice == "required" else None


def _call_id(name: str, request: Mapping[str, Any]) -> str:
    # Deterministic, yet different on each turn of a conversation.
    seed = f"{name}:{len(_messages(request))}".encode()
    return "call_" + hashlib.sha256(seed).hexdigest()[:24]


def _pick_word(text: str, avoid: Sequence[str]) -> str:
    """A word from the prompt to fill string arguments: the last capitalised one, if any."""
    words = [w.strip(".,;:!?\"'()[]{}") for w in text.split()]
    words = [w for w in words if w and w not in avoid]
    capitalised = [w for w in words[1:] if w[0].isupper()]
    if capitalised:
        return capitalised[-1]
    return words[-1] if words else "example"


# --- JSON output -------------------------------------------------------------------------


def _response_format(request: Mapping[str, Any]) -> str | None:
    fmt = request.get("response_format")
    return str(fmt.get("type")) if isinstance(fmt, dict) else None


def _json_schema(request: Mapping[str, Any]) -> Mapping[str, Any]:
    spec = request["response_format"].get("json_schema")
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return schema if isinstance(schema, dict) else {}


def _instance(schema: Any, root: Mapping[str, Any], word: str, depth: int) -> Any:
    """A small JSON value that validates against ``schema`` (common keywords only)."""
    schema = _resolve(schema, root)
    if not isinstance(schema, dict) or depth > _MAX_SCHEMA_DEPTH:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return _instance(schema[key][0], root, word, depth + 1)
    return _typed_instance(schema, root, word, depth)


def _typed_instance(
    schema: Mapping[str, Any], root: Mapping[str, Any], word: str, depth: int
) -> Any:
    kind = schema.get("type", "object" if "properties" in schema else None)
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties") or {}
        # Required properties only, unless the schema lists none.
        names = schema.get("required", list(properties))
        return {n: _instance(properties.get(n, {}), root, word, depth + 1) for n in names}
    if kind == "array":
        return []
    return _SCALARS.get(str(kind), word)


# Strings (and untyped values) get the word picked from the prompt instead.
_SCALARS: dict[str, Any] = {"integer": 1, "number": 1.0, "boolean": True, "null": None}


def _resolve(schema: Any, root: Mapping[str, Any]) -> Any:
    ref = schema.get("$ref") if isinstance(schema, dict) else None
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return schema
    node: Any = root
    for part in ref[2:].split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node
