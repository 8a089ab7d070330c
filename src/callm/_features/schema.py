"""JSON Schema made strict-compatible: the subset OpenAI's ``strict: true`` takes.

Structured output (:mod:`.output`) and tools made from functions (:mod:`.functions`) both
send their schemas through :func:`strict_schema`; see :mod:`.output` for what it changes.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

from .._core.errors import InvalidRequestError

_UNSTRICT_KEYS = (
    "minLength",
    "maxLength",
    "patternProperties",
    "unevaluatedProperties",
    "propertyNames",
    "minProperties",
    "maxProperties",
    "unevaluatedItems",
    "contains",
    "minContains",
    "maxContains",
    "uniqueItems",
)
_STRICT_FORMATS = frozenset(
    {"date-time", "time", "date", "duration", "email", "hostname", "ipv4", "ipv6", "uuid"}
)
_DROPPED = ("title", "default", "$schema", "discriminator")


def strict_schema(schema: Mapping[str, object]) -> tuple[dict[str, object], bool]:
    """A strict-compatible copy of ``schema``, and whether ``strict: true`` can be asked."""
    root = copy.deepcopy(dict(schema))
    ref = root.pop("$ref", None)
    if isinstance(ref, str):  # a recursive model: its definition becomes the root
        root = {**_resolve(root, ref), **root}
    flags = {"strict": True}
    _strictify(root, flags)
    return root, flags["strict"]


def _resolve(root: Mapping[str, object], ref: str) -> dict[str, object]:
    target: object = root
    for key in ref.removeprefix("#/").split("/"):
        target = target.get(key) if isinstance(target, Mapping) else None
    if not isinstance(target, Mapping):
        raise InvalidRequestError(f"the output schema refers to {ref!r}, which it does not define")
    return copy.deepcopy(dict(target))


def _strictify(node: object, flags: dict[str, bool]) -> None:
    if not isinstance(node, dict):
        return
    for key in _DROPPED:
        if not isinstance(node.get(key), dict):  # a property *named* "title" lives deeper
            node.pop(key, None)
    _inline_single_all_of(node)
    if "oneOf" in node:
        node["anyOf"] = node.pop("oneOf")
    if "$ref" in node and len(node) > 1:
        node["anyOf"] = [{"$ref": node.pop("$ref")}, *node.get("anyOf", ())]
    _move_to_description(node)
    if node.get("type") == "object" or "properties" in node:
        _strict_object(node, flags)
    for child in _children(node):
        _strictify(child, flags)


def _inline_single_all_of(node: dict[str, object]) -> None:
    all_of = node.get("allOf")
    if isinstance(all_of, list) and len(all_of) == 1 and isinstance(all_of[0], dict):
        del node["allOf"]
        node.update({k: v for k, v in all_of[0].items() if k not in node})


def _move_to_description(node: dict[str, object]) -> None:
    """Constraints outside the strict subset become words the model can still follow."""
    notes = [f"{k}={node.pop(k)!r}" for k in _UNSTRICT_KEYS if k in node]
    if "format" in node and node["format"] not in _STRICT_FORMATS:
        notes.append(f"format={node.pop('format')!r}")
    if notes:
        said = node.get("description")
        node["description"] = f"{said} ({', '.join(notes)})" if said else ", ".join(notes)


def _strict_object(node: dict[str, object], flags: dict[str, bool]) -> None:
    extra = node.get("additionalProperties")
    if extra not in (None, False):  # a free-form map: strict mode cannot express it
        flags["strict"] = False
        return
    properties = node.setdefault("properties", {})
    node["additionalProperties"] = False
    node["required"] = list(properties) if isinstance(properties, dict) else []


def _children(node: Mapping[str, object]) -> list[object]:
    children: list[object] = []
    for key in ("properties", "$defs", "definitions"):
        if isinstance(named := node.get(key), dict):
            children += named.values()
    for key in ("anyOf", "allOf", "prefixItems"):
        if isinstance(listed := node.get(key), list):
            children += listed
    for key in ("items", "additionalProperties", "not"):
        if isinstance(single := node.get(key), dict):
            children.append(single)
    return children
