"""The gateway's OpenAPI document (``GET /openapi.json``).

Request bodies say what each protocol requires and the shape of its common fields, and
leave the rest open: the server codecs check every field and answer 400 naming what is
wrong. Every model endpoint takes a virtual key where its SDK sends it (``Authorization:
Bearer``, ``x-api-key``, ``x-goog-api-key`` or ``?key=``).
"""

from __future__ import annotations

from typing import Any

_OBJECT = {"type": "object"}
_ERROR = {
    "description": "An error in the caller's protocol's shape",
    "content": {"application/json": {"schema": _OBJECT}},
}
_REPLY = {
    "description": "The reply (or an SSE stream when the request asks for one)",
    "content": {
        "application/json": {"schema": _OBJECT},
        "text/event-stream": {"schema": {"type": "string"}},
    },
}
_MODEL_ERRORS = ("400", "401", "403", "404", "413", "429", "502", "503", "504")
_KEYS: list[dict[str, list[str]]] = [
    {"bearer": []},
    {"apiKey": []},
    {"googApiKey": []},
    {"queryKey": []},
]
_MODEL = {"type": "string", "minLength": 1, "examples": ["fast", "openai/gpt-4o-mini"]}
_TEXT_MESSAGES = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "enum": ["system", "user", "assistant"]},
            "content": {"type": "string"},
        },
    },
}
_ANTHROPIC_MESSAGES = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {
            "role": {"type": "string", "enum": ["user", "assistant"]},
            "content": {"type": "string"},
        },
    },
}
_GEMINI_CONTENTS = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["parts"],
        "properties": {
            "role": {"type": "string", "enum": ["user", "model"]},
            "parts": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["text"],
                    "properties": {"text": {"type": "string"}},
                },
            },
        },
    },
}
_MAX_TOKENS = {"type": "integer", "minimum": 1, "maximum": 4096}
_STREAM = {"type": "boolean"}


def _body(required: list[str], properties: dict[str, Any]) -> dict[str, Any]:
    schema = {"type": "object", "required": required, "properties": properties}
    return {"required": True, "content": {"application/json": {"schema": schema}}}


def _model_call(summary: str, body: dict[str, Any], **extra: Any) -> dict[str, object]:
    responses: dict[str, object] = {"200": _REPLY}
    responses.update(dict.fromkeys(_MODEL_ERRORS, _ERROR))
    return {
        "post": {
            "summary": summary,
            "security": _KEYS,
            "requestBody": body,
            "responses": responses,
            **extra,
        }
    }


def _admin(method: str, summary: str, body: bool = False) -> dict[str, object]:
    operation: dict[str, object] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {
            "200": _REPLY,
            "201": _REPLY,
            "400": _ERROR,
            "401": _ERROR,
            "404": _ERROR,
            "413": _ERROR,
        },
    }
    if body:
        operation["requestBody"] = {"content": {"application/json": {"schema": _OBJECT}}}
    return {method: operation}


def _page(summary: str, content_type: str = "application/json") -> dict[str, object]:
    reply = {"description": summary, "content": {content_type: {"schema": {}}}}
    return {"get": {"summary": summary, "responses": {"200": reply, "404": _ERROR, "503": _ERROR}}}


def _gemini(summary: str, stream: bool = False) -> dict[str, object]:
    name = {"type": "string", "pattern": "^[a-z0-9][a-z0-9.-]*$", "examples": ["gemini-2.5-flash"]}
    model = {"name": "model", "in": "path", "required": True, "schema": name}
    parameters: list[object] = [model]
    if stream:
        alt = {"name": "alt", "in": "query", "schema": {"type": "string", "enum": ["sse"]}}
        parameters.append(alt)
    body = _body(["contents"], {"contents": _GEMINI_CONTENTS})
    return _model_call(summary, body, parameters=parameters)


def _paths() -> dict[str, object]:
    key_id = {"name": "key_id", "in": "path", "required": True, "schema": {"type": "string"}}
    chat = {
        "model": _MODEL,
        "messages": _TEXT_MESSAGES,
        "max_tokens": _MAX_TOKENS,
        "stream": _STREAM,
    }
    messages = {**chat, "messages": _ANTHROPIC_MESSAGES}
    responses = {
        "model": _MODEL,
        "input": {"type": "string"},
        "max_output_tokens": _MAX_TOKENS,
        "stream": _STREAM,
    }
    completions = {"model": _MODEL, "prompt": {"type": "string"}, "max_tokens": _MAX_TOKENS}
    count = {"model": _MODEL, "messages": _ANTHROPIC_MESSAGES}
    embeddings = {
        "model": _MODEL,
        "input": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
    }
    return {
        "/v1/chat/completions": _model_call(
            "OpenAI Chat Completions", _body(["model", "messages"], chat)
        ),
        "/v1/responses": _model_call("OpenAI Responses", _body(["model", "input"], responses)),
        "/v1/completions": _model_call(
            "OpenAI Completions (legacy)", _body(["model", "prompt"], completions)
        ),
        "/v1/embeddings": _model_call("OpenAI embeddings", _body(["model", "input"], embeddings)),
        "/v1/messages": _model_call(
            "Anthropic Messages", _body(["model", "messages", "max_tokens"], messages)
        ),
        "/v1/messages/count_tokens": _model_call(
            "Anthropic token counting", _body(["model", "messages"], count)
        ),
        "/v1beta/models/{model}:generateContent": _gemini("Gemini generateContent"),
        "/v1beta/models/{model}:streamGenerateContent": _gemini(
            "Gemini streamGenerateContent", stream=True
        ),
        "/v1beta/models/{model}:countTokens": _gemini("Gemini countTokens"),
        "/v1/models": {
            "get": {
                "summary": "The models this gateway serves",
                "security": _KEYS,
                "responses": {"200": _REPLY, "401": _ERROR},
            }
        },
        "/admin/keys": {
            **_admin("get", "List keys (never the keys themselves)"),
            **_admin("post", "Make a key (shown once)", body=True),
        },
        "/admin/keys/{key_id}": {
            **_admin("get", "One key with its spend"),
            **_admin("patch", "Change a key's limits", body=True),
            **_admin("delete", "Revoke a key at once"),
            "parameters": [key_id],
        },
        "/admin/usage": _admin("get", "Calls, tokens and cost by day, key and model"),
        "/health": _page("The process is up"),
        "/ready": _page("The gateway takes requests"),
        "/metrics": _page("Prometheus metrics", "text/plain"),
        "/openapi.json": _page("This document"),
    }


def openapi_document() -> dict[str, object]:
    """The OpenAPI 3.1 description of every endpoint the gateway serves."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "callm gateway", "version": "1"},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "googApiKey": {"type": "apiKey", "in": "header", "name": "x-goog-api-key"},
                "queryKey": {"type": "apiKey", "in": "query", "name": "key"},
            }
        },
        "paths": _paths(),
    }
