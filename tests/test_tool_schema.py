"""callm.tool(): a function's signature, type hints and docstring become a tool's JSON schema."""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import pydantic
import pytest
from typing_extensions import TypedDict  # pydantic takes typing.TypedDict from 3.12 only

import callm
from callm.testing import FakeOpenAIServer
from helpers import sync_client


def obj(properties: dict[str, Any], required: list[str], **extra: Any) -> dict[str, Any]:
    """The object schema callm makes: closed to unknown arguments."""
    return {
        **extra,
        "additionalProperties": False,
        "properties": properties,
        "required": required,
        "type": "object",
    }


def test_scalars_defaults_and_optional() -> None:
    def f(name: str, count: int, ratio: float, flag: bool = False, note: str | None = None) -> None:
        pass

    t = callm.tool(f)
    assert (t.name, t.description, t.function, t.strict) == ("f", "", f, None)
    assert t.parameters == obj(
        {
            "name": {"type": "string"},
            "count": {"type": "integer"},
            "ratio": {"type": "number"},
            "flag": {"default": False, "type": "boolean"},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
        },
        ["name", "count", "ratio"],
    )


def test_unions_literals_and_containers() -> None:
    def f(  # noqa: PLR0917 (a tool with many parameters is the point)
        value: int | str,
        mode: Literal["fast", "slow"],
        tags: list[str],
        pair: tuple[int, str],
        ids: set[int],
        weights: dict[str, float],
        maybe: int | None,
    ) -> None:
        pass

    assert callm.tool(f).parameters == obj(
        {
            "value": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
            "mode": {"enum": ["fast", "slow"], "type": "string"},
            "tags": {"items": {"type": "string"}, "type": "array"},
            "pair": {
                "maxItems": 2,
                "minItems": 2,
                "prefixItems": [{"type": "integer"}, {"type": "string"}],
                "type": "array",
            },
            "ids": {"items": {"type": "integer"}, "type": "array", "uniqueItems": True},
            "weights": {"additionalProperties": {"type": "number"}, "type": "object"},
            "maybe": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        },
        ["value", "mode", "tags", "pair", "ids", "weights", "maybe"],
    )


class Unit(enum.Enum):
    CELSIUS = "celsius"
    FAHRENHEIT = "fahrenheit"


@dataclass
class Point:
    x: int
    y: int = 0


class Address(TypedDict):
    street: str
    number: int


class Person(pydantic.BaseModel):
    """Somebody."""

    name: str = pydantic.Field(description="Full name")
    age: int


def test_enum_dataclass_typeddict_and_model_go_to_defs() -> None:
    def f(unit: Unit, where: Point, home: Address, who: Person, title: str = "x") -> None:
        pass

    schema = callm.tool(f).parameters
    assert schema == obj(
        {
            "unit": {"$ref": "#/$defs/Unit"},
            "where": {"$ref": "#/$defs/Point"},
            "home": {"$ref": "#/$defs/Address"},
            "who": {"$ref": "#/$defs/Person"},
            # A parameter named "title" survives the dropping of pydantic's titles.
            "title": {"default": "x", "type": "string"},
        },
        ["unit", "where", "home", "who"],
        **{
            "$defs": {
                "Unit": {"enum": ["celsius", "fahrenheit"], "type": "string"},
                "Point": obj(
                    {"x": {"type": "integer"}, "y": {"default": 0, "type": "integer"}}, ["x"]
                ),
                "Address": obj(
                    {"street": {"type": "string"}, "number": {"type": "integer"}},
                    ["street", "number"],
                ),
                "Person": {
                    "description": "Somebody.",
                    "properties": {
                        "name": {"description": "Full name", "type": "string"},
                        "age": {"type": "integer"},
                    },
                    "required": ["name", "age"],
                    "type": "object",
                },
            }
        },
    )


def test_enum_default_is_its_value() -> None:
    def f(unit: Unit = Unit.FAHRENHEIT) -> None:
        pass

    schema = callm.tool(f).parameters
    assert schema["properties"]["unit"] == {"$ref": "#/$defs/Unit", "default": "fahrenheit"}
    assert "required" not in schema


def test_annotated_descriptions_win_over_the_docstring() -> None:
    def f(
        city: Annotated[str, "The city, in English"],
        days: Annotated[int, pydantic.Field(description="Days ahead", ge=1)] = 1,
        plain: str = "",
    ) -> None:
        """Forecast.

        Args:
            city: ignored, Annotated says it
            days: ignored, Field says it
            plain: From the docstring.
        """

    t = callm.tool(f)
    assert t.description == "Forecast."
    assert t.parameters == obj(
        {
            "city": {"description": "The city, in English", "type": "string"},
            "days": {"default": 1, "description": "Days ahead", "minimum": 1, "type": "integer"},
            "plain": {"default": "", "description": "From the docstring.", "type": "string"},
        },
        ["city"],
    )


def google(city: str, days: int = 1) -> str:
    """Get the weather forecast.

    Uses the fake weather service.

    Args:
        city: The city name.
        days: How many days ahead.

    Returns:
        The forecast.
    """
    return ""


def numpy_style(city: str, days: int = 1) -> str:
    """Get the weather forecast.

    Uses the fake weather service.

    Parameters
    ----------
    city : str
        The city name.
    days : int
        How many days ahead.

    Returns
    -------
    str
        The forecast.
    """
    return ""


def rest(city: str, days: int = 1) -> str:
    """Get the weather forecast.

    Uses the fake weather service.

    :param city: The city name.
    :param days: How many days ahead.
    :returns: The forecast.
    """
    return ""


@pytest.mark.parametrize("function", [google, numpy_style, rest], ids=["google", "numpy", "rest"])
def test_docstring_styles(function: Any) -> None:
    t = callm.tool(function)
    assert t.description == "Get the weather forecast.\n\nUses the fake weather service."
    assert t.parameters == obj(
        {
            "city": {"description": "The city name.", "type": "string"},
            "days": {"default": 1, "description": "How many days ahead.", "type": "integer"},
        },
        ["city"],
    )


def test_decorator_forms_and_overrides() -> None:
    @callm.tool
    def plain(x: int) -> int:
        """Double it."""
        return 2 * x

    @callm.tool(name="renamed", description="Custom.", strict=True)
    def configured(x: int) -> int:
        return x

    assert isinstance(plain, callm.Tool) and plain.name == "plain"
    assert plain.description == "Double it."
    assert plain.function is not None and plain.function(3) == 6
    assert plain(4) == 8 and configured(x=5) == 5  # a decorated function stays callable
    schema_only = callm.Tool("lookup", "Look it up.")
    with pytest.raises(TypeError, match="has no function"):
        schema_only()
    assert (configured.name, configured.description, configured.strict) == (
        "renamed",
        "Custom.",
        True,
    )


def test_strict_tools_get_a_strict_schema() -> None:
    def f(where: Point, unit: Unit = Unit.CELSIUS, note: str | None = None) -> None:
        pass

    t = callm.tool(f, strict=True)
    assert t.strict is True
    assert t.parameters == obj(
        {
            "where": {"$ref": "#/$defs/Point"},
            "unit": {"$ref": "#/$defs/Unit"},
            "note": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        },
        ["where", "unit", "note"],
        **{
            "$defs": {
                "Point": obj({"x": {"type": "integer"}, "y": {"type": "integer"}}, ["x", "y"]),
                "Unit": {"enum": ["celsius", "fahrenheit"], "type": "string"},
            }
        },
    )

    def g(weights: dict[str, float]) -> None:
        pass

    with pytest.raises(callm.InvalidRequestError, match="cannot be strict"):
        callm.tool(g, strict=True)


def test_keyword_only_and_positional_only_parameters() -> None:
    def f(a: int, /, b: int, *, c: int = 3) -> None:
        pass

    assert callm.tool(f).parameters == obj(
        {
            "a": {"type": "integer"},
            "b": {"type": "integer"},
            "c": {"default": 3, "type": "integer"},
        },
        ["a", "b"],
    )


def test_unannotated_parameter_takes_any_json() -> None:
    def f(anything, json: str) -> None:  # type: ignore[no-untyped-def]
        pass

    # "json" would shadow a pydantic BaseModel attribute; it is a fine parameter name.
    assert callm.tool(f).parameters == obj(
        {"anything": {}, "json": {"type": "string"}}, ["anything", "json"]
    )


def test_var_args_are_rejected() -> None:
    def star(*values: int) -> None:
        pass

    def double_star(city: str, **options: Any) -> None:
        pass

    with pytest.raises(callm.InvalidRequestError, match=r"star takes \*values"):
        callm.tool(star)
    with pytest.raises(callm.InvalidRequestError, match=r"takes \*\*options.*explicit schema"):
        callm.tool(double_star)


class Opaque:
    pass


def test_a_hint_without_a_schema_is_rejected() -> None:
    def f(thing: Opaque) -> None:
        pass

    with pytest.raises(callm.InvalidRequestError, match=r"cannot make a JSON schema.*Opaque"):
        callm.tool(f)


def test_a_lambda_needs_a_name() -> None:
    with pytest.raises(callm.InvalidRequestError, match="not a valid tool name"):
        callm.tool(lambda x: x)
    assert callm.tool(lambda x: x, name="identity").name == "identity"


def test_something_that_is_not_a_tool_is_rejected(fake_openai: FakeOpenAIServer) -> None:
    with (
        sync_client(fake_openai.base_url) as client,
        pytest.raises(callm.InvalidRequestError, match="a tool must be"),
    ):
        client.complete("fake/gpt-4o-mini", "hi", tools=[42])  # type: ignore[list-item]


def test_plain_functions_are_sent_as_tools(fake_openai: FakeOpenAIServer) -> None:
    with sync_client(fake_openai.base_url) as client:
        r = client.complete("fake/gpt-4o-mini", "Call google for Paris", tools=[google, rest])
    (call,) = r.tool_calls
    assert call.name == "google"
    sent = fake_openai.requests[-1].json["tools"]
    assert sent[0] == {
        "type": "function",
        "function": {
            "name": "google",
            "description": "Get the weather forecast.\n\nUses the fake weather service.",
            "parameters": callm.tool(google).parameters,
        },
    }
    assert json.dumps(sent[1]).count('"rest"') == 1
