"""Structured output (``output=``): schemas, the request each protocol gets, parsing, re-asking,
refusals and streamed partial objects — on all four protocols, streamed or not, sync or async."""

from __future__ import annotations

import dataclasses
import enum
import itertools
import json
from typing import Any

import pytest
from pydantic import BaseModel, Field
from typing_extensions import TypedDict  # pydantic needs it before Python 3.12

import callm
import drive
from callm.testing import FakeOpenAIServer, FakeToolCall, Reply
from helpers import point_builtins

KEY = "sk-structured-fake-key"
MODELS = {
    "openai_chat": "openai/gpt-4o-mini",
    "openai_responses": "openai-responses/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}
PROTOCOLS = pytest.mark.parametrize("protocol", list(MODELS))
STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
MODES = pytest.mark.parametrize("mode", drive.MODES)


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Address(BaseModel):
    """Where someone lives."""

    city: str
    zip: str | None = None


class Person(BaseModel):
    name: str = Field(description="Full name", min_length=1)
    age: int
    favourite: Color
    home: Address = Field(description="Home address")
    nicknames: list[str] = []


class Node(BaseModel):
    value: int
    children: list[Node] = []


@dataclasses.dataclass
class Point:
    x: int
    y: int


class Movie(TypedDict):
    title: str
    year: int


PERSON_JSON = {
    "name": "Ada Lovelace",
    "age": 36,
    "favourite": "blue",
    "home": {"city": "London", "zip": None},
    "nicknames": ["Countess"],
}


@pytest.fixture
def server(fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    """Every built-in provider of the four protocols, pointed at the one fake."""
    return point_builtins(fake_openai, monkeypatch, KEY)


async def ask(mode: str, streamed: bool, protocol: str, prompt: Any, **params: Any) -> Any:
    """The Response of one structured call, made the chosen way."""
    model = MODELS[protocol]
    if mode == "sync":
        with callm.Client() as client:
            if not streamed:
                return client.complete(model, prompt, **params)
            with client.stream(model, prompt, **params) as s:
                return s.response
    async with callm.AsyncClient() as ac:
        if not streamed:
            return await ac.complete(model, prompt, **params)
        s2 = await ac.stream(model, prompt, **params)
        async with s2:
            return await s2.get_response()


async def stream_events(
    mode: str, protocol: str, prompt: Any, **params: Any
) -> tuple[list[callm.StreamEvent], callm.Response]:
    model = MODELS[protocol]
    if mode == "sync":
        with callm.Client() as client, client.stream(model, prompt, **params) as s:
            return list(s), s.response
    async with callm.AsyncClient() as ac:
        s2 = await ac.stream(model, prompt, **params)
        async with s2:
            return [ev async for ev in s2], s2.response


def sent_schema(output: Any, protocol: str = "openai_chat", **params: Any) -> Any:
    """The JSON schema a call with ``output=`` sends (read from the exact HTTP request)."""
    body = sent_body(output, protocol, **params)
    if protocol == "openai_chat":
        return body["response_format"]["json_schema"]["schema"]
    if protocol == "openai_responses":
        return body["text"]["format"]["schema"]
    if protocol == "anthropic":
        return body["output_config"]["format"]["schema"]
    return body["generationConfig"]["responseJsonSchema"]


def sent_body(output: Any, protocol: str = "openai_chat", **params: Any) -> Any:
    with callm.Client(environ=_ENVIRON, env_file=None) as client:
        http = client.http_request(MODELS[protocol], "x", output=output, **params)
    assert http.body is not None
    return json.loads(http.body)


_ENVIRON = {"OPENAI_API_KEY": KEY, "ANTHROPIC_API_KEY": KEY, "GEMINI_API_KEY": KEY}


# --- schemas --------------------------------------------------------------------------------


def test_pydantic_schema_is_strict_compatible() -> None:
    schema = sent_schema(Person)
    assert schema["type"] == "object"
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["name", "age", "favourite", "home", "nicknames"]
    props = schema["properties"]
    # A default is dropped; the field stays required, so the model always fills it in.
    assert props["nicknames"] == {"type": "array", "items": {"type": "string"}}
    # minLength is outside the strict subset: it moves into the description.
    assert props["name"] == {"type": "string", "description": "Full name (minLength=1)"}
    # A $ref with a sibling is wrapped in anyOf; $defs stay.
    assert props["home"] == {"anyOf": [{"$ref": "#/$defs/Address"}], "description": "Home address"}
    assert props["favourite"] == {"$ref": "#/$defs/Color"}
    address = schema["$defs"]["Address"]
    assert address["additionalProperties"] is False
    assert address["required"] == ["city", "zip"]
    assert address["properties"]["zip"] == {"anyOf": [{"type": "string"}, {"type": "null"}]}
    assert schema["$defs"]["Color"] == {"enum": ["red", "blue"], "type": "string"}
    assert "title" not in json.dumps(schema)


def test_format_is_named_after_the_type_and_strict() -> None:
    fmt = sent_body(Person)["response_format"]
    assert fmt["type"] == "json_schema"
    assert fmt["json_schema"]["name"] == "Person"
    assert fmt["json_schema"]["strict"] is True


def test_recursive_model_root_is_its_definition() -> None:
    schema = sent_schema(Node)
    assert "$ref" not in schema
    assert schema["type"] == "object"
    assert schema["properties"]["children"]["items"] == {"$ref": "#/$defs/Node"}
    assert schema["$defs"]["Node"]["additionalProperties"] is False


def test_dataclass_and_typeddict_schemas() -> None:
    for output, fields in ((Point, ["x", "y"]), (Movie, ["title", "year"])):
        schema = sent_schema(output)
        assert schema["required"] == fields
        assert schema["additionalProperties"] is False


def test_non_object_root_is_wrapped() -> None:
    schema = sent_schema(list[Address])
    assert schema["required"] == ["value"]
    assert schema["properties"]["value"] == {
        "type": "array",
        "items": {"$ref": "#/$defs/Address"},
    }
    assert "Address" in schema["$defs"]


def test_free_form_map_is_sent_unstrict() -> None:
    fmt = sent_body(dict[str, int])["response_format"]["json_schema"]
    assert fmt["strict"] is False
    assert fmt["schema"]["additionalProperties"] == {"type": "integer"}


def test_dict_schema_is_strictified_without_touching_the_callers_dict() -> None:
    schema = {
        "title": "Reading",
        "type": "object",
        "properties": {"value": {"type": "number"}, "unit": {"type": "string"}},
        "required": ["value"],
    }
    original = json.dumps(schema)
    fmt = sent_body(schema)["response_format"]["json_schema"]
    assert json.dumps(schema) == original
    assert fmt["name"] == "Reading"
    assert fmt["schema"]["required"] == ["value", "unit"]
    assert fmt["schema"]["additionalProperties"] is False


def test_named_dict_schema_and_strict_false() -> None:
    inner = {"type": "object", "properties": {"a": {"type": "string"}}}
    fmt = sent_body({"name": "thing", "schema": inner})["response_format"]["json_schema"]
    assert (fmt["name"], fmt["strict"]) == ("thing", True)
    assert fmt["schema"]["required"] == ["a"]
    loose = sent_body({"name": "thing", "schema": inner, "strict": False})["response_format"]
    assert loose["json_schema"]["schema"] == inner
    assert loose["json_schema"]["strict"] is False


def test_output_and_response_format_together_are_refused() -> None:
    with pytest.raises(callm.InvalidRequestError, match="not both"):
        sent_body(Person, response_format={"type": "json_object"})


@pytest.mark.parametrize("bad", [42, [1, 2]])
def test_not_an_output_type(bad: Any) -> None:
    with pytest.raises(callm.InvalidRequestError, match="not an output type"):
        sent_body(bad)


# --- what each protocol receives ----------------------------------------------------------


def test_openai_responses_text_format() -> None:
    fmt = sent_body(Person, "openai_responses")["text"]["format"]
    assert (fmt["type"], fmt["name"], fmt["strict"]) == ("json_schema", "Person", True)
    assert fmt["schema"]["required"][0] == "name"


def test_anthropic_output_config_drops_unsupported_constraints() -> None:
    class Reading(BaseModel):
        celsius: float = Field(ge=-90, le=60)
        tags: list[str] = Field(max_length=3)

    body = sent_body(Reading, "anthropic")
    fmt = body["output_config"]["format"]
    assert fmt["type"] == "json_schema"
    props = fmt["schema"]["properties"]
    assert props["celsius"] == {"type": "number", "description": "minimum=-90, maximum=60"}
    assert props["tags"]["description"] == "maxItems=3"
    assert fmt["schema"]["additionalProperties"] is False


def test_gemini_generation_config_schema() -> None:
    config = sent_body(Person, "gemini")["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    schema = config["responseJsonSchema"]
    assert schema["required"] == ["name", "age", "favourite", "home", "nicknames"]
    assert "Address" in schema["$defs"]


# --- parsed values, every protocol and mode ----------------------------------------------


@PROTOCOLS
@STREAMED
@MODES
async def test_parsed_model(
    server: FakeOpenAIServer, protocol: str, streamed: bool, mode: str
) -> None:
    server.queue(Reply(json.dumps(PERSON_JSON)))
    r = await ask(mode, streamed, protocol, "Who wrote the first program?", output=Person)
    assert isinstance(r.parsed, Person)
    assert r.parsed.home.city == "London" and r.parsed.favourite is Color.BLUE
    assert len(server.requests) == 1
    assert "Full name (minLength=1)" in json.dumps(server.requests[0].json)


@PROTOCOLS
@STREAMED
@MODES
async def test_parsed_other_types(
    server: FakeOpenAIServer, protocol: str, streamed: bool, mode: str
) -> None:
    server.queue(
        Reply('{"x": 1, "y": 2}'),
        Reply('{"title": "Alien", "year": 1979}'),
        Reply('{"value": [{"city": "Oslo", "zip": "0150"}]}'),
        Reply('{"label": "ok"}'),
    )
    point = await ask(mode, streamed, protocol, "p", output=Point)
    assert point.parsed == Point(1, 2)
    movie = await ask(mode, streamed, protocol, "m", output=Movie)
    assert movie.parsed == {"title": "Alien", "year": 1979}
    places = await ask(mode, streamed, protocol, "a", output=list[Address])
    assert places.parsed == [Address(city="Oslo", zip="0150")]
    schema = {"type": "object", "properties": {"label": {"type": "string"}}}
    labelled = await ask(mode, streamed, protocol, "l", output=schema)
    assert labelled.parsed == {"label": "ok"}


@PROTOCOLS
@MODES
async def test_fenced_reply_is_parsed(server: FakeOpenAIServer, protocol: str, mode: str) -> None:
    server.queue(Reply('```json\n{"x": 3, "y": 4}\n```'))
    r = await ask(mode, False, protocol, "p", output=Point)
    assert r.parsed == Point(3, 4)


# --- re-asking ------------------------------------------------------------------------------


@PROTOCOLS
@MODES
async def test_invalid_reply_is_reasked_with_the_errors(
    server: FakeOpenAIServer, protocol: str, mode: str
) -> None:
    server.queue(Reply('{"x": 1, "y": "north"}'), Reply('{"x": 1, "y": 5}'))
    r = await ask(mode, False, protocol, "Where?", output=Point, system="Answer in JSON.")
    assert r.parsed == Point(1, 5)
    assert len(server.requests) == 2
    second = json.dumps(server.requests[1].json)
    assert "Your reply did not match the schema" in second
    assert "y: Input should be a valid integer" in second
    assert "north" in second  # the bad reply itself goes back as the assistant turn
    assert "Answer in JSON." in second


@MODES
async def test_invalid_json_is_reasked(server: FakeOpenAIServer, mode: str) -> None:
    server.queue(Reply("{not json"), Reply('{"x": 0, "y": 0}'))
    r = await ask(mode, False, "openai_chat", "p", output=Point)
    assert r.parsed == Point(0, 0)
    assert "the reply is not valid JSON" in json.dumps(server.requests[1].json)


@PROTOCOLS
@MODES
async def test_always_invalid_raises_after_the_retries(
    server: FakeOpenAIServer, protocol: str, mode: str
) -> None:
    server.queue(*[Reply('{"x": "a"}')] * 4)
    with pytest.raises(callm.StructuredOutputError) as caught:
        await ask(mode, False, protocol, "p", output=Point, output_retries=2)
    error = caught.value
    assert len(server.requests) == 3
    assert error.text == '{"x": "a"}'
    assert error.errors[0].startswith("x: Input should be a valid integer")
    assert error.errors[1:] == ["y: Field required"]
    assert error.response is not None and error.response.text == '{"x": "a"}'


@MODES
async def test_no_retries_means_one_call(server: FakeOpenAIServer, mode: str) -> None:
    server.queue(Reply('{"x": 1}'))
    with pytest.raises(callm.StructuredOutputError, match="1 attempt"):
        await ask(mode, False, "openai_chat", "p", output=Point, output_retries=0)
    assert len(server.requests) == 1


@MODES
async def test_dict_schema_errors_come_from_the_schema(server: FakeOpenAIServer, mode: str) -> None:
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer", "minimum": 10}},
        "required": ["n"],
    }
    server.queue(Reply('{"n": 3}'), Reply('{"n": 12}'))
    r = await ask(mode, False, "openai_chat", "p", output=schema)
    assert r.parsed == {"n": 12}
    assert "n: 3 is less than the minimum of 10" in json.dumps(server.requests[1].json)


@MODES
async def test_cut_off_reply_is_not_reasked(server: FakeOpenAIServer, mode: str) -> None:
    server.queue(Reply('{"x": 1, "y"', finish_reason="length"))
    with pytest.raises(callm.StructuredOutputError, match="max_tokens"):
        await ask(mode, False, "openai_chat", "p", output=Point)
    assert len(server.requests) == 1


@STREAMED
@MODES
async def test_tool_calls_are_returned_unparsed(
    server: FakeOpenAIServer, streamed: bool, mode: str
) -> None:
    server.queue(Reply(tool_calls=[FakeToolCall("lookup", {"q": "x"})]))
    tool = callm.Tool("lookup", "Look up", {"type": "object", "properties": {}})
    r = await ask(mode, streamed, "openai_chat", "p", output=Point, tools=[tool])
    assert r.parsed is None and r.tool_calls[0].name == "lookup"
    assert len(server.requests) == 1


# --- refusals ------------------------------------------------------------------------------


@PROTOCOLS
@STREAMED
@MODES
async def test_refusal_raises_without_reasking(
    server: FakeOpenAIServer, protocol: str, streamed: bool, mode: str
) -> None:
    server.queue(Reply(refusal="I cannot help with that."))
    with pytest.raises(callm.StructuredOutputError, match="refused") as caught:
        await ask(mode, streamed, protocol, "p", output=Point)
    assert "I cannot help with that." in caught.value.text
    assert caught.value.response is not None
    assert len(server.requests) == 1


# --- streaming ------------------------------------------------------------------------------


@PROTOCOLS
@MODES
async def test_stream_partials_grow_and_end_typed(
    server: FakeOpenAIServer, protocol: str, mode: str
) -> None:
    server.queue(Reply(json.dumps(PERSON_JSON)))
    events, response = await stream_events(mode, protocol, "p", output=Person)
    partials = [ev for ev in events if isinstance(ev, callm.PartialOutput)]
    assert len(partials) > 3
    *growing, last = partials
    assert all(not p.complete and isinstance(p.value, dict) for p in growing)
    for before, after in itertools.pairwise(growing):
        assert _grows(before.value, after.value)
    assert growing[-1].value == PERSON_JSON
    assert last.complete and isinstance(last.value, Person)
    assert response.parsed == last.value
    texts = [ev for ev in events if ev.type == "text"]
    assert "".join(t.text for t in texts) == json.dumps(PERSON_JSON)


def _grows(before: Any, after: Any) -> bool:
    """``after`` extends ``before``: same keys and items, strings only longer."""
    if isinstance(before, dict):
        return isinstance(after, dict) and all(
            k in after and _grows(v, after[k]) for k, v in before.items()
        )
    if isinstance(before, list):
        return len(after) >= len(before) and all(
            _grows(b, a) for b, a in zip(before, after, strict=False)
        )
    if isinstance(before, str):
        return isinstance(after, str) and after.startswith(before)
    return before == after or isinstance(before, int | float)


@PROTOCOLS
@MODES
async def test_stream_wrapped_partials_are_unwrapped(
    server: FakeOpenAIServer, protocol: str, mode: str
) -> None:
    server.queue(Reply('{"value": [{"x": 1, "y": 2}, {"x": 3, "y": 4}]}'))
    events, response = await stream_events(mode, protocol, "p", output=list[Point])
    partials = [ev.value for ev in events if isinstance(ev, callm.PartialOutput)]
    assert all(isinstance(v, list) for v in partials)
    assert partials[-1] == [Point(1, 2), Point(3, 4)]
    assert response.parsed == [Point(1, 2), Point(3, 4)]


@PROTOCOLS
@MODES
async def test_stream_invalid_raises_with_the_whole_response(
    server: FakeOpenAIServer, protocol: str, mode: str
) -> None:
    server.queue(Reply('{"x": 1}'))
    with pytest.raises(callm.StructuredOutputError) as caught:
        await stream_events(mode, protocol, "p", output=Point)
    assert caught.value.errors == ["y: Field required"]
    assert caught.value.response is not None and caught.value.response.text == '{"x": 1}'
    assert len(server.requests) == 1


@MODES
async def test_cached_stream_replays_partials_and_parsed(
    server: FakeOpenAIServer, mode: str
) -> None:
    server.queue(Reply('{"x": 7, "y": 8}'))
    cache = callm.ResponseCache()
    model = MODELS["openai_chat"]
    runs = []
    if mode == "sync":
        with callm.Client(cache=cache) as client:
            for _ in range(2):
                with client.stream(model, "p", output=Point) as s:
                    runs.append((list(s), s.response))
    else:
        async with callm.AsyncClient(cache=cache) as ac:
            for _ in range(2):
                s2 = await ac.stream(model, "p", output=Point)
                async with s2:
                    runs.append(([ev async for ev in s2], s2.response))
    assert len(server.requests) == 1
    (live_events, live), (replayed_events, replayed) = runs
    assert replayed.cached and replayed.parsed == live.parsed == Point(7, 8)
    finals = [ev for ev in replayed_events if isinstance(ev, callm.PartialOutput)]
    assert finals[-1] == callm.PartialOutput(Point(7, 8), complete=True)
    assert [e for e in live_events if isinstance(e, callm.PartialOutput)][-1].complete


@MODES
async def test_replayed_stream_response_without_iterating(
    server: FakeOpenAIServer, mode: str
) -> None:
    server.queue(Reply('{"x": 1, "y": 1}'))
    cache = callm.ResponseCache()
    model = MODELS["openai_chat"]
    if mode == "sync":
        with callm.Client(cache=cache) as client:
            client.complete(model, "p", output=Point)
            with client.stream(model, "p", output=Point) as s:
                assert s.response.parsed == Point(1, 1)
        return
    async with callm.AsyncClient(cache=cache) as ac:
        await ac.complete(model, "p", output=Point)
        s2 = await ac.stream(model, "p", output=Point)
        async with s2:
            assert (await s2.get_response()).parsed == Point(1, 1)


@MODES
async def test_calls_without_output_have_no_parsed_value(
    server: FakeOpenAIServer, mode: str
) -> None:
    server.queue(Reply('{"x": 1, "y": 1}'), Reply('{"x": 1, "y": 1}'))
    plain = await ask(mode, False, "openai_chat", "p")
    events, streamed = await stream_events(mode, "openai_chat", "p")
    assert plain.parsed is None and streamed.parsed is None
    assert not any(isinstance(ev, callm.PartialOutput) for ev in events)
    assert "response_format" not in server.requests[0].json
