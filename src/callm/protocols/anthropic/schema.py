"""JSON Schema → the subset Anthropic's structured outputs (``output_config.format``) accept.

Constrained decoding on Anthropic has no numeric bounds (``minimum``, ``maximum``,
``exclusiveMinimum``, ``exclusiveMaximum``, ``multipleOf``), no string lengths (``minLength``,
``maxLength``), no array bounds beyond ``minItems`` 0 or 1, and a short list of string
``format`` s; a schema using them is rejected. Like Anthropic's own SDKs, callm moves such
constraints into the ``description`` instead, where the model can still read them (and
``output=`` validation still enforces them). Recursive schemas are not supported there either;
they are sent as they are and the API says so.
"""

from __future__ import annotations

from collections.abc import Mapping

_UNSUPPORTED = (
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "maxItems",
    "uniqueItems",
)
_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "uri", "ipv4", "ipv6", "uuid"}
)
_MAPS = ("properties", "$defs", "definitions")
_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_NODES = ("items", "additionalProperties", "not")


def to_anthropic_schema(schema: Mapping[str, object]) -> dict[str, object]:
    """A copy of ``schema`` with the constraints Anthropic lacks moved into descriptions."""
    return _node(schema)


def _node(node: Mapping[str, object]) -> dict[str, object]:
    out = dict(node)
    notes = [f"{k}={out.pop(k)!r}" for k in _UNSUPPORTED if k in out]
    min_items = out.get("minItems")
    if isinstance(min_items, int) and min_items > 1:
        notes.append(f"minItems={out.pop('minItems')!r}")
    if "format" in out and out["format"] not in _FORMATS:
        notes.append(f"format={out.pop('format')!r}")
    if notes:
        said = out.get("description")
        out["description"] = f"{said} ({', '.join(notes)})" if said else ", ".join(notes)
    for key in _MAPS:
        if isinstance(named := out.get(key), Mapping):
            out[key] = {k: _child(v) for k, v in named.items()}
    for key in _LISTS:
        if isinstance(listed := out.get(key), list):
            out[key] = [_child(v) for v in listed]
    for key in _NODES:
        if isinstance(single := out.get(key), Mapping):
            out[key] = _node(single)
    return out


def _child(value: object) -> object:
    return _node(value) if isinstance(value, Mapping) else value
