"""A call's parameters, as users pass them, made into a provider-neutral draft Request.

The draft holds everything but the provider's model name, which the engine fills in for
each model it tries (see :mod:`callm._engine.client`).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from .._core.options import ResponseFormat, response_format_of, tool_choice_of
from .._core.params import CallParams, MessagesInput
from .._core.types import Request
from .messages import to_messages, to_tools

_NO_BODY: Mapping[str, object] = MappingProxyType({})
_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


def draft_request(messages: MessagesInput, params: CallParams, stream: bool) -> Request:
    """The Request of a call, its ``model`` left empty for the engine to fill in."""
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


def _response_format(params: CallParams) -> ResponseFormat | None:
    """The response format of a call: the one given, or the one ``output=`` implies."""
    if params.get("output") is None:
        given = params.get("response_format")
        return response_format_of(given) if given is not None else None
    from .output import response_format

    return response_format(params)
