"""Conversations: the history resent, fitted to the window, persisted, resumed — every protocol.

Each scenario runs through the sync and the async client, streamed or not, against the
loopback fake; what was *sent* is read from the fake's recorded requests.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import callm
import drive
from callm._store import Store
from callm.testing import FakeOpenAIServer, FakeToolCall, Fault, Reply
from helpers import point_builtins

KEY = "sk-conversation-fake-key"
MODELS = {
    "openai_chat": "openai/gpt-4o-mini",
    "openai_responses": "openai-responses/gpt-4o-mini",
    "anthropic": "anthropic/claude-sonnet-4-5",
    "gemini": "gemini/gemini-2.5-flash",
}
WEATHER = callm.Tool(
    "get_weather",
    "Current weather of a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)
PROTOCOLS = pytest.mark.parametrize("protocol", list(MODELS))
STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
MODES = pytest.mark.parametrize("mode", drive.MODES)
Conv = callm.Conversation | callm.AsyncConversation


@pytest.fixture
def server(fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    """Every built-in provider of the four protocols, pointed at the one fake."""
    return point_builtins(fake_openai, monkeypatch, KEY)


@asynccontextmanager
async def opened(mode: str, **kwargs: Any) -> AsyncIterator[callm.Client | callm.AsyncClient]:
    """A sync or an async client, closed afterwards."""
    if mode == "sync":
        with callm.Client(**kwargs) as client:
            yield client
    else:
        async with callm.AsyncClient(**kwargs) as aclient:
            yield aclient


async def say(conv: Conv, streamed: bool, *content: Any, **params: Any) -> callm.Response:
    """One send() or stream() of a conversation, sync or async."""
    if isinstance(conv, callm.Conversation):
        if not streamed:
            return conv.send(*content, **params)
        with conv.stream(*content, **params) as s:
            return s.response
    if not streamed:
        return await conv.send(*content, **params)
    stream = await conv.stream(*content, **params)
    async with stream:
        return await stream.get_response()


def sent(server: FakeOpenAIServer, index: int = -1) -> str:
    """A recorded generation request's JSON body, as text."""
    return json.dumps(server.requests[index].json, ensure_ascii=False)


def padded(marker: str) -> str:
    """A user message of about 150 characters, told apart by ``marker``."""
    return f"{marker} " + "lorem ipsum dolor sit amet " * 5


@PROTOCOLS
@STREAMED
@MODES
async def test_history_is_resent_on_every_call(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    async with opened(mode) as client:
        conv = client.conversation(MODELS[protocol], system="Be brief.")
        replies = [await say(conv, streamed, text) for text in ("apples", "pears", "plums")]
    assert len(server.requests) == 3
    for turn, reply in enumerate(replies):
        body = sent(server, turn)
        assert "Be brief." in body
        for earlier in replies[:turn]:
            assert json.dumps(earlier.text)[1:-1] in body
        assert reply.text.startswith('[offline] You said: "' + ("apples", "pears", "plums")[turn])
    assert [m.role for m in conv.messages] == ["system", *["user", "assistant"] * 3]
    assert replies[-1].transcript == conv.messages
    assert conv.messages[-1].text == replies[-1].text
    assert conv.usage == replies[0].usage + replies[1].usage + replies[2].usage
    assert conv.cost is not None and conv.cost > 0


@PROTOCOLS
@STREAMED
@MODES
async def test_drop_oldest_trims_what_is_sent_never_splitting_a_tool_call(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    async with opened(mode) as client:
        conv = client.conversation(
            MODELS[protocol], system="Be brief.", context_window=600, tools=[WEATHER]
        )
        server.queue(Reply(tool_calls=[FakeToolCall("get_weather", {"city": "Paris"})]))
        asked = await say(conv, streamed, "What is the weather in Paris?")
        (call,) = asked.tool_calls
        conv.append(callm.Message.tool(call.id, "18C and sunny"))
        answer = await say(conv, streamed)  # nothing new: continue after the tool result
        assert answer.text == "[offline] Tool get_weather returned: 18C and sunny"
        for i in range(6):
            await say(conv, streamed, padded(f"marker{i}"))
    first, last = sent(server, 2), sent(server)
    assert "Paris" in first and "18C and sunny" in first  # the tool turn still fitted then
    assert "Paris" not in last and "18C and sunny" not in last  # gone together
    assert "Be brief." in last and "marker5" in last and "marker0" not in last
    for request in server.requests[1:]:  # once the tool result was in the history
        body = json.dumps(request.json)
        # A tool result is never sent without the call it answers, nor the call without it.
        assert ("18C and sunny" in body) == ("Paris" in body)
    # Only what was sent was trimmed: the history keeps everything.
    texts = " ".join(m.text for m in conv.messages)
    assert "Paris" in texts and "marker0" in texts
    assert len(conv.messages) == 1 + 4 + 2 * 6


@PROTOCOLS
@STREAMED
@MODES
async def test_summarize_replaces_old_turns_with_a_summary(
    server: FakeOpenAIServer, mode: str, streamed: bool, protocol: str
) -> None:
    with FakeOpenAIServer() as summarizer:
        summarizer.queue(*[Reply("SUMMARY-ALPHA: the user sent numbered markers.")] * 10)
        providers = {"summarizer": {"base_url": summarizer.base_url, "api_key": KEY}}
        async with opened(mode, providers=providers) as client:
            conv = client.conversation(
                MODELS[protocol],
                system="Be brief.",
                context_window=1000,
                strategy="summarize",
                summary_model="summarizer/gpt-4o-mini",
            )
            summaries_before = []
            for i in range(8):
                summaries_before.append(len(summarizer.requests))
                await say(conv, streamed, padded(f"marker{i}"))
        asked = summarizer.requests
    assert asked, "the window was too small to keep every turn: a summary was made"
    assert "You summarise conversations" in json.dumps(asked[0].json)
    assert "marker0" in json.dumps(asked[0].json)
    assert conv.summary == "SUMMARY-ALPHA: the user sent numbered markers."
    last = sent(server)
    assert "SUMMARY-ALPHA" in last and "Be brief." in last
    assert "marker0" not in last and "marker7" in last
    # The summary is kept and reused: not every later turn needs a new one.
    first = next(i for i, n in enumerate(summaries_before) if n)
    assert len(asked) < 8 - first + 1
    assert len(server.requests) == 8  # the summaries went to the summary model only
    assert len(conv.messages) == 1 + 2 * 8


async def test_summary_defaults_to_the_conversation_model(server: FakeOpenAIServer) -> None:
    with callm.Client() as client:
        conv = client.conversation("openai/gpt-4o-mini", context_window=1000, strategy="summarize")
        for i in range(8):
            if i == 7:
                server.queue(Reply("SUMMARY-BETA"))  # taken by the summary call, if one comes
            conv.send(padded(f"marker{i}"))
    bodies = [json.dumps(r.json) for r in server.requests]
    summary_calls = [b for b in bodies if "You summarise conversations" in b]
    assert summary_calls and len(bodies) == 8 + len(summary_calls)
    assert conv.summary is not None and json.dumps(conv.summary)[1:-1] in bodies[-1]


@STREAMED
@MODES
async def test_newest_message_too_big_is_refused_before_sending(
    server: FakeOpenAIServer, mode: str, streamed: bool
) -> None:
    async with opened(mode) as client:
        conv = client.conversation("openai/gpt-4o-mini", system="Be brief.", context_window=1000)
        await say(conv, streamed, "a small question")
        before = conv.messages
        with pytest.raises(callm.ContextWindowExceededError) as caught:
            await say(conv, streamed, "word " * 6000)
        assert len(server.requests) == 1  # nothing was sent for the big one
        assert conv.messages == before
        message = str(caught.value)
        assert "1000-token context window" in message and "nothing was sent" in message
        await say(conv, streamed, "a second small question")  # the conversation goes on
    assert len(conv.messages) == 5


@PROTOCOLS
@MODES
async def test_resume_by_id_in_a_new_client(
    server: FakeOpenAIServer, mode: str, protocol: str
) -> None:
    async with opened(mode) as client:
        conv = client.conversation(MODELS[protocol], system="Answer in French.", temperature=0.25)
        await say(conv, False, "first question")
        await say(conv, True, "second question")
        conversation_id, history = conv.id, conv.messages
    async with opened(mode) as client:
        again = client.conversation(id=conversation_id)
        assert again.resumed and again.model == MODELS[protocol]
        assert again.system == "Answer in French."
        assert again.messages == history
        assert again.usage == conv.usage
        reply = await say(again, False, "third question")
    body = sent(server)
    for text in ("Answer in French.", "first question", "second question", "third question"):
        assert text in body
    assert "0.25" in body  # the stored call defaults came back too
    assert reply.transcript == again.messages and len(again.messages) == 7


async def test_a_new_id_starts_a_new_conversation_and_persist_false_stores_nothing(
    server: FakeOpenAIServer,
) -> None:
    with callm.Client() as client:
        fresh = client.conversation("openai/gpt-4o-mini", id="chat-42")
        assert fresh.id == "chat-42" and not fresh.resumed
        fresh.send("hello")
        private = client.conversation("openai/gpt-4o-mini", persist=False)
        private.send("not stored")
    with callm.Client() as client:
        assert client.conversation(id="chat-42").resumed
        assert not client.conversation(id=private.id).resumed


async def test_images_are_kept_and_keys_are_not(
    server: FakeOpenAIServer, isolated_env: Path
) -> None:
    png = callm.Image.from_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    secret = "sk-proj-" + "abcdefghijklmnopqrstuvwxyz" + "0123"  # a fake, assembled
    with callm.Client() as client:
        conv = client.conversation("openai/gpt-4o-mini")
        conv.send(callm.Message.user(f"my key is {secret}, what is this?", png))
        conversation_id = conv.id
    stored = b"".join(p.read_bytes() for p in isolated_env.glob("callm.db*"))
    assert secret.encode() not in stored and KEY.encode() not in stored
    with callm.Client() as client:
        again = client.conversation(id=conversation_id)
        image = again.messages[0].content[1]
        assert image == png  # the whole image, ready to be sent again
        assert "my key is ***" in again.messages[0].text
        again.send("and now?")
    assert png.url.split(",", 1)[1] in sent(server)


@PROTOCOLS
@MODES
async def test_failed_or_abandoned_stream_leaves_the_history_consistent(
    server: FakeOpenAIServer, mode: str, protocol: str
) -> None:
    async with opened(mode) as client:
        conv = client.conversation(MODELS[protocol], system="Be brief.")
        await say(conv, False, "first")
        before = conv.messages
        server.queue(Fault.drop_mid_stream(after_chunks=6))  # past the first text
        with pytest.raises(callm.APIError):
            await say(conv, True, "second")
        assert conv.messages == before
        await abandon(conv, "second")
        assert conv.messages == before
        reply = await say(conv, True, "second")  # the retry works and sends "second" once
        assert sent(server).count("second") == 1
        conversation_id = conv.id
    assert [m.role for m in reply.transcript] == ["system", "user", "assistant"] * 1 + [
        "user",
        "assistant",
    ]
    async with opened(mode) as client:
        assert client.conversation(id=conversation_id).messages == conv.messages


async def abandon(conv: Conv, text: str) -> None:
    """Open a stream, read one event, and close it."""
    if isinstance(conv, callm.Conversation):
        with conv.stream(text) as s:
            next(iter(s))
        return
    stream = await conv.stream(text)
    async with stream:
        await anext(aiter(stream))


@STREAMED
@MODES
async def test_tool_messages_and_responses_can_be_sent(
    server: FakeOpenAIServer, mode: str, streamed: bool
) -> None:
    async with opened(mode) as client:
        conv = client.conversation("anthropic/claude-sonnet-4-5", tools=[WEATHER])
        server.queue(Reply(tool_calls=[FakeToolCall("get_weather", {"city": "Oslo"})]))
        asked = await say(conv, streamed, "Weather in Oslo?")
        assert conv.messages[-1].content == asked.content  # the tool call is kept
        (call,) = asked.tool_calls
        answer = await say(conv, streamed, callm.Message.tool(call.id, "2C and snow"))
    assert answer.text == "[offline] Tool get_weather returned: 2C and snow"
    assert [m.role for m in conv.messages] == ["user", "assistant", "tool", "assistant"]


async def test_an_unknown_strategy_is_refused(server: FakeOpenAIServer) -> None:
    with callm.Client() as client, pytest.raises(callm.InvalidRequestError, match="strategy"):
        client.conversation("openai/gpt-4o-mini", strategy="forget_all")


async def test_a_store_that_fails_loses_no_reply_and_catches_up(
    server: FakeOpenAIServer, isolated_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import sqlite3

    with callm.Client() as client:
        conv = client.conversation("openai/gpt-4o-mini")
        conv.send("first")
        # Break the store behind the client's back: the next save fails.
        with sqlite3.connect(isolated_env / "callm.db") as db:
            db.execute("ALTER TABLE conversation_messages RENAME TO hidden")
        reply = conv.send("second")
        assert reply.text.startswith('[offline] You said: "second')
        assert "could not be saved" in caplog.text
        with sqlite3.connect(isolated_env / "callm.db") as db:
            db.execute("ALTER TABLE hidden RENAME TO conversation_messages")
        conv.send("third")  # saves its own messages and the ones the failure left behind
        conversation_id, history = conv.id, conv.messages
    with callm.Client() as client:
        assert client.conversation(id=conversation_id).messages == history


@MODES
async def test_the_call_log_knows_each_call_s_conversation(
    server: FakeOpenAIServer, mode: str, isolated_env: Path
) -> None:
    async with opened(mode) as client:
        conv = client.conversation("openai/gpt-4o-mini")
        await say(conv, False, "one")
        await say(conv, True, "two")
        await drive_complete(client, "openai/gpt-4o-mini", "not in a conversation")
    with Store(isolated_env / "callm.db") as store:
        calls = store.recent_calls(10)
    assert sorted(c.conversation_id or "-" for c in calls) == ["-", conv.id, conv.id]


async def drive_complete(client: callm.Client | callm.AsyncClient, *args: Any) -> None:
    if isinstance(client, callm.Client):
        client.complete(*args)
    else:
        await client.complete(*args)


@STREAMED
@MODES
async def test_two_copies_of_one_conversation_lose_no_turn(
    server: FakeOpenAIServer, mode: str, streamed: bool
) -> None:
    # Two clients (two processes, as far as the store can tell) continue one conversation
    # from the same starting point: both turns are kept, the later one after the earlier.
    server.queue(Reply("one"), Reply("from a"), Reply("from b"))
    async with opened(mode) as client:
        first = client.conversation("openai/gpt-4o-mini")
        r0 = await say(first, streamed, "start")
    async with opened(mode) as client_a, opened(mode) as client_b:
        conv_a = client_a.conversation(id=first.id)
        conv_b = client_b.conversation(id=first.id)
        ra = await say(conv_a, streamed, "question a")
        rb = await say(conv_b, streamed, "question b")
        # b's copy has caught up with what a stored: its next turn sends all of it
        tail = [m.text for m in conv_b.messages][-4:]
        assert tail == ["question a", "from a", "question b", "from b"]
    async with opened(mode) as client:
        stored = client.conversation(id=first.id)
    texts = [m.text for m in stored.messages]
    assert texts == ["start", "one", "question a", "from a", "question b", "from b"]
    # usage and cost are added up across both writers, not overwritten by the last one
    assert stored.usage == r0.usage + ra.usage + rb.usage
    assert stored.cost == sum((r.cost for r in (r0, ra, rb) if r.cost is not None), Decimal(0))
