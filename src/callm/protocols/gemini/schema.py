"""JSON Schema → the OpenAPI subset older Gemini models and gateways take (a quirk flag)."""

from __future__ import annotations

from collections.abc import Mapping

from ..._core.errors import InvalidRequestError

_OPENAPI_KEEP = frozenset(
    {
        "description",
        "format",
        "title",
        "required",
        "minimum",
        "maximum",
        "minItems",
        "maxItems",
        "minLength",
        "maxLength",
        "minProperties",
        "maxProperties",
        "pattern",
        "default",
        "example",
        "propertyOrdering",
    }
)
_MAX_SCHEMA_DEPTH = 32


def to_openapi_schema(schema: Mapping[str, object]) -> dict[str, object]:
    """JSON Schema → Gemini's OpenAPI-subset ``Schema``.

    ``$ref`` is inlined, types are upper-cased, ``null`` in a type list or ``anyOf`` becomes
    ``nullable``, ``const`` becomes a one-value ``enum``, and keywords the subset lacks
    (``additionalProperties``, ``$schema``, ``$defs`` …) are left out. A recursive schema
    cannot be inlined: it raises InvalidRequestError (send JSON Schema instead).
    """
    return _openapi(schema, schema, 0)


def _openapi(node: object, root: Mapping[str, object], depth: int) -> dict[str, object]:
    if depth > _MAX_SCHEMA_DEPTH:
        raise InvalidRequestError(
            "the schema is recursive or too deep for Gemini's OpenAPI schema subset; "
            "set the provider's quirk openapi_schema to false to send it as JSON Schema"
        )
    node = _resolve_ref(node, root)
    if not isinstance(node, Mapping):
        return {}
    out: dict[str, object] = {k: v for k, v in node.items() if k in _OPENAPI_KEEP}
    kind = node.get("type")
    if isinstance(kind, list):
        if "null" in kind:
            out["nullable"] = True
        kind = next((k for k in kind if k != "null"), None)
    if isinstance(kind, str) and kind != "null":
        out["type"] = kind.upper()
    if "const" in node:
        out["enum"] = [node["const"]]
    if "enum" in node:
        out["enum"] = [str(v) for v in node["enum"] if v is not None]
    if isinstance(node.get("properties"), Mapping):
        out["properties"] = {k: _openapi(v, root, depth + 1) for k, v in node["properties"].items()}
    if "items" in node:
        out["items"] = _openapi(node["items"], root, depth + 1)
    variants = node.get("anyOf") or node.get("oneOf")
    if isinstance(variants, list):
        _openapi_variants(out, variants, root, depth)
    return out


def _openapi_variants(
    out: dict[str, object], variants: list[object], root: Mapping[str, object], depth: int
) -> None:
    kept = [v for v in variants if not (isinstance(v, Mapping) and v.get("type") == "null")]
    if len(kept) < len(variants):
        out["nullable"] = True
    converted = [_openapi(v, root, depth + 1) for v in kept]
    if len(converted) == 1:
        out.update(converted[0])
    elif converted:
        out["anyOf"] = converted


def _resolve_ref(node: object, root: Mapping[str, object]) -> object:
    if not isinstance(node, Mapping):
        return node
    ref = node.get("$ref")
    if not isinstance(ref, str) or not ref.startswith("#/"):
        return node
    target: object = root
    for key in ref[2:].split("/"):
        target = target.get(key) if isinstance(target, Mapping) else None
    if not isinstance(target, Mapping):
        raise InvalidRequestError(f"the schema refers to {ref!r}, which it does not define")
    return {**target, **{k: v for k, v in node.items() if k != "$ref"}}
