"""Honest accounting: usage nobody reported is unknown, never a made-up 0, and a stream the
caller stopped is logged as cancelled with what had arrived."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import callm
import drive
from callm._store import Store
from callm.testing import FakeOpenAIServer, Fault, Reply
from helpers import point_builtins
from hostile import HostileServer, Received, Send, chat_json, chunk, head, sse

pytestmark = pytest.mark.parametrize("mode", drive.MODES)
STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])
MODEL = "openai/gpt-4o-mini"  # a priced model: a missing usage would cost a made-up $0


def no_usage(request: Received, send: Send) -> None:
    """A good answer that never says how many tokens it took."""
    if request.json.get("stream"):
        body = sse(chunk({"role": "assistant", "content": "four"}), chunk({}, "stop"))
        send(head(200, [("content-type", "text/event-stream")]) + body)
        return
    reply = json.loads(chat_json("four"))
    del reply["usage"]
    body = json.dumps(reply).encode()
    send(head(200, [("content-type", "application/json")], length=len(body)) + body)


def stored_calls(home: Path) -> list[callm.CallInfo | object]:
    with Store(home / "callm.db") as store:
        return list(store.recent_calls(10))


@STREAMED
async def test_unreported_usage_is_unknown_not_zero(
    mode: str, streamed: bool, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HostileServer(no_usage) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-honest-accounting-0000")
        if mode == "sync":
            with callm.Client() as client:
                response = (
                    client.complete(MODEL, "2+2?")
                    if not streamed
                    else _streamed(client.stream(MODEL, "2+2?"))
                )
        else:
            async with callm.AsyncClient() as aclient:
                if streamed:
                    s = await aclient.stream(MODEL, "2+2?")
                    async with s:
                        response = await s.get_response()
                else:
                    response = await aclient.complete(MODEL, "2+2?")
    with Store(isolated_env / "callm.db") as store:
        by_day = store.usage_summary("day")
    assert response.text == "four"
    assert not response.usage.reported
    assert response.cost is None  # never $0 for tokens nobody counted
    (day,) = by_day
    assert day.unpriced_calls == 1 and day.cost is None  # the spend is not understated
    (call,) = stored_calls(isolated_env)
    assert call.cost is None and not call.usage.reported  # type: ignore[attr-defined]


def _streamed(stream: callm.Stream) -> callm.Response:
    with stream as s:
        return s.response


async def test_a_stream_stopped_early_is_logged_as_cancelled(
    mode: str, fake_openai: FakeOpenAIServer, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    point_builtins(fake_openai, monkeypatch)
    chunks = ["one ", "two ", "three ", "four"]
    fake_openai.queue(Fault.stall(after_chunks=3, seconds=5, reply=Reply(chunks=chunks)))
    if mode == "sync":
        with callm.Client() as client, client.stream(MODEL, "count") as s:
            for event in s:
                if event.type == "text" and event.text == "two ":
                    break
    else:
        async with callm.AsyncClient() as aclient:
            s2 = await aclient.stream(MODEL, "count")
            async with s2:
                async for event in s2:
                    if event.type == "text" and event.text == "two ":
                        break
    (call,) = stored_calls(isolated_env)
    assert call.status == "cancelled"  # type: ignore[attr-defined]
    # what had arrived when the caller stopped: never the part that had not
    assert call.response_text.startswith("one two ")  # type: ignore[attr-defined]
    assert "four" not in call.response_text  # type: ignore[attr-defined]
    assert fake_openai.requests  # it was sent, so it is logged at all


async def test_a_budget_is_charged_an_estimate_for_unreported_usage(
    mode: str, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from decimal import Decimal

    with HostileServer(no_usage) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-honest-accounting-0000")
        budget = callm.Budget(limit=Decimal("1"))
        if mode == "sync":
            with callm.Client(budget=budget) as client:
                client.complete(MODEL, "2+2?")
        else:
            async with callm.AsyncClient(budget=budget) as aclient:
                await aclient.complete(MODEL, "2+2?")
    with Store(isolated_env / "callm.db") as store:
        assert store.spend("client") > 0  # not $0: the tokens were used, only not counted
