"""One call through the gateway with each official SDK, read back into the same shape.

Each driver makes a call the way its SDK's users do (whole or streamed) and returns a
:class:`Seen`: the text, reasoning, tool calls, finish reason and usage as that SDK shows
them, so one test can ask the same questions of every ingress. Errors come back as the
SDK's own exception, read by :func:`failure` into a status and a ``retry-after``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anthropic
import openai
from google import genai
from google.genai import errors as genai_errors
from google.genai import types as genai_types

PROMPT = "What is the weather in Paris?"
TOOL_NAME = "get_weather"
TOOL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
}


@dataclass
class Seen:
    """What a caller's SDK shows of one reply."""

    text: str = ""
    reasoning: str = ""
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    finish: str = ""  # "stop", "tool_calls" or "length"
    input_tokens: int = 0
    output_tokens: int = 0


Driver = Callable[[str, str, str, bool, bool], Seen]  # url, key, model, stream, tools


def _openai(url: str, key: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key=key, max_retries=0)


# --- Chat Completions -------------------------------------------------------------------------


def chat(url: str, key: str, model: str, stream: bool, tools: bool) -> Seen:
    extra: dict[str, Any] = {}
    if tools:
        function = {"name": TOOL_NAME, "description": "The weather.", "parameters": TOOL_SCHEMA}
        extra["tools"] = [{"type": "function", "function": function}]
    messages: Any = [{"role": "user", "content": PROMPT}]
    with _openai(url, key) as client:
        if not stream:
            reply = client.chat.completions.create(
                model=model, messages=messages, max_tokens=100, **extra
            )
            message = reply.choices[0].message
            usage = reply.usage
            assert usage is not None
            return Seen(
                message.content or "",
                (message.model_extra or {}).get("reasoning_content") or "",
                [
                    (c.function.name, json.loads(c.function.arguments))
                    for c in message.tool_calls or []
                ],  # type: ignore[union-attr]
                reply.choices[0].finish_reason,
                usage.prompt_tokens,
                usage.completion_tokens,
            )
        seen, fragments = Seen(), {}  # tool index -> [name, arguments]
        chunks = client.chat.completions.create(
            model=model,
            messages=messages,
            max_tokens=100,
            stream=True,
            stream_options={"include_usage": True},
            **extra,
        )
        for chunk in chunks:
            if chunk.usage is not None:
                seen.input_tokens = chunk.usage.prompt_tokens
                seen.output_tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                delta = choice.delta
                seen.text += delta.content or ""
                seen.reasoning += (delta.model_extra or {}).get("reasoning_content") or ""
                for call in delta.tool_calls or []:
                    entry = fragments.setdefault(call.index, ["", ""])
                    if call.function and call.function.name:
                        entry[0] = call.function.name
                    if call.function and call.function.arguments:
                        entry[1] += call.function.arguments
                seen.finish = choice.finish_reason or seen.finish
        seen.calls = [(name, json.loads(args)) for name, args in fragments.values()]
        return seen


# --- Responses --------------------------------------------------------------------------------


def responses(url: str, key: str, model: str, stream: bool, tools: bool) -> Seen:
    extra: dict[str, Any] = {}
    if tools:
        extra["tools"] = [{"type": "function", "name": TOOL_NAME, "parameters": TOOL_SCHEMA}]
    with _openai(url, key) as client:
        if stream:
            with client.responses.stream(
                model=model, input=PROMPT, max_output_tokens=100, **extra
            ) as events:
                last: Any = None
                for event in events:
                    last = event
            assert last.type in ("response.completed", "response.incomplete"), last.type
            final = last.response
        else:
            final = client.responses.create(
                model=model, input=PROMPT, max_output_tokens=100, **extra
            )
    calls = [(i.name, json.loads(i.arguments)) for i in final.output if i.type == "function_call"]
    reasoning = "".join(s.text for i in final.output if i.type == "reasoning" for s in i.summary)
    finish = "tool_calls" if calls else "stop"
    if final.status == "incomplete":
        finish = "length"
    usage = final.usage
    assert usage is not None
    return Seen(
        final.output_text, reasoning, calls, finish, usage.input_tokens, usage.output_tokens
    )


# --- Anthropic Messages -----------------------------------------------------------------------

_STOP = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}


def messages(url: str, key: str, model: str, stream: bool, tools: bool) -> Seen:
    extra: dict[str, Any] = {}
    if tools:
        extra["tools"] = [
            {"name": TOOL_NAME, "description": "The weather.", "input_schema": TOOL_SCHEMA}
        ]
    kwargs: Any = {
        "model": model,
        "max_tokens": 100,
        "messages": [{"role": "user", "content": PROMPT}],
        **extra,
    }
    with anthropic.Anthropic(base_url=url, api_key=key, max_retries=0) as client:
        if stream:
            with client.messages.stream(**kwargs) as events:
                message = events.get_final_message()
        else:
            message = client.messages.create(**kwargs)
    blocks = message.content
    return Seen(
        "".join(b.text for b in blocks if b.type == "text"),
        "".join(b.thinking for b in blocks if b.type == "thinking"),
        [(b.name, dict(b.input)) for b in blocks if b.type == "tool_use"],  # type: ignore[arg-type]
        _STOP.get(message.stop_reason or "", str(message.stop_reason)),
        message.usage.input_tokens
        + (message.usage.cache_read_input_tokens or 0)
        + (message.usage.cache_creation_input_tokens or 0),
        message.usage.output_tokens,
    )


# --- Gemini -----------------------------------------------------------------------------------


def gemini(url: str, key: str, model: str, stream: bool, tools: bool) -> Seen:
    config = genai_types.GenerateContentConfig(max_output_tokens=100)
    if tools:
        declaration = genai_types.FunctionDeclaration(
            name=TOOL_NAME, description="The weather.", parameters_json_schema=TOOL_SCHEMA
        )
        config.tools = [genai_types.Tool(function_declarations=[declaration])]
        config.automatic_function_calling = genai_types.AutomaticFunctionCallingConfig(disable=True)
    options = genai_types.HttpOptions(base_url=url, retry_options=None)
    with genai.Client(api_key=key, http_options=options) as client:
        if stream:
            chunks = list(
                client.models.generate_content_stream(model=model, contents=PROMPT, config=config)
            )
        else:
            chunks = [client.models.generate_content(model=model, contents=PROMPT, config=config)]
    seen = Seen()
    for chunk in chunks:
        for candidate in chunk.candidates or []:
            for part in (candidate.content.parts if candidate.content else None) or []:
                if part.function_call is not None:
                    call = part.function_call
                    seen.calls.append((call.name or "", dict(call.args or {})))
                elif part.thought:
                    seen.reasoning += part.text or ""
                else:
                    seen.text += part.text or ""
            if candidate.finish_reason is not None:
                seen.finish = candidate.finish_reason.value
        if chunk.usage_metadata is not None:
            seen.input_tokens = chunk.usage_metadata.prompt_token_count or 0
            seen.output_tokens = (chunk.usage_metadata.candidates_token_count or 0) + (
                chunk.usage_metadata.thoughts_token_count or 0
            )
    seen.finish = {"STOP": "tool_calls" if seen.calls else "stop", "MAX_TOKENS": "length"}.get(
        seen.finish, seen.finish
    )
    return seen


DRIVERS: dict[str, Driver] = {
    "chat": chat,
    "responses": responses,
    "messages": messages,
    "gemini": gemini,
}


SDK_ERRORS = (openai.APIStatusError, anthropic.APIStatusError, genai_errors.APIError)


def failure(exc: BaseException) -> tuple[int, str | None, str]:
    """An SDK's exception as (HTTP status, retry-after header, message)."""
    if isinstance(exc, openai.APIStatusError | anthropic.APIStatusError):
        return exc.status_code, exc.response.headers.get("retry-after"), exc.message
    if isinstance(exc, genai_errors.APIError):
        response = getattr(exc, "response", None)
        headers = getattr(response, "headers", None) or {}
        return int(exc.code), headers.get("retry-after"), str(exc.message)
    raise exc
