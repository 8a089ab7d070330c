"""A call's parameters, as users pass them, made into a provider-neutral draft Request.

The draft holds everything but the provider's model name, which the engine fills in for
each model it tries (see :mod:`callm._engine.client`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from types import MappingProxyType

from .._core.errors import InvalidRequestError
from .._core.options import ResponseFormat, response_format_of, tool_choice_of
from .._core.params import CallParams, MessagesInput
from .._core.types import Request
from .messages import to_messages, to_tools

_NO_BODY: Mapping[str, object] = MappingProxyType({})
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def draft_request(messages: MessagesInput, params: CallParams, stream: bool) -> Request:
    """The Request of a call, its ``model`` left empty for the engine to fill in."""
    check_params(params)
    stop = params.get("stop")
    choice = params.get("tool_choice")
    return Request(
        model="",
        messages=to_messages(messages, params.get("system")),
        max_tokens=params.get("max_tokens"),
        temperature=params.get("temperature"),
        top_p=params.get("top_p"),
        top_k=params.get("top_k"),
        stop=(stop,) if isinstance(stop, str) else tuple(stop) if stop else None,
        seed=params.get("seed"),
        n=params.get("n"),
        user=params.get("user"),
        tools=to_tools(params.get("tools")),
        tool_choice=tool_choice_of(choice) if choice is not None else None,
        response_format=_response_format(params),
        stream=stream,
        extra_body=params.get("extra_body") or _NO_BODY,
        extra_headers=params.get("extra_headers") or _NO_HEADERS,
        cache=params.get("cache"),
    )


def check_params(params: Mapping[str, object]) -> None:
    """Refuse a parameter of the wrong type or a number JSON cannot carry, before sending
    (``temperature=nan`` would otherwise go out as invalid JSON, ``"hot"`` as a string).
    Only the parameters given are looked at: this runs on every call."""
    for name, value in params.items():
        check = _CHECKS.get(name)
        if check is not None and value is not None:
            check(name, value)


def _real(name: str, value: object) -> None:
    if not _finite(value):
        raise InvalidRequestError(f"{name} must be a finite number, not {value!r}")


def _count(least: int | None) -> Callable[[str, object], None]:
    def check(name: str, value: object) -> None:
        if not _whole(value) or (least is not None and value < least):  # type: ignore[operator]
            at_least = f" of at least {least}" if least is not None else ""
            raise InvalidRequestError(f"{name} must be a whole number{at_least}, not {value!r}")

    return check


def _stop(name: str, stop: object) -> None:
    if not (
        isinstance(stop, str)
        or (isinstance(stop, list | tuple) and all(isinstance(s, str) for s in stop))
    ):
        raise InvalidRequestError(f"stop must be a string or a list of strings, not {stop!r}")


# What each parameter protocols send as JSON numbers (or stop strings) must be.
_CHECKS: dict[str, Callable[[str, object], None]] = {
    "temperature": _real,
    "top_p": _real,
    "max_tokens": _count(1),
    "top_k": _count(1),
    "n": _count(1),
    "seed": _count(None),
    "stop": _stop,
}


def _finite(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _response_format(params: CallParams) -> ResponseFormat | None:
    """The response format of a call: the one given, or the one ``output=`` implies."""
    if params.get("output") is None:
        given = params.get("response_format")
        return response_format_of(given) if given is not None else None
    from .output import response_format

    return response_format(params)
