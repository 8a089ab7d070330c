"""Policies that persist: budgets across restarts, the call log, and tracing spans."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import callm
import drive
from callm._policies.cost import cost_of
from callm._store import Store
from callm.testing import FakeOpenAIServer, Fault, Reply
from helpers import FAKE_KEY

USAGE = {"prompt_tokens": 1000, "completion_tokens": 1000, "total_tokens": 2000}
CALL_COST = cost_of("openai", "gpt-4o-mini", callm.Usage(input_tokens=1000, output_tokens=1000))


@pytest.fixture
def openai_env(fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch) -> FakeOpenAIServer:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    return fake_openai


def priced_replies(server: FakeOpenAIServer, n: int) -> None:
    server.queue(*[Reply("ok", model="gpt-4o-mini", usage=USAGE) for _ in range(n)])


@pytest.mark.parametrize("mode", drive.MODES)
async def test_budget_refuses_before_sending_and_survives_a_restart(
    mode: str, openai_env: FakeOpenAIServer
) -> None:
    assert CALL_COST is not None
    budget = callm.Budget(limit=CALL_COST * Decimal("1.5"))
    priced_replies(openai_env, 3)

    async def one(client_kwargs: dict[str, Any]) -> callm.Response:
        return await drive_call(mode, client_kwargs, "openai/gpt-4o-mini", "hi", max_tokens=1)

    kwargs = {"budget": budget, "log": False}
    await one(kwargs)  # spends 1 call
    await one(kwargs)  # spent 1 < 1.5: allowed, spends the 2nd
    with pytest.raises(callm.BudgetExceededError, match="budget"):
        await one(kwargs)
    assert len(openai_env.requests) == 2  # the refused call was never sent
    # A new client (a restart) reads the spend back from the store.
    with pytest.raises(callm.BudgetExceededError):
        await one(kwargs)
    assert Store().spend("client") == CALL_COST * 2


async def test_budget_per_tag(openai_env: FakeOpenAIServer) -> None:
    assert CALL_COST is not None
    budget = callm.Budget(per_tag={"user": {"u1": CALL_COST / 2, "u2": CALL_COST * 10}})
    priced_replies(openai_env, 3)
    with callm.Client(budget=budget, log=False) as c:
        c.complete("openai/gpt-4o-mini", "hi", max_tokens=1, tags={"user": "u1"})
        with pytest.raises(callm.BudgetExceededError, match="user=u1"):
            c.complete("openai/gpt-4o-mini", "hi", max_tokens=1, tags={"user": "u1"})
        c.complete("openai/gpt-4o-mini", "hi", max_tokens=1, tags={"user": "u2"})
        c.complete("openai/gpt-4o-mini", "hi", max_tokens=1, tags={"user": "nobody"})
    assert len(openai_env.requests) == 3


@pytest.mark.parametrize("mode", drive.MODES)
async def test_every_call_is_logged_with_what_a_user_needs(
    mode: str, openai_env: FakeOpenAIServer, isolated_env: Path
) -> None:
    priced_replies(openai_env, 1)
    openai_env.queue(Reply(chunks=["stre", "amed"]), Fault.unauthorized())
    messages = [callm.Message.system("Be brief."), callm.Message.user("What is 2+2?")]
    await drive_call(mode, {}, "openai/gpt-4o-mini", messages, tags={"feature": "math"})
    await drive_call(mode, {}, "openai/gpt-4o-mini", "stream it", stream=True)
    with pytest.raises(callm.AuthenticationError):
        await drive_call(mode, {}, "openai/gpt-4o-mini", "fails")
    await drive_call(mode, {}, "openai/gpt-4o-mini", "not logged", log=False)
    calls = Store(isolated_env / "callm.db").recent_calls(10)
    assert [c.status for c in calls] == ["AuthenticationError", "ok", "ok"]
    failed, streamed, first = calls
    assert first.response_text == "ok" and first.cost == CALL_COST
    assert (first.input_tokens, first.output_tokens) == (1000, 1000)
    assert first.tags == {"feature": "math"}
    assert "What is 2+2?" in str(first.request) and "Be brief." in str(first.request)
    assert streamed.streamed and streamed.response_text == "streamed"
    assert "Incorrect API key" in (failed.error or "")
    assert all(FAKE_KEY not in str(c) for c in calls)


async def drive_call(
    mode: str,
    client_kwargs: dict[str, Any],
    model: str,
    messages: Any,
    *,
    stream: bool = False,
    **params: Any,
) -> callm.Response:
    """One call through a fresh client, closed (and its log written) afterwards."""
    if mode == "sync":
        with callm.Client(**client_kwargs) as c:
            if not stream:
                return c.complete(model, messages, **params)
            with c.stream(model, messages, **params) as s:
                return s.response
    async with callm.AsyncClient(**client_kwargs) as ac:
        if not stream:
            return await ac.complete(model, messages, **params)
        s2 = await ac.stream(model, messages, **params)
        async with s2:
            return await s2.get_response()


@pytest.mark.parametrize("mode", drive.MODES)
async def test_calls_are_traced_as_genai_spans(mode: str, openai_env: FakeOpenAIServer) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    priced_replies(openai_env, 1)
    openai_env.queue(Fault.not_found())
    kwargs = {"tracer_provider": provider, "log": False}
    await drive_call(mode, kwargs, "openai/gpt-4o-mini", "hi", max_tokens=5)
    with pytest.raises(callm.NotFoundError):
        await drive_call(mode, kwargs, "openai/gpt-4o-mini", "missing")
    ok, failed = exporter.get_finished_spans()
    assert ok.name == "chat gpt-4o-mini"
    assert ok.attributes is not None and failed.attributes is not None
    assert ok.attributes["gen_ai.request.max_tokens"] == 5
    assert ok.attributes["gen_ai.usage.input_tokens"] == 1000
    assert ok.attributes["gen_ai.response.finish_reasons"] == ("stop",)
    assert failed.attributes["error.type"] == "NotFoundError"


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
@pytest.mark.parametrize("mode", drive.MODES)
async def test_response_cache_hits_are_marked_and_free(
    mode: str, backend: str, openai_env: FakeOpenAIServer
) -> None:
    cache = callm.ResponseCache(ttl=60, backend=backend)
    priced_replies(openai_env, 1)
    openai_env.queue(
        Reply("a different question"), Fault.server_error(500), Reply("after the error")
    )
    kwargs: dict[str, Any] = {"cache": cache, "log": False, "max_retries": 0}
    if mode == "sync":
        with callm.Client(**kwargs) as c:
            first = c.complete("openai/gpt-4o-mini", "same question")
            again = c.complete("openai/gpt-4o-mini", "same question")
            with c.stream("openai/gpt-4o-mini", "same question") as s:
                streamed = [e.text for e in s if e.type == "text"]
            other = c.complete("openai/gpt-4o-mini", "another question")
            with pytest.raises(callm.InternalServerError):
                c.complete("openai/gpt-4o-mini", "fails once")
            retried = c.complete("openai/gpt-4o-mini", "fails once")
            fresh = c.complete("openai/gpt-4o-mini", "same question", response_cache=False)
    else:
        async with callm.AsyncClient(**kwargs) as ac:
            first = await ac.complete("openai/gpt-4o-mini", "same question")
            again = await ac.complete("openai/gpt-4o-mini", "same question")
            s2 = await ac.stream("openai/gpt-4o-mini", "same question")
            async with s2:
                streamed = [e.text async for e in s2 if e.type == "text"]
            other = await ac.complete("openai/gpt-4o-mini", "another question")
            with pytest.raises(callm.InternalServerError):
                await ac.complete("openai/gpt-4o-mini", "fails once")
            retried = await ac.complete("openai/gpt-4o-mini", "fails once")
            fresh = await ac.complete("openai/gpt-4o-mini", "same question", response_cache=False)
    assert (first.cached, again.cached) == (False, True)
    assert again.text == first.text == "ok" and again.usage == first.usage
    assert first.cost and again.cost == 0
    assert streamed == ["ok"]
    assert other.text == "a different question" and not other.cached
    assert retried.text == "after the error" and not retried.cached  # errors are not cached
    assert not fresh.cached
    assert len(openai_env.requests) == 5  # first, other, the error, its retry, fresh


async def test_cached_entries_expire(openai_env: FakeOpenAIServer) -> None:
    with callm.Client(cache=callm.ResponseCache(ttl=0.05), log=False) as c:
        c.complete("openai/gpt-4o-mini", "q")
        assert c.complete("openai/gpt-4o-mini", "q").cached
        import time

        time.sleep(0.1)
        assert not c.complete("openai/gpt-4o-mini", "q").cached
    assert len(openai_env.requests) == 2
