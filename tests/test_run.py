"""client.run() / run_stream(): the tool loop on every protocol, streamed or not, sync or async.

The fake model is scripted with tool calls; the final answers come from the offline model,
which reads back the tool results it was sent ("Tool add returned: 3") — so each test also
proves the results made the round trip through the protocol's encoder.
"""

from __future__ import annotations

import asyncio
import enum
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pydantic
import pytest

import callm
import drive
from callm._store import Store
from callm.testing import FakeOpenAIServer, FakeToolCall, Fault, Reply
from helpers import point_builtins

KEY = "sk-run-fake-key"
MODELS = {
    "openai_chat": "openai/gpt-4o-mini",
    "openai_responses": "openai-responses/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}

every_protocol = pytest.mark.parametrize("protocol", list(MODELS))
streamed_or_not = pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
sync_or_async = pytest.mark.parametrize("mode", drive.MODES)
pytestmark = [every_protocol, streamed_or_not]


@pytest.fixture
def server(fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    """Every built-in provider of the four protocols, pointed at the one fake."""
    return point_builtins(fake_openai, monkeypatch, KEY)


async def run(
    mode: str, streamed: bool, protocol: str, messages: Any, **params: Any
) -> tuple[callm.Response, list[callm.StreamEvent]]:
    """The final Response of a run, and the events when it was streamed."""
    model = MODELS[protocol]
    if mode == "sync":
        with callm.Client() as client:
            if not streamed:
                return client.run(model, messages, **params), []
            with client.run_stream(model, messages, **params) as s:
                events = list(s)
            return s.response, events
    async with callm.AsyncClient() as ac:
        if not streamed:
            return await ac.run(model, messages, **params), []
        async with ac.run_stream(model, messages, **params) as s2:
            events = [ev async for ev in s2]
        return s2.response, events


def sent_results(protocol: str, body: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """The tool results a recorded request carried: (call id, content, error flag if any)."""
    if protocol == "openai_chat":
        return [
            (m["tool_call_id"], m["content"], None) for m in body["messages"] if m["role"] == "tool"
        ]
    if protocol == "openai_responses":
        items = body["input"]
        return [
            (i["call_id"], i["output"], None)
            for i in items
            if i.get("type") == "function_call_output"
        ]
    if protocol == "anthropic":
        blocks = [
            b for m in body["messages"] if isinstance(m["content"], list) for b in m["content"]
        ]
        return [
            (b["tool_use_id"], b["content"], b.get("is_error", False))
            for b in blocks
            if b["type"] == "tool_result"
        ]
    parts = [p for c in body["contents"] for p in c["parts"]]
    responses = [p["functionResponse"] for p in parts if "functionResponse" in p]
    return [
        (r["id"], r["response"].get("output", r["response"].get("error")), "error" in r["response"])
        for r in responses
    ]


def call_ids(message: callm.Message) -> list[str]:
    return [p.id for p in message.content if isinstance(p, callm.ToolCall)]


def results(message: callm.Message) -> list[callm.ToolResult]:
    return [p for p in message.content if isinstance(p, callm.ToolResult)]


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def boom(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"cannot {reason}")


async def slow_add(a: int, b: int) -> int:
    """Add, asynchronously."""
    await asyncio.sleep(0)
    return a + b


# --- the loop -------------------------------------------------------------------------------


@sync_or_async
async def test_multi_step_with_parallel_calls(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str, isolated_env: Path
) -> None:
    server.queue(
        Reply(
            tool_calls=[
                FakeToolCall("add", {"a": 1, "b": 2}, id="call_one"),
                FakeToolCall("add", {"a": 30, "b": 4}, id="call_two"),
            ]
        ),
        Reply("Let me check.", tool_calls=[FakeToolCall("boom", {"reason": "fly"}, id="call_3")]),
    )
    tools = [add, boom] if mode == "sync" else [slow_add, boom]
    tools_named = [callm.tool(t, name=n) for t, n in zip(tools, ["add", "boom"], strict=True)]
    r, events = await run(mode, streamed, protocol, "Please add", tools=tools_named)

    assert r.text == "[offline] Tool boom returned: ValueError: cannot fly"
    roles = [m.role for m in r.transcript]
    assert roles == ["user", "assistant", "tool", "tool", "assistant", "tool", "assistant"]
    user, first, one, two, second, three, final = r.transcript
    assert user.text == "Please add" and final.content == r.content
    assert [(x.content, x.is_error, x.name) for x in results(one) + results(two)] == [
        ("3", False, "add"),
        ("34", False, "add"),
    ]
    assert [x.tool_call_id for x in results(one) + results(two)] == call_ids(first)
    (error,) = results(three)
    assert (error.tool_call_id, error.content, error.is_error) == (
        call_ids(second)[0],
        "ValueError: cannot fly",
        True,
    )
    assert second.text == "Let me check."
    # Usage and cost cover the whole run: the three calls the call log recorded, summed.
    with Store(isolated_env / "callm.db") as store:
        steps = store.recent_calls(10)
    assert len(steps) == 3
    assert r.usage == sum((c.usage for c in steps), callm.Usage())
    assert r.cost is not None and r.cost == sum(c.cost or 0 for c in steps) > 0

    requests = [q.json for q in server.requests]
    assert len(requests) == 3
    flag = None if protocol.startswith("openai") else False
    assert sent_results(protocol, requests[1]) == [
        (call_ids(first)[0], "3", flag),
        (call_ids(first)[1], "34", flag),
    ]
    assert sent_results(protocol, requests[2])[2:] == [
        (error.tool_call_id, "ValueError: cannot fly", None if flag is None else True)
    ]
    if streamed:
        done = [ev for ev in events if isinstance(ev, callm.ToolResultEvent)]
        assert [(ev.call.id, ev.result.content) for ev in done] == [
            (call_ids(first)[0], "3"),
            (call_ids(first)[1], "34"),
            (call_ids(second)[0], "ValueError: cannot fly"),
        ]
        text = "".join(ev.text for ev in events if isinstance(ev, callm.TextDelta))
        assert text == "Let me check." + r.text
        assert sum(isinstance(ev, callm.ToolCallEvent) for ev in events) == 3


@sync_or_async
async def test_no_tool_call_is_a_single_step(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    r, _ = await run(mode, streamed, protocol, "Hello", tools=[add], system="Be brief.")
    assert r.text.startswith('[offline] You said: "Hello"')
    assert [m.role for m in r.transcript] == ["system", "user", "assistant"]
    assert len(server.requests) == 1


@sync_or_async
async def test_approve_vetoes_a_call(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    server.queue(
        Reply(
            tool_calls=[
                FakeToolCall("add", {"a": 2, "b": 2}, id="call_ok"),
                FakeToolCall("delete_all", {}, id="call_no"),
            ]
        )
    )
    ran: list[str] = []

    def delete_all() -> str:
        ran.append("delete_all")
        return "deleted"

    asked: list[str] = []

    def decide(call: callm.ToolCall) -> bool | str:
        asked.append(call.name)
        return call.name == "add" or "too dangerous"

    async def decide_async(call: callm.ToolCall) -> bool | str:
        await asyncio.sleep(0)
        return decide(call)

    approve = decide if mode == "sync" else decide_async
    r, _ = await run(mode, streamed, protocol, "go", tools=[add, delete_all], approve=approve)
    assert asked == ["add", "delete_all"]
    assert ran == []
    refused = results(r.transcript[3])[0]
    assert refused.is_error
    assert refused.content == (
        "Error: the user refused this call to delete_all; it was not run. Reason: too dangerous"
    )
    assert r.text == (
        f"[offline] Tool add returned: 4; Tool delete_all returned: {refused.content}"
    )


@sync_or_async
async def test_max_steps_exceeded_carries_the_transcript(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    calls = [Reply(tool_calls=[FakeToolCall("add", {"a": i, "b": 1})]) for i in range(3)]
    server.queue(*calls)
    with pytest.raises(callm.MaxStepsExceededError, match="max_steps=2") as caught:
        await run(mode, streamed, protocol, "loop", tools=[add], max_steps=2)
    transcript = caught.value.transcript
    assert [m.role for m in transcript] == ["user", "assistant", "tool", "assistant"]
    assert results(transcript[2])[0].content == "1"
    # The last request for tools is in the transcript, unanswered, and not run.
    assert caught.value.response is not None
    assert caught.value.response.tool_calls[0].arguments == {"a": 1, "b": 1}
    assert call_ids(transcript[3]) == [caught.value.response.tool_calls[0].id]
    assert len(server.requests) == 2 and server.pending == 1


@sync_or_async
async def test_bad_calls_are_reported_back(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    schema_only = {
        "type": "function",
        "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}},
    }
    server.queue(
        Reply(
            tool_calls=[
                FakeToolCall("add", '{"a": 1,', id="call_json"),
                FakeToolCall("add", {"a": "many"}, id="call_types"),
                FakeToolCall("nope", {}, id="call_unknown"),
                FakeToolCall("lookup", {}, id="call_schema_only"),
            ]
        )
    )
    r, _ = await run(mode, streamed, protocol, "go", tools=[add, schema_only])
    contents = [results(m)[0].content for m in r.transcript[2:6]]
    assert contents == [
        "Error: the arguments were not a JSON object: "
        + ('\'"{\\\\"a\\\\": 1,"\'' if protocol == "gemini" else "'{\"a\": 1,'")
        + ". Call the tool again with a valid JSON object.",
        "Error: invalid arguments for add:\n"
        "- a: Input should be a valid integer, unable to parse string as an integer\n"
        "- b: Field required",
        "Error: there is no tool named 'nope' (tools: add, lookup).",
        "Error: the tool 'lookup' has no implementation available here "
        "(it was declared as a schema only), so it could not be run.",
    ]
    assert all(results(m)[0].is_error for m in r.transcript[2:6])
    # The malformed call went back with {} and the error; the model read every result.
    bad = r.transcript[1].content[-4]
    assert isinstance(bad, callm.ToolCall) and bad.arguments == {} and bad.raw_arguments
    assert r.text.count("Tool ") == 4


@sync_or_async
async def test_forced_tool_choice_holds_for_the_first_step_only(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    r, _ = await run(mode, streamed, protocol, "seven", tools=[add], tool_choice="required")
    assert r.finish_reason == "stop" and r.text.startswith("[offline] Tool add returned:")
    first, second = (q.json for q in server.requests)
    choice = {
        "openai_chat": lambda b: b["tool_choice"],
        "openai_responses": lambda b: b["tool_choice"],
        "anthropic": lambda b: b["tool_choice"]["type"],
        "gemini": lambda b: b["toolConfig"]["functionCallingConfig"]["mode"],
    }[protocol]
    forced = {"anthropic": "any", "gemini": "ANY"}.get(protocol, "required")
    later = "AUTO" if protocol == "gemini" else "auto"
    assert (choice(first), choice(second)) == (forced, later)


@sync_or_async
async def test_an_error_mid_run_surfaces_typed(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    server.queue(
        Reply(tool_calls=[FakeToolCall("add", {"a": 1, "b": 1})]),
        Fault.status(400, "bad request on step two"),
    )
    with pytest.raises(callm.BadRequestError, match="step two"):
        await run(mode, streamed, protocol, "go", tools=[add], max_retries=0)
    assert len(server.requests) == 2


# --- arguments and results ------------------------------------------------------------------


class Color(enum.Enum):
    RED = "red"
    GREEN = "green"


class Box(pydantic.BaseModel):
    width: int
    color: Color


@dataclass
class Point:
    x: float
    y: float = 0.0


@sync_or_async
async def test_arguments_are_converted_and_results_encoded(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    received: list[Any] = []

    def place(box: Box, at: Point, tint: Color, tags: tuple[str, ...] = ()) -> Point:
        """Place a box."""
        received.extend([box, at, tint, tags])
        return Point(at.x + box.width, at.y)

    arguments = {"box": {"width": 3, "color": "green"}, "at": {"x": 1.5}, "tint": "red"}
    server.queue(Reply(tool_calls=[FakeToolCall("place", arguments)]))
    r, _ = await run(mode, streamed, protocol, "go", tools=[callm.tool(place, strict=True)])
    assert received == [Box(width=3, color=Color.GREEN), Point(1.5), Color.RED, ()]
    assert results(r.transcript[2])[0].content == '{"x":4.5,"y":0.0}'
    assert r.text == '[offline] Tool place returned: {"x":4.5,"y":0.0}'


@sync_or_async
async def test_explicit_schema_with_a_function(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    def lookup(**fields: Any) -> dict[str, Any]:
        return {"found": sorted(fields)}

    schema = {"type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]}
    tool = callm.Tool("lookup", "Look it up", schema, function=lookup)
    server.queue(Reply(tool_calls=[FakeToolCall("lookup", {"q": "x", "n": 2})]))
    r, _ = await run(mode, streamed, protocol, "go", tools=[tool])
    assert r.text == '[offline] Tool lookup returned: {"found":["n","q"]}'
    assert '"Look it up"' in server.requests[0].body.decode()


# --- sync and async specifics -----------------------------------------------------------------


def test_sync_client_runs_an_async_tool(
    server: FakeOpenAIServer, streamed: bool, protocol: str
) -> None:
    server.queue(Reply(tool_calls=[FakeToolCall("slow_add", {"a": 5, "b": 6})]))
    with callm.Client() as client:
        if streamed:
            with client.run_stream(MODELS[protocol], "go", tools=[slow_add]) as s:
                events = list(s)
            r = s.response
            assert any(isinstance(ev, callm.ToolResultEvent) for ev in events)
        else:
            r = client.run(MODELS[protocol], "go", tools=[slow_add])
    assert r.text == "[offline] Tool slow_add returned: 11"


async def test_async_calls_of_one_step_run_concurrently(
    server: FakeOpenAIServer, streamed: bool, protocol: str
) -> None:
    # Each tool waits for the other: the step can only finish if both run at once —
    # two coroutines on the loop, and two sync functions on two threads.
    barrier = asyncio.Barrier(2)
    threads = threading.Barrier(2, timeout=5)

    async def meet(who: str) -> str:
        """Wait for the other coroutine."""
        async with asyncio.timeout(5):
            await barrier.wait()
        return f"{who} met"

    def meet_in_thread(who: str) -> str:
        """Wait for the other thread."""
        threads.wait()
        return f"{who} met"

    calls = [
        FakeToolCall(name, {"who": who}) for name in ("meet", "meet_in_thread") for who in "ab"
    ]
    server.queue(Reply(tool_calls=calls[:2]), Reply(tool_calls=calls[2:]))
    r, _ = await run("async", streamed, protocol, "go", tools=[meet, meet_in_thread])
    assert [results(m)[0].content for m in r.transcript if m.role == "tool"] == [
        "a met",
        "b met",
        "a met",
        "b met",
    ]


async def test_run_stream_closed_early_makes_no_further_step(
    server: FakeOpenAIServer, streamed: bool, protocol: str
) -> None:
    server.queue(Reply(tool_calls=[FakeToolCall("add", {"a": 1, "b": 1})]))
    async with callm.AsyncClient() as ac:
        async with ac.run_stream(MODELS[protocol], "go", tools=[add]) as s:
            async for ev in s:
                if isinstance(ev, callm.ToolResultEvent):
                    break
        with pytest.raises(callm.CallmError, match="closed before"):
            _ = s.response
    assert [m.role for m in s.transcript] == ["user", "assistant", "tool"]
    assert len(server.requests) == 1


class Sum(pydantic.BaseModel):
    total: int
    note: str


@sync_or_async
async def test_the_final_answer_is_parsed_with_output(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    server.queue(
        Reply(tool_calls=[FakeToolCall("add", {"a": 2, "b": 3}, id="call_add")]),
        Reply('{"total": 5, "note": "added"}'),
    )
    r, events = await run(mode, streamed, protocol, "Add 2 and 3", tools=[add], output=Sum)
    assert r.parsed == Sum(total=5, note="added")
    assert [m.role for m in r.transcript] == ["user", "assistant", "tool", "assistant"]
    assert sent_results(protocol, server.requests[1].json)[0][1] == "5"
    if streamed:
        partial = [ev for ev in events if isinstance(ev, callm.PartialOutput)]
        assert partial and partial[-1].complete and partial[-1].value == r.parsed
