"""Typed request options: which tools the model may call, and the format of its reply.

Callers pass them the way they know them from OpenAI — ``tool_choice="required"``, a tool's
name, ``{"type": "function", "function": {"name": "f"}}``; ``response_format={"type":
"json_schema", "json_schema": {…}}`` or callm's flat ``{"type": "json_schema", "name",
"schema", "strict"}`` — or as these values. :func:`tool_choice_of` and
:func:`response_format_of` read every form once, when the Request is made, so each protocol
encodes a typed value instead of parsing an OpenAI-shaped dict again. A provider's own
object that callm has no words for is kept whole (``native``) and sent as given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal, TypeAlias

from .request_errors import InvalidRequestError

ToolMode: TypeAlias = Literal["auto", "none", "required"]
FormatType: TypeAlias = Literal["text", "json_object", "json_schema"]
_MODES: Mapping[str, ToolMode] = {"auto": "auto", "none": "none", "required": "required"}
_FORMAT_TYPES: Mapping[object, FormatType] = {
    "text": "text",
    "json_object": "json_object",
    "json_schema": "json_schema",
}
_SCHEMA_KEYS = frozenset({"name", "schema", "strict", "description"})


@dataclass(frozen=True, slots=True)
class ToolChoice:
    """``mode`` "auto" (the model decides), "none", or "required" (it must call a tool);
    ``name``: the one tool it must call. ``native``: a provider's own object, sent as given."""

    mode: ToolMode = "auto"
    name: str | None = None
    native: Mapping[str, object] | None = None

    @property
    def forced(self) -> bool:
        """Whether the model must call a tool (a native choice is taken to force one)."""
        return self.mode == "required" or self.native is not None

    def as_json(self) -> str | dict[str, object]:
        """The choice as callm's call parameter takes it: a mode, a tool's name, or the object."""
        if self.native is not None:
            return dict(self.native)
        return self.name if self.name is not None else self.mode


@dataclass(frozen=True, slots=True)
class ResponseFormat:
    """``type`` "text", "json_object" (any JSON) or "json_schema" (JSON matching ``schema``,
    under ``name``; ``strict`` asks the provider to enforce it), or None for a type callm does
    not know. ``native``: the format as the caller gave it when it says more than these
    fields (an unknown type, other keys); protocols that take OpenAI's shape send it as given.
    """

    type: FormatType | None
    schema: Mapping[str, object] | None = None
    name: str | None = None
    strict: bool | None = None
    description: str | None = None
    native: Mapping[str, object] | None = None

    @property
    def given_type(self) -> object:
        """The type as the caller wrote it (for messages about a type callm does not know)."""
        return self.native.get("type") if self.native is not None else self.type

    def as_json(self) -> dict[str, object]:
        """callm's flat form: ``{"type", "name", "schema", "strict", "description"}`` as set,
        or the caller's own object."""
        if self.native is not None:
            return dict(self.native)
        out: dict[str, object] = {"type": self.type}
        for key in ("name", "schema", "strict", "description"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        return out


def tool_choice_of(value: ToolChoice | str | Mapping[str, object]) -> ToolChoice:
    """A tool choice as callers write it: a mode, a tool's name, OpenAI's function objects
    (Chat's ``{"type": "function", "function": {"name"}}`` or Responses' flat one)."""
    if isinstance(value, ToolChoice):
        return value
    if isinstance(value, str):
        mode = _MODES.get(value)
        return ToolChoice(mode) if mode is not None else ToolChoice("required", value)
    if not isinstance(value, Mapping):
        raise InvalidRequestError(
            f"tool_choice must be 'auto', 'none', 'required', a tool's name or a dict, "
            f"not {type(value).__name__}"
        )
    name = _function_name(value)
    return ToolChoice("required", name) if name is not None else ToolChoice(native=value)


def _function_name(choice: Mapping[str, object]) -> str | None:
    """The tool an OpenAI-style ``{"type": "function", …}`` choice names, if that is all it says."""
    if choice.get("type") != "function":
        return None
    function = choice.get("function")
    if isinstance(function, Mapping) and set(choice) == {"type", "function"}:
        name = function.get("name")
        return name if isinstance(name, str) and set(function) == {"name"} else None
    name = choice.get("name")
    return name if isinstance(name, str) and set(choice) == {"type", "name"} else None


def response_format_of(value: ResponseFormat | Mapping[str, object]) -> ResponseFormat:
    """A response format as callers write it: OpenAI's (``json_schema`` nested under
    ``"json_schema"``), callm's flat one, ``{"type": "json_object"}`` or ``"text"``."""
    if isinstance(value, ResponseFormat):
        return value
    if not isinstance(value, Mapping):
        raise InvalidRequestError(
            f"response_format must be a dict such as {{'type': 'json_object'}}, "
            f"not {type(value).__name__}"
        )
    given = value.get("type")
    kind = _FORMAT_TYPES.get(given) if isinstance(given, str) else None
    if kind != "json_schema":
        plain = kind is not None and set(value) == {"type"}
        return ResponseFormat(kind) if plain else ResponseFormat(kind, native=value)
    nested = value.get("json_schema")
    if isinstance(nested, Mapping) and set(value) == {"type", "json_schema"}:
        fields: Mapping[str, object] = nested  # OpenAI's shape
    else:
        fields = {k: v for k, v in value.items() if k != "type"}  # callm's flat one
    schema, name = fields.get("schema"), fields.get("name")
    strict, description = fields.get("strict"), fields.get("description")
    typed = ResponseFormat(
        "json_schema",
        schema if isinstance(schema, Mapping) else None,
        name if isinstance(name, str) else None,
        strict if isinstance(strict, bool) else None,
        description if isinstance(description, str) else None,
    )
    if set(fields) <= _SCHEMA_KEYS and typed.as_json() == {"type": "json_schema", **fields}:
        return typed
    return replace(typed, native=value)  # other keys or odd values: kept for the wire
