"""The gateway's OpenAPI document (``GET /openapi.json``).

Request bodies are described as loosely as the protocols themselves allow: the server
codecs check every field and answer 400 naming what is wrong, so the schemas here say what
is required and leave the rest open.
"""

from __future__ import annotations

_ERROR = {
    "description": "An error in the caller's protocol's shape",
    "content": {"application/json": {"schema": {"type": "object"}}},
}
_JSON_REPLY = {
    "description": "The reply (or an SSE stream when the body asks for one)",
    "content": {
        "application/json": {"schema": {"type": "object"}},
        "text/event-stream": {"schema": {"type": "string"}},
    },
}
_MESSAGES = {
    "type": "array",
    "minItems": 1,
    "items": {
        "type": "object",
        "required": ["role", "content"],
        "properties": {"role": {"type": "string"}, "content": {}},
    },
}


def _model_call(
    summary: str, required: list[str], properties: dict[str, object]
) -> dict[str, object]:
    return {
        "post": {
            "summary": summary,
            "security": [{"bearer": []}, {"apiKey": []}],
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {"type": "object", "required": required, "properties": properties}
                    }
                },
            },
            "responses": {
                "200": _JSON_REPLY,
                "400": _ERROR,
                "401": _ERROR,
                "403": _ERROR,
                "404": _ERROR,
                "413": _ERROR,
                "429": _ERROR,
                "502": _ERROR,
                "503": _ERROR,
                "504": _ERROR,
            },
        }
    }


def _admin(method: str, summary: str, body: bool = False) -> dict[str, object]:
    operation: dict[str, object] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "responses": {
            "200": _JSON_REPLY,
            "201": _JSON_REPLY,
            "400": _ERROR,
            "401": _ERROR,
            "404": _ERROR,
        },
    }
    if body:
        operation["requestBody"] = {"content": {"application/json": {"schema": {"type": "object"}}}}
    return {method: operation}


def _page(summary: str) -> dict[str, object]:
    return {"get": {"summary": summary, "responses": {"200": _JSON_REPLY, "503": _ERROR}}}


def openapi_document() -> dict[str, object]:
    """The OpenAPI 3.1 description of every endpoint the gateway serves."""
    chat = {"model": {"type": "string"}, "messages": _MESSAGES, "stream": {"type": "boolean"}}
    anthropic = {**chat, "max_tokens": {"type": "integer", "minimum": 1}}
    key_path = {
        "name": "key_id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    model_path = {"name": "model", "in": "path", "required": True, "schema": {"type": "string"}}
    keys_item = {
        **_admin("get", "One key with its spend"),
        **_admin("patch", "Change a key's limits", body=True),
        **_admin("delete", "Revoke a key at once"),
        "parameters": [key_path],
    }
    gemini = _model_call("Gemini generateContent", ["contents"], {"contents": {"type": "array"}})
    gemini["parameters"] = [model_path]
    return {
        "openapi": "3.1.0",
        "info": {"title": "callm gateway", "version": "1"},
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
            }
        },
        "paths": {
            "/v1/chat/completions": _model_call(
                "OpenAI Chat Completions", ["model", "messages"], chat
            ),
            "/v1/messages": _model_call(
                "Anthropic Messages", ["model", "messages", "max_tokens"], anthropic
            ),
            "/v1beta/models/{model}:generateContent": gemini,
            "/v1/models": {
                "get": {
                    "summary": "The models this gateway serves",
                    "security": [{"bearer": []}],
                    "responses": {"200": _JSON_REPLY, "401": _ERROR},
                }
            },
            "/admin/keys": {
                **_admin("get", "List keys (never the keys themselves)"),
                **_admin("post", "Make a key (shown once)", body=True),
            },
            "/admin/keys/{key_id}": keys_item,
            "/admin/usage": _admin("get", "Calls, tokens and cost by day, key and model"),
            "/health": _page("The process is up"),
            "/ready": _page("The gateway takes requests"),
        },
    }
