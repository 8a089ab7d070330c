"""Tools from Python functions: the signature, type hints and docstring become a schema.

``callm.tool(fn)`` reads the parameters of ``fn`` and builds a pydantic model of them (one
field per parameter, aliased to the parameter's name so names like ``json`` or ``_id``
work). That model gives both halves of a tool call:

- the JSON Schema sent to the provider (titles dropped, ``$defs`` kept at the root: OpenAI,
  Anthropic and Gemini's ``parametersJsonSchema`` take ``$ref``; Gemini's OpenAPI quirk
  inlines them), with ``additionalProperties: false``;
- the validation of the model's arguments before the call, so a parameter hinted as a
  pydantic model, dataclass or Enum receives one, and bad arguments become a message the
  model can act on instead of a crash.

Descriptions come from ``Annotated[X, "text"]``, ``pydantic.Field(description=…)`` or the
docstring (Google, NumPy or reST style), in that order. pydantic and docstring_parser are
imported on first use only.
"""

from __future__ import annotations

import functools
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, get_args, get_origin, get_type_hints, overload

from .._core.errors import InvalidRequestError
from .._core.types import Tool

if TYPE_CHECKING:
    from pydantic import BaseModel

_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# Keys whose values are data, not schemas: never strip a "title" inside them.
_DATA_KEYS = frozenset({"default", "enum", "const", "examples", "example"})


@overload
def tool(
    function: Callable[..., object],
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
) -> Tool: ...


@overload
def tool(
    function: None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
) -> Callable[[Callable[..., object]], Tool]: ...


def tool(
    function: Callable[..., object] | None = None,
    *,
    name: str | None = None,
    description: str | None = None,
    strict: bool | None = None,
) -> Tool | Callable[[Callable[..., object]], Tool]:
    """A :class:`callm.Tool` made from a function's signature, type hints and docstring.

    Use it as ``callm.tool(fn)``, ``@callm.tool`` or ``@callm.tool(name=…, strict=True)``.
    ``strict=True`` asks the provider to hold the model to the schema (OpenAI's strict
    subset: every parameter is then required, the defaulted ones included).
    Raises InvalidRequestError for a signature that cannot be a tool (``*args``,
    ``**kwargs``, a hint with no JSON Schema).
    """
    if function is None:
        return functools.partial(_make_tool, name=name, description=description, strict=strict)
    return _make_tool(function, name=name, description=description, strict=strict)


def _make_tool(
    function: Callable[..., object],
    *,
    name: str | None,
    description: str | None,
    strict: bool | None,
) -> Tool:
    if not callable(function):
        raise InvalidRequestError(f"a tool must be a function, not {type(function).__name__}")
    tool_name = name or getattr(function, "__name__", None) or type(function).__name__
    if not _NAME.match(tool_name):
        raise InvalidRequestError(
            f"{tool_name!r} is not a valid tool name (letters, digits, _ and -, at most 64): "
            "pass callm.tool(fn, name=...)"
        )
    signature = signature_of(function)
    return Tool(
        name=tool_name,
        description=signature.description if description is None else description,
        parameters=_strict(signature.schema, tool_name) if strict else signature.schema,
        strict=strict,
        function=function,
    )


def _strict(schema: Mapping[str, object], name: str) -> dict[str, object]:
    """The schema in OpenAI's strict subset (the one structured output uses, see _output):
    every property required — so the model fills in the defaulted ones too — and closed."""
    from .schema import strict_schema

    strict, possible = strict_schema(schema)
    if not possible:
        raise InvalidRequestError(
            f"the tool {name!r} cannot be strict: a free-form map (dict[str, X]) has no "
            "strict schema; drop strict=True or hint a model/TypedDict instead"
        )
    return strict


@dataclass(frozen=True, slots=True)
class Signature:
    """What callm knows about a tool function: its schema and how to call it."""

    schema: Mapping[str, object]
    description: str
    model: type[BaseModel]
    # (parameter name, model field name, positional only?) in signature order.
    params: tuple[tuple[str, str, bool], ...]

    def bind(self, arguments: Mapping[str, object]) -> tuple[list[object], dict[str, object]]:
        """The call's positional and keyword arguments, validated and converted to the hints.

        Raises pydantic's ValidationError when the arguments do not fit.
        """
        values = self.model.model_validate(dict(arguments))
        given = values.model_fields_set
        args: list[object] = []
        kwargs: dict[str, object] = {}
        for name, field, positional in self.params:
            if positional:
                args.append(getattr(values, field))
            elif field in given:
                kwargs[name] = getattr(values, field)
        return args, kwargs


def signature_of(function: Callable[..., object]) -> Signature:
    """The (cached) Signature of a tool function; raises InvalidRequestError if it has none."""
    try:
        return _cached_signature(function)
    except TypeError as exc:
        if "unhashable" not in str(exc):
            raise
        return _signature(function)


@functools.lru_cache(maxsize=512)
def _cached_signature(function: Callable[..., object]) -> Signature:
    return _signature(function)


def _signature(function: Callable[..., object]) -> Signature:
    from pydantic import ConfigDict, create_model

    label = getattr(function, "__qualname__", None) or repr(function)
    try:
        parameters = inspect.signature(function).parameters.values()
        hints = get_type_hints(_underlying(function), include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        raise InvalidRequestError(f"cannot read the signature of {label}: {exc}") from exc
    doc = _parse_doc(_underlying(function))
    fields: dict[str, Any] = {}  # (hint, FieldInfo): create_model wants its hints as type forms
    params: list[tuple[str, str, bool]] = []
    for index, param in enumerate(parameters):
        _check_kind(param, label)
        field = f"p{index}"
        fields[field] = _field(param, hints.get(param.name, Any), doc.params.get(param.name))
        positional = param.kind is inspect.Parameter.POSITIONAL_ONLY
        params.append((param.name, field, positional))
    try:
        model = create_model("arguments", __config__=ConfigDict(extra="forbid"), **fields)
        schema = _object_without_titles(model.model_json_schema())
    except Exception as exc:  # pydantic's schema errors have several types; all mean "no"
        reason = str(exc).strip().splitlines()[0]
        raise InvalidRequestError(
            f"cannot make a JSON schema for the parameters of {label}: {reason} "
            "(hint them with JSON-like types, or give callm.Tool an explicit schema)"
        ) from exc
    return Signature(schema, doc.summary, model, tuple(params))


def _underlying(function: Callable[..., object]) -> object:
    """Where the hints and docstring live: a partial's function, a callable's __call__."""
    while isinstance(function, functools.partial):
        function = function.func
    if inspect.isroutine(function) or inspect.isclass(function):
        return function
    return type(function).__call__


def _check_kind(param: inspect.Parameter, label: str) -> None:
    if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
        stars = "*" if param.kind is inspect.Parameter.VAR_POSITIONAL else "**"
        raise InvalidRequestError(
            f"{label} takes {stars}{param.name}: a tool needs named parameters the model can "
            "fill; list them, or give an explicit schema with "
            "callm.Tool(name, description, parameters, function=fn)"
        )


def _field(
    param: inspect.Parameter, hint: object, doc_description: str | None
) -> tuple[object, object]:
    """``(annotation, FieldInfo)`` of one parameter for pydantic.create_model."""
    from pydantic import Field

    hint, described = _annotated_description(hint)
    description = described or (None if _has_field_description(hint) else doc_description)
    default = ... if param.default is inspect.Parameter.empty else param.default
    if description is None:  # an explicit None would erase a description Annotated gave
        return hint, Field(default, alias=param.name)
    return hint, Field(default, alias=param.name, description=description)


def _annotated_description(hint: object) -> tuple[object, str | None]:
    """``Annotated[X, "text"]``: the hint without the plain strings, and the first string."""
    if get_origin(hint) is not Annotated:
        return hint, None
    base, *metadata = get_args(hint)
    texts = [m for m in metadata if isinstance(m, str)]
    if not texts:
        return hint, None
    rest = [m for m in metadata if not isinstance(m, str)]
    return (Annotated[(base, *rest)] if rest else base), texts[0]


def _has_field_description(hint: object) -> bool:
    from pydantic.fields import FieldInfo

    if get_origin(hint) is not Annotated:
        return False
    return any(isinstance(m, FieldInfo) and m.description for m in get_args(hint)[1:])


@dataclass(frozen=True, slots=True)
class _Doc:
    summary: str
    params: Mapping[str, str]


def _parse_doc(function: object) -> _Doc:
    text = inspect.getdoc(function)
    if not text:
        return _Doc("", {})
    import docstring_parser

    parsed = docstring_parser.parse(text)
    params = {p.arg_name: p.description for p in parsed.params if p.description}
    return _Doc((parsed.description or "").strip(), params)


def _without_titles(node: object) -> object:
    if isinstance(node, list):
        return [_without_titles(item) for item in node]
    if not isinstance(node, dict):
        return node
    return _object_without_titles(node)


def _object_without_titles(node: Mapping[str, object]) -> dict[str, object]:
    """pydantic's auto titles ("City", "Arguments") are noise in a tool schema: drop them."""
    return {
        key: value if key in _DATA_KEYS else _without_titles(value)
        for key, value in node.items()
        if not (key == "title" and isinstance(value, str))
    }
