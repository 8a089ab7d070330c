"""A whole request to a model of the caller's own protocol passes straight through: the
upstream gets the caller's body with only the model renamed, and everything around it —
checks, limits, retries, errors, usage — is as on the engine's path."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anthropic
import openai
import pytest
from gateway_process import GatewayProcess

from callm.testing import FakeOpenAIServer, Fault, Reply

HI: Any = [{"role": "user", "content": "Hi"}]
_clients: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def chat(gateway: GatewayProcess, key: str) -> openai.OpenAI:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    _clients.append(client)
    return client


def test_the_upstream_gets_the_callers_own_body(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    upstream.queue(Reply("as sent"))
    body: dict[str, Any] = {
        "model": "openai/gpt-4o-mini",
        "messages": HI,
        "max_tokens": 20,  # the engine would write max_completion_tokens for OpenAI
        "logit_bias": {"50256": -100},
        "metadata": {"team": "a"},
    }
    reply = chat(gateway, gateway.new_key()).chat.completions.create(**body)
    assert reply.choices[0].message.content == "as sent"
    assert reply.model == "openai/gpt-4o-mini"
    assert upstream.requests[-1].json == {**body, "model": "gpt-4o-mini"}


def test_an_anthropic_caller_reaches_anthropic_as_it_wrote(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    upstream.queue(Reply("as sent"))
    body: dict[str, Any] = {
        "model": "anthropic/claude-sonnet-4-5",
        "max_tokens": 30,
        "system": "Be brief.",
        "messages": HI,
    }
    client = anthropic.Anthropic(base_url=gateway.url, api_key=gateway.new_key(), max_retries=0)
    _clients.append(client)
    message = client.messages.create(**body)
    assert message.content[0].text == "as sent"  # type: ignore[union-attr]
    assert message.model == "anthropic/claude-sonnet-4-5"
    assert upstream.requests[-1].json == {**body, "model": "claude-sonnet-4-5"}


def test_bad_input_is_still_refused_by_name(gateway: GatewayProcess) -> None:
    with pytest.raises(openai.BadRequestError, match=r"messages\[0\]\.role"):
        chat(gateway, gateway.new_key()).chat.completions.create(
            model="openai/gpt-4o-mini", messages=[{"role": "robot", "content": "Hi"}]
        )


def test_a_budget_caps_a_request_that_set_no_max_tokens(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    # The reservation assumed a cap, so the cap must reach the upstream: the engine's path.
    upstream.queue(Reply("capped"))
    key = gateway.new_key(budget_usd="5")
    chat(gateway, key).chat.completions.create(model="openai/gpt-4o-mini", messages=HI)
    assert upstream.requests[-1].json["max_completion_tokens"] == 4096


def test_retries_errors_usage_and_spend_as_on_the_engines_path(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    upstream.queue(Fault.server_error(), Reply("after a retry"))
    key = gateway.new_key(budget_usd="5")
    client = chat(gateway, key)
    reply = client.chat.completions.create(model="openai/gpt-4o-mini", messages=HI, max_tokens=10)
    assert reply.choices[0].message.content == "after a retry"
    assert reply.usage is not None and reply.usage.completion_tokens > 0
    upstream.queue(Fault.status(400, "That prompt is not allowed."))
    with pytest.raises(openai.BadRequestError, match="That prompt is not allowed"):
        client.chat.completions.create(model="openai/gpt-4o-mini", messages=HI, max_tokens=10)
    _, keys = gateway.admin("GET", "/admin/keys")
    mine = next(k for k in keys["data"] if key.startswith(k["prefix"]))
    assert Decimal(mine["spend_usd"]) > 0
