"""The offline model: pure and deterministic, and it exercises every client feature."""

from __future__ import annotations

import json

import pytest

from callm.testing import FakeToolCall, Reply
from callm.testing.local_model import prompt_tokens, reply_to

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer"},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "optional": {"type": "string"},
            },
            "required": ["city", "days", "unit"],
        },
    },
}
TIME_TOOL = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object", "properties": {}}},
}


def user(text: str) -> dict[str, object]:
    return {"role": "user", "content": text}


def ask(text: str, **extra: object) -> Reply:
    return reply_to({"model": "offline", "messages": [user(text)], **extra})


def test_echoes_the_last_user_message():
    reply = ask("What is 2 + 2?")
    assert reply.text == (
        '[offline] You said: "What is 2 + 2?". This reply comes from callm\'s built-in '
        "offline model; set a provider key to talk to a real one."
    )
    assert reply.finish_reason is None  # the wire default, "stop"
    assert reply.tool_calls == ()


def test_is_deterministic():
    request = {"model": "m", "messages": [user("same input")], "tools": [WEATHER_TOOL]}
    assert reply_to(request) == reply_to(json.loads(json.dumps(request)))
    assert ask("get_weather in Oslo", tools=[WEATHER_TOOL]) == ask(
        "get_weather in Oslo", tools=[WEATHER_TOOL]
    )


def test_reads_text_parts_and_counts_attachments():
    content = [
        {"type": "text", "text": "Describe"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
    ]
    reply = reply_to({"messages": [{"role": "user", "content": content}]})
    assert reply.text.startswith('[offline] You said: "Describe". You also sent 1 non-text')


def test_without_a_user_message_it_still_answers():
    assert reply_to({"messages": []}).text.startswith("[offline] Hello!")


def test_max_tokens_truncates_with_finish_reason_length():
    reply = ask("tell me a long story please", max_tokens=4)
    assert reply.fragments() == ["[offline]", " You", " said:", ' "tell']
    assert reply.text == '[offline] You said: "tell'
    assert reply.finish_reason == "length"
    assert ask("hi", max_completion_tokens=2).finish_reason == "length"
    assert ask("hi", max_tokens=500).finish_reason is None


def test_stop_cuts_at_the_first_stop_string():
    reply = ask("alpha beta gamma", stop=["gamma", "beta"])
    assert reply.text == '[offline] You said: "alpha '
    assert reply.finish_reason is None  # "stop"
    assert ask("alpha", stop="You").text == "[offline] "


@pytest.mark.parametrize(
    ("text", "tool_choice", "expected"),
    [
        ("What is the get_weather in Paris?", "auto", "get_weather"),
        ("call get_time now", "auto", "get_time"),
        ("hello", "required", "get_weather"),
        ("get_weather please", {"type": "function", "function": {"name": "get_time"}}, "get_time"),
    ],
)
def test_calls_tools_on_request(text, tool_choice, expected):
    reply = ask(text, tools=[WEATHER_TOOL, TIME_TOOL], tool_choice=tool_choice)
    (call,) = reply.tool_calls
    assert call.name == expected
    assert call.id is not None
    assert call.id.startswith("call_")


@pytest.mark.parametrize(
    ("text", "tool_choice"),
    [("What is the weather?", "auto"), ("get_weather in Paris", "none")],
)
def test_does_not_call_tools_unless_asked(text, tool_choice):
    reply = ask(text, tools=[WEATHER_TOOL], tool_choice=tool_choice)
    assert reply.tool_calls == ()
    assert reply.text.startswith("[offline] ")


def test_tool_arguments_come_from_the_schema_and_the_prompt():
    (call,) = ask("get_weather for Paris tomorrow", tools=[WEATHER_TOOL]).tool_calls
    assert call.arguments == {"city": "Paris", "days": 1, "unit": "celsius"}
    (call,) = ask("get_weather", tools=[WEATHER_TOOL]).tool_calls
    assert call.arguments["city"] == "example"


def test_nested_and_referenced_schemas():
    schema = {
        "type": "object",
        "properties": {
            "point": {"$ref": "#/$defs/Point"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "ok": {"type": "boolean"},
            "maybe": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        },
        "required": ["point", "tags", "ok", "maybe"],
        "$defs": {
            "Point": {
                "type": "object",
                "properties": {"x": {"type": "number"}, "label": {"type": ["null", "string"]}},
                "required": ["x", "label"],
            }
        },
    }
    tool = {"type": "function", "function": {"name": "plot", "parameters": schema}}
    (call,) = ask("plot it", tools=[tool], tool_choice="required").tool_calls
    assert call.arguments == {
        "point": {"x": 1.0, "label": "it"},
        "tags": [],
        "ok": True,
        "maybe": 1.0,
    }


def test_answers_tool_results():
    messages = [
        user("weather in Paris?"),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": "{}"},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21C"},
    ]
    reply = reply_to({"messages": messages, "tools": [WEATHER_TOOL]})
    assert reply.tool_calls == ()  # no endless tool loop
    assert reply.text == "[offline] Tool get_weather returned: sunny, 21C"


def test_json_object_output():
    reply = ask("give me JSON", response_format={"type": "json_object"})
    value = json.loads(reply.text)
    assert list(value) == ["reply"]
    assert value["reply"].startswith("[offline] ")


def test_json_schema_output():
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
        "additionalProperties": False,
    }
    fmt = {"type": "json_schema", "json_schema": {"name": "Person", "schema": schema}}
    reply = ask("Invent a person called Ada", response_format=fmt)
    assert json.loads(reply.text) == {"name": "Ada", "age": 1}


def test_reasoning_only_when_asked():
    assert ask("hi").reasoning is None
    reasoning = ask("hi there", reasoning_effort="high").reasoning
    assert reasoning is not None
    assert reasoning.startswith("[offline] ")


def test_prompt_tokens_count_words_across_messages():
    request = {"messages": [{"role": "system", "content": "Be terse."}, user("one two three")]}
    assert prompt_tokens(request) == 5
    assert prompt_tokens({"messages": []}) == 1


# --- through the server ------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True])
def test_offline_tool_call_over_the_wire(api, stream):
    body = {"messages": [user("get_weather for Rome")], "tools": [WEATHER_TOOL]}
    if stream:
        chunks = api.chunks(**body)
        fragments = [f for c in chunks for f in c["choices"][0]["delta"].get("tool_calls", [])]
        arguments = "".join(f["function"]["arguments"] for f in fragments)
        assert chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    else:
        choice = api.chat(**body).json()["choices"][0]
        arguments = choice["message"]["tool_calls"][0]["function"]["arguments"]
        assert choice["finish_reason"] == "tool_calls"
    assert json.loads(arguments) == {"city": "Rome", "days": 1, "unit": "celsius"}


def test_offline_max_tokens_over_the_wire(api):
    body = api.chat(max_tokens=3).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 3
    chunks = api.chunks(max_tokens=3)
    assert len([c for c in chunks if c["choices"][0]["delta"].get("content")]) == 3


def test_offline_usage_matches_the_fragments(api):
    body = api.chat(messages=[user("count these four words")]).json()
    fragments = len(body["choices"][0]["message"]["content"].split())
    assert body["usage"]["prompt_tokens"] == 4
    assert body["usage"]["completion_tokens"] == fragments


def test_fake_tool_call_arguments_json():
    assert FakeToolCall("f", {"a": [1, "é"]}).arguments_json() == '{"a":[1,"é"]}'
    assert FakeToolCall("f", "{oops").arguments_json() == "{oops"


def test_long_prompts_size_the_stream(api):
    prompt = " ".join(f"w{i}" for i in range(300))
    chunks = api.chunks(messages=[user(prompt)], max_tokens=200)
    contents = [c["choices"][0]["delta"].get("content") for c in chunks]
    assert len([c for c in contents if c]) == 200
    assert chunks[-1]["choices"][0]["finish_reason"] == "length"
