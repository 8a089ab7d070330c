"""Structured output: ``output=`` → a strict JSON schema the provider enforces, and the reply →
a validated, typed value in ``Response.parsed``.

What ``output=`` takes, and the one rule that tells them apart:

* a **Mapping** is a JSON schema, sent as given after strictification and checked with the
  ``jsonschema`` library when it is installed (else: the JSON must parse, and a root object
  must hold the ``required`` keys); ``parsed`` is the decoded JSON. The named form
  ``{"name": …, "schema": {…}, "strict": …}`` (``schema`` is not a JSON Schema keyword, so it
  is unambiguous) names the format; ``"strict": False`` sends the schema untouched.
* **anything else** is a Python type pydantic can validate — a ``BaseModel``, a dataclass, a
  ``TypedDict``, ``list[Model]``, a union … — turned into JSON Schema by pydantic's
  ``TypeAdapter`` and validated by it; ``parsed`` is the typed value.

The schema is made **strict-compatible** (OpenAI's ``strict: true`` subset, which Anthropic and
Gemini accept too): every object gets ``additionalProperties: false`` and lists all of its
properties in ``required`` (a field with a default is therefore always filled in by the model;
``Optional`` fields are already nullable), ``title`` / ``default`` / ``$schema`` are dropped,
``oneOf`` becomes ``anyOf``, a ``$ref`` with siblings is wrapped in ``anyOf``, and keywords the
subset lacks (``minLength``, ``uniqueItems``, unusual ``format`` s …) move into the
``description`` — local validation still enforces them. A free-form map (``dict[str, X]``)
cannot be strict: such a schema is sent with ``strict: false``.

Providers need an object at the root: any other root (``list[Model]``, ``int``, a union) is
wrapped as ``{"value": …}`` and unwrapped again before validation.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Protocol

from .._core.errors import InvalidRequestError, StructuredOutputError
from .._core.json import get_list
from .._core.options import ResponseFormat
from .._core.params import MessagesInput
from .._core.types import Message, Response
from .messages import to_messages
from .schema import strict_schema

if TYPE_CHECKING:
    from pydantic import ValidationError

    from .._core.params import CallParams
    from .caller import AsyncCaller, Caller

DEFAULT_OUTPUT_RETRIES = 2
_WRAP_KEY = "value"


class InvalidOutput(Exception):
    """The reply did not validate; ``errors`` say why, one string each."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """What ``output=`` asks for: the format sent, and how a reply is checked."""

    name: str
    schema: Mapping[str, object]
    strict: bool
    wrapped: bool
    # Decoded JSON (already unwrapped) → the typed value; raises InvalidOutput.
    validate: Callable[[object], object]

    @property
    def response_format(self) -> ResponseFormat:
        """The ``json_schema`` response format, which every protocol translates."""
        return ResponseFormat("json_schema", self.schema, self.name, self.strict)

    def parse(self, text: str) -> object:
        """The reply text → the validated value; raises InvalidOutput."""
        try:
            data = json.loads(json_text(text))
        except ValueError as exc:
            raise InvalidOutput([f"the reply is not valid JSON: {exc}"]) from None
        if self.wrapped and isinstance(data, dict) and _WRAP_KEY in data:
            data = data[_WRAP_KEY]
        return self.validate(data)


def output_spec(output: object) -> OutputSpec:
    """The spec of an ``output=`` value (cached per type)."""
    if isinstance(output, Mapping):
        return _dict_spec(output)
    try:
        return _type_spec(output)
    except TypeError:  # unhashable: not a type at all
        raise InvalidRequestError(_NOT_AN_OUTPUT.format(output)) from None


_NOT_AN_OUTPUT = (
    "output={!r} is not an output type: give a pydantic model, a dataclass, a TypedDict "
    "or a JSON-schema dict"
)


def response_format(params: CallParams) -> ResponseFormat:
    """The response format of a call with ``output=``; refuses a second format beside it."""
    return _checked_spec(params).response_format


def _checked_spec(params: CallParams) -> OutputSpec:
    if params.get("response_format") is not None:
        raise InvalidRequestError(
            "give output= or response_format=, not both (output= builds the response format)"
        )
    return output_spec(params["output"])


# --- Python types, through pydantic -----------------------------------------------------------


@lru_cache(maxsize=256)
def _type_spec(target: Any) -> OutputSpec:  # any type form pydantic takes
    from pydantic import TypeAdapter, ValidationError
    from pydantic.errors import PydanticUserError

    try:
        adapter = TypeAdapter(target)
        schema = adapter.json_schema()
    except (PydanticUserError, TypeError, ValueError) as exc:
        raise InvalidRequestError(f"{_NOT_AN_OUTPUT.format(target)} ({exc})") from exc
    strict, ok = strict_schema(schema)
    wrapped = _needs_wrap(strict)
    if wrapped:
        strict = _wrap(strict)

    def validate(data: object) -> object:
        try:
            # JSON mode, as the data came from JSON (strict models take ISO dates there).
            return adapter.validate_json(json.dumps(data))
        except ValidationError as exc:
            raise InvalidOutput(_pydantic_errors(exc)) from None

    return OutputSpec(_name(getattr(target, "__name__", None)), strict, ok, wrapped, validate)


def _pydantic_errors(exc: ValidationError) -> list[str]:
    errors = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(p) for p in error["loc"])
        errors.append(f"{where}: {error['msg']}" if where else str(error["msg"]))
    return errors


# --- JSON-schema dicts --------------------------------------------------------------------------


def _dict_spec(output: Mapping[str, object]) -> OutputSpec:
    given = output.get("schema")
    named = isinstance(given, Mapping)
    schema = given if isinstance(given, Mapping) else output
    name = _name(output.get("name") if named else schema.get("title"))
    check = _schema_checker(schema)
    if named and output.get("strict") is False:
        return OutputSpec(name, schema, False, False, check)
    sent, ok = strict_schema(schema)
    wrapped = _needs_wrap(sent)
    return OutputSpec(name, _wrap(sent) if wrapped else sent, ok, wrapped, check)


def _schema_checker(schema: Mapping[str, object]) -> Callable[[object], object]:
    """A validator for a JSON schema: jsonschema's when installed, else a minimal check."""
    try:
        import jsonschema  # type: ignore[import-untyped]
    except ImportError:
        return lambda data: _minimal_check(schema, data)
    validator = jsonschema.validators.validator_for(schema)(schema)

    def check(data: object) -> object:
        errors = sorted(validator.iter_errors(data), key=lambda e: list(e.absolute_path))
        if errors:
            raise InvalidOutput([_schema_error(e) for e in errors])
        return data

    return check


class _SchemaError(Protocol):
    """What is read of a jsonschema ValidationError."""

    absolute_path: Sequence[object]
    message: str


def _schema_error(error: _SchemaError) -> str:
    where = ".".join(str(p) for p in error.absolute_path)
    return f"{where}: {error.message}" if where else str(error.message)


_JSON_TYPES: dict[str, type | tuple[type, ...]] = {
    "object": dict,
    "array": list,
    "string": str,
    "integer": int,
    "number": (int, float),
    "boolean": bool,
}


def _minimal_check(schema: Mapping[str, object], data: object) -> object:
    """Without jsonschema: the root type and the root object's required keys only."""
    expected = _JSON_TYPES.get(str(schema.get("type")))
    if expected is not None and not isinstance(data, expected):
        raise InvalidOutput([f"expected a JSON {schema['type']}, got {type(data).__name__}"])
    if isinstance(data, dict):
        missing = [k for k in get_list(schema, "required") if k not in data]
        if missing:
            raise InvalidOutput([f"{k}: Field required" for k in missing])
    return data


def _needs_wrap(schema: Mapping[str, object]) -> bool:
    return schema.get("type") != "object"


def _wrap(schema: dict[str, object]) -> dict[str, object]:
    """A non-object root as ``{"value": …}`` (its ``$defs`` stay at the root)."""
    defs = schema.pop("$defs", None)
    wrapped: dict[str, object] = {
        "type": "object",
        "properties": {_WRAP_KEY: schema},
        "required": [_WRAP_KEY],
        "additionalProperties": False,
    }
    if defs is not None:
        wrapped["$defs"] = defs
    return wrapped


def _name(name: object) -> str:
    """A format name providers accept: ``[a-zA-Z0-9_-]{1,64}``."""
    cleaned = re.sub(r"[^a-zA-Z0-9_-]", "_", str(name or ""))[:64]
    return cleaned or "output"


# --- replies ------------------------------------------------------------------------------------


def json_text(text: str) -> str:
    """The JSON of a reply, without the Markdown fence some models wrap it in."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.partition("\n")[2].rstrip()
        stripped = stripped.removesuffix("```")
    return stripped


def judge(spec: OutputSpec, response: Response) -> Response:
    """``response`` with ``parsed`` set; raises InvalidOutput (re-ask) or StructuredOutputError.

    A reply that calls tools is returned unparsed: Client.run() answers the calls first.
    """
    if response.tool_calls:
        return response
    refusal = response.refusal
    if refusal is not None or response.finish_reason in ("refusal", "content_filter"):
        text = refusal or response.text
        raise StructuredOutputError(
            f"the model refused to answer: {text}", text=text, errors=[], response=response
        )
    try:
        return replace(response, parsed=spec.parse(response.text))
    except InvalidOutput as exc:
        if response.finish_reason != "length":
            raise
        # Asking again under the same max_tokens would only be cut off again.
        raise StructuredOutputError(
            "the reply was cut off at max_tokens before its JSON was complete: raise max_tokens",
            text=response.text,
            errors=exc.errors,
            response=response,
        ) from None


def reask(
    history: tuple[Message, ...], response: Response, errors: list[str]
) -> tuple[Message, ...]:
    """The history for the next attempt: the bad reply, and what was wrong with it."""
    listed = "\n".join(f"- {e}" for e in errors)
    note = (
        f"Your reply did not match the schema:\n{listed}\n"
        "Reply again with only JSON matching the schema."
    )
    return (*history, response.to_message(), Message.user(note))


def give_up(response: Response, errors: list[str], attempts: int) -> StructuredOutputError:
    return StructuredOutputError(
        f"the reply did not match the output schema after {attempts} attempt(s): "
        + "; ".join(errors),
        text=response.text,
        errors=errors,
        response=response,
    )


def _plan(params: CallParams) -> tuple[OutputSpec, int, CallParams]:
    """The spec, the re-ask budget and the plain call parameters of a structured call."""
    spec = _checked_spec(params)
    inner = params.copy()
    del inner["output"]
    inner["response_format"] = spec.response_format
    retries = inner.pop("output_retries", DEFAULT_OUTPUT_RETRIES)
    if retries < 0:
        raise InvalidRequestError("output_retries must be 0 or more")
    return spec, retries, inner


def complete(
    client: Caller, model: str | None, messages: MessagesInput, params: CallParams
) -> Response:
    """Client.complete with ``output=``: call, validate, re-ask with the errors if need be."""
    spec, retries, inner = _plan(params)
    history = to_messages(messages)
    for attempt in range(retries + 1):
        response = client.complete(model, history, **inner)
        try:
            return judge(spec, response)
        except InvalidOutput as exc:
            if attempt == retries:
                raise give_up(response, exc.errors, attempt + 1) from None
            history = reask(history, response, exc.errors)
    raise AssertionError("unreachable: the loop returns or raises")


async def complete_async(
    client: AsyncCaller, model: str | None, messages: MessagesInput, params: CallParams
) -> Response:
    """The async twin of :func:`complete`."""
    spec, retries, inner = _plan(params)
    history = to_messages(messages)
    for attempt in range(retries + 1):
        response = await client.complete(model, history, **inner)
        try:
            return judge(spec, response)
        except InvalidOutput as exc:
            if attempt == retries:
                raise give_up(response, exc.errors, attempt + 1) from None
            history = reask(history, response, exc.errors)
    raise AssertionError("unreachable: the loop returns or raises")


def stream_params(params: CallParams) -> tuple[OutputSpec, CallParams]:
    """The spec and the plain call parameters of a structured stream (streams never re-ask)."""
    spec, _, inner = _plan(params)
    return spec, inner
