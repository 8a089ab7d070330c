"""The value types' own helpers, and the typed request options read from every form."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from typing import Any

import pytest

import callm
from callm._core.options import ResponseFormat, ToolChoice, response_format_of, tool_choice_of
from callm._core.types import Request, priced


def test_priced_carries_every_field_of_the_response() -> None:
    values: dict[str, Any] = {}
    for n, f in enumerate(dataclasses.fields(callm.Response)):
        values[f.name] = (callm.Text(str(n)),) if f.name == "content" else f"v{n}"
    original = callm.Response(**values)
    made = priced(original, Decimal("0.5"), ("p/m",))
    assert made == dataclasses.replace(original, cost=Decimal("0.5"), tried=("p/m",))
    assert original.cost == values["cost"]  # the original is left as it was


@pytest.mark.parametrize(
    ("given", "typed"),
    [
        ("auto", ToolChoice("auto")),
        ("none", ToolChoice("none")),
        ("required", ToolChoice("required")),
        ("get_weather", ToolChoice("required", "get_weather")),
        ({"type": "function", "function": {"name": "f"}}, ToolChoice("required", "f")),
        ({"type": "function", "name": "f"}, ToolChoice("required", "f")),
        (
            {"type": "allowed_tools", "mode": "auto"},
            ToolChoice(native={"type": "allowed_tools", "mode": "auto"}),
        ),
    ],
)
def test_a_tool_choice_is_read_once_whatever_form_it_comes_in(
    given: Any, typed: ToolChoice
) -> None:
    assert tool_choice_of(given) == typed
    assert callm.Request("m", (), tool_choice=given).tool_choice == typed


@pytest.mark.parametrize(
    ("given", "typed"),
    [
        ({"type": "text"}, ResponseFormat("text")),
        ({"type": "json_object"}, ResponseFormat("json_object")),
        (
            {"type": "json_schema", "name": "A", "schema": {"type": "object"}, "strict": True},
            ResponseFormat("json_schema", {"type": "object"}, "A", True),
        ),
        (
            {"type": "json_schema", "json_schema": {"name": "A", "schema": {}, "description": "d"}},
            ResponseFormat("json_schema", {}, "A", description="d"),
        ),
        (
            {"type": "structural_tag", "tags": []},
            ResponseFormat(None, native={"type": "structural_tag", "tags": []}),
        ),
    ],
)
def test_a_response_format_is_read_once_whatever_form_it_comes_in(
    given: dict[str, Any], typed: ResponseFormat
) -> None:
    assert response_format_of(given) == typed
    assert callm.Request("m", (), response_format=given).response_format == typed


def test_a_json_schema_with_keys_callm_does_not_model_keeps_them_for_the_wire() -> None:
    given = {"type": "json_schema", "json_schema": {"name": "A", "schema": {}, "x-extra": 1}}
    fmt = response_format_of(given)
    assert (fmt.type, fmt.name, fmt.schema, fmt.native) == ("json_schema", "A", {}, given)


@pytest.mark.parametrize(
    ("model", "wire"),
    [
        ("anthropic/claude-haiku-4-5", {"type": "tool", "name": "f"}),
        (
            "gemini/gemini-2.5-flash",
            {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["f"]}},
        ),
        ("openai/gpt-4o-mini", {"type": "function", "function": {"name": "f"}}),
    ],
)
def test_chats_function_choice_names_the_tool_on_every_protocol(
    model: str, wire: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("ANTHROPIC_API_KEY", "GEMINI_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.setenv(var, "k-" + "x" * 20)
    tools = [{"name": "f", "parameters": {"type": "object"}}]
    choice = {"type": "function", "function": {"name": "f"}}
    client = callm.Client(log=False, env_file=None)
    body = json.loads(client.http_request(model, "hi", tools=tools, tool_choice=choice).body or b"")
    key = "toolConfig" if model.startswith("gemini") else "tool_choice"
    assert body[key] == wire


def test_with_model_carries_every_field_of_the_request() -> None:
    # Each field gets a value of its own, so a field with_model forgot would come back as
    # its default and fail the identity check.
    values: dict[str, Any] = {f.name: object() for f in dataclasses.fields(Request)}
    values["tool_choice"] = ToolChoice("none")
    values["response_format"] = ResponseFormat("text")
    request = Request(**values)
    addressed = request.with_model("provider-model")
    assert addressed.model == "provider-model"
    for f in dataclasses.fields(Request):
        if f.name != "model":
            assert getattr(addressed, f.name) is values[f.name], f.name
    assert addressed == dataclasses.replace(request, model="provider-model")
