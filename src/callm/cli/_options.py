"""``-o key=value`` options: parse them and sort them into call parameters and ``extra_body``.

Values are read as JSON when they parse (``0.2``, ``true``, ``{"type": "json_object"}``) and
kept as text otherwise. Keys that name a call parameter are checked for the right type;
every other key goes into the request body as given.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any


class OptionError(ValueError):
    """An ``-o`` option that cannot be used as given; the message says how to fix it."""


def _integer(key: str, raw: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise OptionError(f"{key} must be a whole number, not {raw!r}")


def _number(key: str, raw: str, value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    raise OptionError(f"{key} must be a number, not {raw!r}")


def _text(key: str, raw: str, value: Any) -> str:
    return raw


def _stop(key: str, raw: str, value: Any) -> str | list[str]:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return raw


def _tool_choice(key: str, raw: str, value: Any) -> str | dict[str, object]:
    return value if isinstance(value, dict) else raw


def _response_format(key: str, raw: str, value: Any) -> dict[str, object]:
    # The shorthand -o response_format=json_object means {"type": "json_object"}.
    return value if isinstance(value, dict) else {"type": raw}


CALL_PARAMS: Mapping[str, Callable[[str, str, Any], Any]] = {
    "max_tokens": _integer,
    "temperature": _number,
    "top_p": _number,
    "stop": _stop,
    "seed": _integer,
    "n": _integer,
    "user": _text,
    "tool_choice": _tool_choice,
    "response_format": _response_format,
}


def parse_value(raw: str) -> Any:
    """``raw`` as JSON when it parses, else the text itself."""
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def split_option(item: str) -> tuple[str, str]:
    """``"key=value"`` → ``("key", "value")``; the value may itself contain ``=``."""
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise OptionError(f"{item!r} must be written KEY=VALUE, e.g. -o temperature=0.2")
    return key, raw


# Body fields callm writes itself, from its own options: an -o would silently replace them.
OWN_FIELDS: Mapping[str, str] = {
    "model": "choose the model with -m",
    "messages": "give the prompt as an argument or on stdin",
    "stream": "use --no-stream to wait for the whole answer",
    "stream_options": "callm asks for the usage itself",
    "system": "give the system prompt with -s",
    "input": "give the prompt as an argument or on stdin",
    "contents": "give the prompt as an argument or on stdin",
    "prompt": "give the prompt as an argument or on stdin",
}


def parse_options(items: Iterable[str]) -> tuple[dict[str, object], dict[str, object]]:
    """The ``-o`` options as (call parameters, extra_body fields); a repeated key is an error."""
    params: dict[str, object] = {}
    extra: dict[str, object] = {}
    for item in items:
        key, raw = split_option(item)
        if key in OWN_FIELDS:
            raise OptionError(f"-o {key} would replace what callm sends: {OWN_FIELDS[key]}")
        if key in params or key in extra:
            raise OptionError(f"-o {key} is given more than once")
        check = CALL_PARAMS.get(key)
        if check is None:
            extra[key] = parse_value(raw)
        else:
            params[key] = check(key, raw, parse_value(raw))
    return params, extra
