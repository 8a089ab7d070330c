"""Policies on the Client: routing, fallbacks, balancing, hooks, cost — over loopback HTTP."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from typing import Any

import pytest

import callm
import drive
from callm._policies.base import Attempt, Policy, StateKey
from callm.testing import FakeOpenAIServer, Fault, Reply
from helpers import FAKE_KEY

pytestmark = pytest.mark.parametrize("mode", drive.MODES)
STREAMED = pytest.mark.parametrize("streamed", [False, True], ids=["json", "sse"])


def providers(server: FakeOpenAIServer, *names: str) -> dict[str, Any]:
    """Several OpenAI-compatible providers, all served by the one fake."""
    return {n: {"base_url": server.base_url, "api_key": FAKE_KEY} for n in names}


async def call(
    mode: str,
    streamed: bool,
    client_kwargs: dict[str, Any],
    model: str | None,
    messages: Any = "hi",
    **params: Any,
) -> callm.Response:
    if mode == "sync":
        with callm.Client(**client_kwargs) as c:
            if not streamed:
                return c.complete(model, messages, **params)
            with c.stream(model, messages, **params) as s:
                return s.response
    async with callm.AsyncClient(**client_kwargs) as ac:
        if not streamed:
            return await ac.complete(model, messages, **params)
        s2 = await ac.stream(model, messages, **params)
        async with s2:
            return await s2.get_response()


@STREAMED
async def test_cost_is_computed_for_known_models(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", fake_openai.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    fake_openai.queue(Reply("priced", model="gpt-4o-mini", usage=usage))
    r = await call(mode, streamed, {"log": False}, "openai/gpt-4o-mini")
    assert isinstance(r.cost, Decimal) and r.cost > 0
    cheaper = callm.Usage(input_tokens=1000, output_tokens=100)
    from callm._policies.cost import cost_of

    assert r.cost == cost_of("openai", "gpt-4o-mini", r.usage)
    assert r.cost > cost_of("openai", "gpt-4o-mini", cheaper)


async def test_cost_is_none_for_unknown_models(mode: str, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.queue(Reply("?", model="some-private-model"))
    kwargs = {"providers": providers(fake_openai, "mine"), "log": False}
    r = await call(mode, False, kwargs, "mine/some-private-model")
    assert r.cost is None


@STREAMED
async def test_fallback_moves_on_and_says_what_was_tried(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(Fault.server_error(500), Reply("from the backup"))
    kwargs = {
        "providers": providers(fake_openai, "main", "backup"),
        "fallbacks": {"main/big": ["backup/small"]},
        "max_retries": 0,
        "log": False,
    }
    r = await call(mode, streamed, kwargs, "main/big")
    assert r.text == "from the backup"
    assert r.tried == ("main/big", "backup/small")
    assert [q.json["model"] for q in fake_openai.requests] == ["big", "small"]


async def test_errors_not_named_do_not_fall_back(mode: str, fake_openai: FakeOpenAIServer) -> None:
    fake_openai.queue(Fault.unauthorized(), Reply("never"))
    kwargs = {
        "providers": providers(fake_openai, "main", "backup"),
        "fallbacks": {"main/big": ["backup/small"]},
        "log": False,
    }
    with pytest.raises(callm.AuthenticationError):
        await call(mode, False, kwargs, "main/big")
    assert len(fake_openai.requests) == 1


async def test_context_window_falls_back_to_a_larger_model(
    mode: str, fake_openai: FakeOpenAIServer
) -> None:
    fake_openai.queue(Fault.context_length(), Reply("fits now"))
    kwargs = {
        "providers": providers(fake_openai, "p"),
        "fallbacks": {"p/small": ["p/large"]},
        "log": False,
    }
    r = await call(mode, False, kwargs, "p/small")
    assert (r.text, r.tried) == ("fits now", ("p/small", "p/large"))


async def test_aliases_and_router(mode: str, fake_openai: FakeOpenAIServer) -> None:
    def by_size(request: callm.Request, model: str | None) -> str | None:
        words = sum(len(m.text.split()) for m in request.messages)
        return "smart" if words > 5 else "fast"

    kwargs = {
        "providers": providers(fake_openai, "p"),
        "aliases": {"smart": "p/large-model", "fast": "p/small-model"},
        "router": by_size,
        "log": False,
    }
    await call(mode, False, kwargs, None, "short one")
    await call(mode, False, kwargs, None, "a much longer prompt with many words in it")
    assert [q.json["model"] for q in fake_openai.requests] == ["small-model", "large-model"]


@pytest.mark.parametrize("strategy", ["round_robin", "weighted", "least_busy"])
async def test_groups_balance_deployments(
    mode: str, strategy: str, fake_openai: FakeOpenAIServer
) -> None:
    group = callm.Group(
        ("p/east", "p/west"), strategy=strategy, weights=(3, 1) if strategy == "weighted" else ()
    )
    kwargs = {"providers": providers(fake_openai, "p"), "groups": {"gpt": group}, "log": False}
    for _ in range(8):
        await call(mode, False, kwargs | {}, "gpt")
    models = [q.json["model"] for q in fake_openai.requests]
    assert set(models) <= {"east", "west"}
    if strategy == "round_robin":
        # A fresh client per call restarts the rotation: each call goes to the first.
        assert models.count("east") == 8
    if strategy == "least_busy":
        assert models.count("east") == 8  # sequential calls: nothing is ever busy


async def test_group_rotation_within_one_client(mode: str, fake_openai: FakeOpenAIServer) -> None:
    weighted = callm.Group(("p/a", "p/b"), strategy="weighted", weights=(3, 1))
    rr = callm.Group(("p/x", "p/y"))
    kwargs: dict[str, Any] = {
        "providers": providers(fake_openai, "p"),
        "log": False,
        "groups": {"w": weighted, "rr": rr},
    }
    if mode == "sync":
        with callm.Client(**kwargs) as c:
            for _ in range(8):
                c.complete("w", "hi")
                c.complete("rr", "hi")
    else:
        async with callm.AsyncClient(**kwargs) as ac:
            for _ in range(8):
                await ac.complete("w", "hi")
                await ac.complete("rr", "hi")
    models = [q.json["model"] for q in fake_openai.requests]
    assert (models.count("a"), models.count("b")) == (6, 2)
    assert models[1::2] == ["x", "y"] * 4


@STREAMED
async def test_hooks_modify_observe_and_veto(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    seen: list[tuple[str, Any]] = []

    def redact(info: callm.CallInfo) -> callm.Request:
        seen.append(("before", info.model))
        messages = tuple(
            callm.Message(m.role, (callm.Text(m.text.replace("secret", "[redacted]")),))
            for m in info.request.messages
        )
        return dataclasses.replace(info.request, messages=messages)

    kwargs = {
        "providers": providers(fake_openai, "p"),
        "before_request": [redact],
        "after_response": [lambda info, r: seen.append(("after", r.text[:9]))],
        "on_error": [lambda info, e: seen.append(("error", type(e).__name__))],
        "max_retries": 0,
        "log": False,
    }
    await call(mode, streamed, kwargs, "p/m", "my secret plan")
    assert fake_openai.requests[-1].json["messages"][0]["content"] == "my [redacted] plan"
    fake_openai.queue(Fault.server_error(502))
    with pytest.raises(callm.InternalServerError):
        await call(mode, streamed, kwargs, "p/m", "again")
    assert seen == [
        ("before", "p/m"),
        ("after", "[offline]"),
        ("before", "p/m"),
        ("error", "InternalServerError"),
    ]

    def veto(info: callm.CallInfo) -> None:
        raise callm.RequestVetoed("not on my watch")

    vetoing = kwargs | {"before_request": [veto]}
    with pytest.raises(callm.RequestVetoed, match="not on my watch"):
        await call(mode, streamed, vetoing, "p/m", "hi")
    assert len(fake_openai.requests) == 2  # the vetoed call was never sent


async def test_one_rate_limit_is_shared_by_threads_and_tasks(
    mode: str, fake_openai: FakeOpenAIServer
) -> None:
    # 1200 requests a minute, a burst of one second: 20 go at once, the next 10 follow over
    # half a second (one every 50 ms), whoever sends them.
    limits = {"p/*": callm.RateLimit(rpm=1200)}
    kwargs = {"providers": providers(fake_openai, "p"), "rate_limits": limits, "log": False}
    started = time.monotonic()
    if mode == "sync":
        with callm.Client(**kwargs) as c, ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda _: c.complete("p/m", "hi"), range(30)))
    else:
        async with callm.AsyncClient(**kwargs) as ac:
            await asyncio.gather(*(ac.complete("p/m", "hi") for _ in range(30)))
    elapsed = time.monotonic() - started
    assert len(fake_openai.requests) == 30
    assert 0.45 <= elapsed < 3.0


async def test_rate_limit_wait_beyond_max_wait_is_refused(
    mode: str, fake_openai: FakeOpenAIServer
) -> None:
    limits = {"*": callm.RateLimit(rpm=60, max_wait=0.1)}  # one a second, no queueing
    kwargs = {"providers": providers(fake_openai, "p"), "rate_limits": limits, "log": False}
    await call(mode, False, kwargs, "p/m")
    if mode == "sync":
        with callm.Client(**kwargs) as c:
            c.complete("p/m", "first")
            with pytest.raises(callm.RateLimitError, match="max_wait"):
                c.complete("p/m", "second")
    else:
        async with callm.AsyncClient(**kwargs) as ac:
            await ac.complete("p/m", "first")
            with pytest.raises(callm.RateLimitError, match="max_wait"):
                await ac.complete("p/m", "second")


class _Recorder(Policy):
    """A caller's own policy: notes every step it sees, and keeps state on the attempt."""

    def __init__(self, name: str, seen: list[str]) -> None:
        self.name, self.seen = name, seen
        self.key: StateKey[str] = StateKey(name)  # a key of its own: instances do not clash

    def admit(self, attempt: Attempt) -> None:
        self.seen.append(f"{self.name}.admit")

    def prepare(self, attempt: Attempt) -> None:
        assert attempt.http is not None  # encoded by now
        attempt.put(self.key, f"{self.name}:{attempt.info.model}")
        self.seen.append(f"{self.name}.prepare")

    def wait(self, attempt: Attempt) -> None:
        self.seen.append(f"{self.name}.wait")

    async def wait_async(self, attempt: Attempt) -> None:
        self.seen.append(f"{self.name}.wait")

    def succeeded(
        self, attempt: Attempt, response: callm.Response, headers: Mapping[str, str]
    ) -> callm.Response:
        self.seen.append(f"{self.name}.succeeded {attempt.get(self.key)}")
        return response

    def failed(self, attempt: Attempt, error: BaseException) -> None:
        self.seen.append(f"{self.name}.failed {type(error).__name__}")


@STREAMED
async def test_a_callers_policies_run_in_order_out_and_in_reverse_order_back(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    seen: list[str] = []
    kwargs = {
        "providers": providers(fake_openai, "p"),
        "policies": [_Recorder("outer", seen), _Recorder("inner", seen)],
        "before_request": [lambda info: seen.append("hook.before")],
        "after_response": [lambda info, r: seen.append(f"hook.after {r.cost is not None}")],
        "max_retries": 0,
        "log": False,
    }
    await call(mode, streamed, kwargs, "p/m")
    assert seen == [
        "outer.admit",
        "inner.admit",
        "hook.before",  # the client's own hooks come after the caller's policies
        "outer.prepare",
        "inner.prepare",
        "outer.wait",
        "inner.wait",
        "hook.after False",  # cost ran first on the way back: an unknown model has none
        "inner.succeeded inner:p/m",
        "outer.succeeded outer:p/m",
    ]
    seen.clear()
    fake_openai.queue(Fault.server_error(503))
    with pytest.raises(callm.OverloadedError):
        await call(mode, streamed, kwargs, "p/m")
    assert seen[-2:] == ["inner.failed OverloadedError", "outer.failed OverloadedError"]


class _KeyCheck(Policy):
    """What a gateway's key check looks like: refuse before anything is encoded or sent."""

    def admit(self, attempt: Attempt) -> None:
        if attempt.info.tags.get("key") != "good":
            raise callm.RequestVetoed("unknown key: use one that callm keys list shows")


class _Canned(Policy):
    """A policy that answers without sending (as the response cache does)."""

    def answer(self, attempt: Attempt) -> callm.Response | None:
        return callm.Response(
            "canned", attempt.info.request.model, "p", (callm.Text("hi"),), "stop", callm.Usage()
        )


@STREAMED
async def test_a_callers_policy_can_refuse_or_answer_without_sending(
    mode: str, streamed: bool, fake_openai: FakeOpenAIServer
) -> None:
    base = {"providers": providers(fake_openai, "p"), "log": False}
    with pytest.raises(callm.RequestVetoed, match="unknown key"):
        await call(mode, streamed, base | {"policies": [_KeyCheck()]}, "p/m", tags={"key": "x"})
    reply = await call(
        mode, streamed, base | {"policies": [_KeyCheck()]}, "p/m", tags={"key": "good"}
    )
    assert reply.text.startswith("[offline]")
    canned = await call(mode, streamed, base | {"policies": [_Canned()]}, "p/m")
    assert (canned.text, canned.cached) == ("hi", False)
    assert len(fake_openai.requests) == 1  # only the admitted, unanswered call was sent
