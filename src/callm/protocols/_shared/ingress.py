"""What every server codec shares: reading a caller's JSON body with errors that name the
field, SSE frames, and the HTTP status an error is sent with.

A server codec reads bodies written by other people's code, so every check here raises
:class:`~callm.InvalidRequestError` with the JSON path of the offending field and what it
should have been (``messages[2].content[0].text must be a string, not a number``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping

from ..._core.errors import (
    APIConnectionError,
    APIError,
    APIResponseError,
    APITimeoutError,
    BudgetExceededError,
    CallmError,
    InvalidRequestError,
    RequestVetoed,
)

dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode

_KINDS = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "true or false",
    int: "a number",
    float: "a number",
    type(None): "null",
}


# --- reading a body ------------------------------------------------------------------------


def describe(value: object) -> str:
    """What a JSON value is, for a message: "a string", "an array" …"""
    return _KINDS.get(type(value), type(value).__name__)


def invalid(where: str, wanted: str, value: object) -> InvalidRequestError:
    return InvalidRequestError(f"{where} must be {wanted}, not {describe(value)}")


def body_object(body: object) -> Mapping[str, object]:
    """The request body itself, which must be a JSON object."""
    if not isinstance(body, Mapping):
        raise invalid("the request body", "a JSON object", body)
    return body


def an_object(value: object, where: str) -> Mapping[str, object]:
    if not isinstance(value, Mapping):
        raise invalid(where, "an object", value)
    return value


def an_array(value: object, where: str) -> list[object]:
    if not isinstance(value, list):
        raise invalid(where, "an array", value)
    return value


def objects(value: object, where: str) -> Iterator[tuple[str, Mapping[str, object]]]:
    """``(path, object)`` for each item of an array that must hold objects."""
    for i, item in enumerate(an_array(value, where)):
        at = f"{where}[{i}]"
        yield at, an_object(item, at)


def a_string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise invalid(where, "a string", value)
    return value


def required(body: Mapping[str, object], key: str, where: str = "") -> object:
    if key not in body or body[key] is None:
        raise InvalidRequestError(f"{where}{key} is required")
    return body[key]


def optional_int(body: Mapping[str, object], key: str, where: str = "") -> int | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise invalid(where + key, "an integer", value)
    return value


def optional_number(body: Mapping[str, object], key: str, where: str = "") -> float | None:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(where + key, "a number", value)
    return value


def optional_bool(body: Mapping[str, object], key: str, where: str = "") -> bool | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise invalid(where + key, "true or false", value)
    return value


def optional_string(body: Mapping[str, object], key: str, where: str = "") -> str | None:
    value = body.get(key)
    if value is None:
        return None
    return a_string(value, where + key)


def string_list(value: object, where: str) -> tuple[str, ...]:
    """A string or an array of strings (``stop``, ``stop_sequences`` …) as a tuple."""
    if isinstance(value, str):
        return (value,)
    items = an_array(value, where)
    return tuple(a_string(item, f"{where}[{i}]") for i, item in enumerate(items))


def model_of(body: Mapping[str, object], model: str | None) -> str:
    """The model: the one given (from the URL) or the body's ``model``."""
    if model is not None:
        return model
    value = body.get("model")
    if not isinstance(value, str) or not value:
        raise InvalidRequestError("model is required: the name of the model to call")
    return value


# --- writing a stream ------------------------------------------------------------------------


def sse(data: object, event: str | None = None) -> bytes:
    """One SSE frame: an optional ``event:`` line and one ``data:`` line of compact JSON."""
    payload = data if isinstance(data, str) else dumps(data)
    if event is None:
        return f"data: {payload}\n\n".encode()
    return f"event: {event}\ndata: {payload}\n\n".encode()


# --- errors -----------------------------------------------------------------------------------


def status_for(error: CallmError) -> int:
    """The HTTP status a caller is sent for ``error`` when the server names none.

    An upstream's own HTTP error keeps its status; failures to reach the upstream or to
    read its answer are the gateway's (502, or 504 for a timeout).
    """
    if isinstance(error, InvalidRequestError):
        return 400
    if isinstance(error, BudgetExceededError):
        return 429
    if isinstance(error, RequestVetoed):
        return 403
    if isinstance(error, APITimeoutError):
        return 504
    if isinstance(error, APIConnectionError | APIResponseError):
        return 502
    if isinstance(error, APIError) and error.status_code and 400 <= error.status_code <= 599:
        return error.status_code
    return 500


def message_of(error: CallmError) -> str:
    """The text a caller reads: an API error's own message, else the exception's text."""
    if isinstance(error, APIError):
        return error.message or str(error)
    return str(error) or type(error).__name__


def code_of(error: CallmError) -> str | None:
    """A machine-readable code: the upstream's, or callm's own for a spent budget."""
    if isinstance(error, BudgetExceededError):
        return "budget_exceeded"
    code = getattr(error, "code", None)
    return str(code) if code else None
