"""Virtual keys and the admin API end to end: limits answered in the caller's format."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import openai
import pytest
from gateway_process import GatewayProcess

from callm.testing import FakeOpenAIServer

HI = [{"role": "user", "content": "Hi"}]


_clients: list[Any] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _clients:
        _clients.pop().close()


def sdk(gateway: GatewayProcess, key: str) -> openai.OpenAI:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)
    _clients.append(client)
    return client


def key_id_of(gateway: GatewayProcess, key: str) -> str:
    _, listing = gateway.admin("GET", "/admin/keys")
    return str(next(k["id"] for k in listing["data"] if key.startswith(k["prefix"])))


def test_a_key_is_shown_once_and_listed_by_prefix(gateway: GatewayProcess) -> None:
    status, made = gateway.admin("POST", "/admin/keys", {"name": "ci", "rpm": 5})
    assert status == 201
    key = made["key"]
    assert key.startswith("sk-callm-")
    assert made["rpm"] == 5
    _, listing = gateway.admin("GET", "/admin/keys")
    assert key not in json.dumps(listing)
    shown = next(k for k in listing["data"] if k["id"] == made["id"])
    assert key.startswith(shown["prefix"])
    assert shown["name"] == "ci"
    assert "key" not in shown
    database = (gateway.home / "gateway.db").read_bytes()
    assert key.encode() not in database


def test_the_admin_api_needs_the_master_key(gateway: GatewayProcess) -> None:
    status, _body = gateway.admin("GET", "/admin/keys", key="wrong")
    assert status == 401
    caller_key = gateway.new_key()
    assert gateway.admin("POST", "/admin/keys", {}, key=caller_key)[0] == 401


@pytest.mark.parametrize(
    "body",
    [
        {"rpm": 0},
        {"budget_usd": "lots"},
        {"budget_period": "monthly"},
        {"colour": "red"},
        {"models": "openai/*", "expires_at": "soon"},
    ],
)
def test_bad_limits_are_400(gateway: GatewayProcess, body: dict[str, object]) -> None:
    status, answer = gateway.admin("POST", "/admin/keys", body)
    assert status == 400
    assert answer["error"]["message"]


def test_rpm_is_a_429_with_retry_after(gateway: GatewayProcess) -> None:
    client = sdk(gateway, gateway.new_key(rpm=2))
    for _ in range(2):
        client.chat.completions.create(model="fast", messages=HI)  # type: ignore[arg-type]
    with pytest.raises(openai.RateLimitError) as caught:
        client.chat.completions.create(model="fast", messages=HI)  # type: ignore[arg-type]
    assert caught.value.code == "rpm_limit_exceeded"
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 60


def test_a_spent_budget_is_a_429_that_says_so(gateway: GatewayProcess) -> None:
    key = gateway.new_key(budget_usd="0.00001")
    with pytest.raises(openai.RateLimitError) as caught:
        sdk(gateway, key).chat.completions.create(
            model="openai/gpt-4o-mini",
            messages=HI,
            max_tokens=100,  # type: ignore[arg-type]
        )
    assert caught.value.code == "budget_exceeded"


def test_changes_and_revocation_apply_at_once(gateway: GatewayProcess) -> None:
    key = gateway.new_key()
    client = sdk(gateway, key)
    client.chat.completions.create(model="fast", messages=HI)  # type: ignore[arg-type]
    key_id = key_id_of(gateway, key)
    status, changed = gateway.admin("PATCH", f"/admin/keys/{key_id}", {"models": ["gemini/*"]})
    assert (status, changed["models"]) == (200, ["gemini/*"])
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="fast", messages=HI)  # type: ignore[arg-type]


def test_concurrent_calls_never_pass_the_budget(
    gateway: GatewayProcess, upstream: FakeOpenAIServer
) -> None:
    budget = Decimal("0.0005")
    key = gateway.new_key(budget_usd=str(budget))

    async def burst() -> list[str]:
        client = openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0)

        async def one() -> str:
            try:
                await client.chat.completions.create(
                    model="openai/gpt-4o-mini",
                    messages=HI,
                    max_tokens=200,  # type: ignore[arg-type]
                )
            except openai.RateLimitError as exc:
                return str(exc.code)
            return "ok"

        try:
            return list(await asyncio.gather(*(one() for _ in range(40))))
        finally:
            await client.close()

    outcomes = asyncio.run(burst())
    assert outcomes.count("ok") > 0
    assert set(outcomes) <= {"ok", "budget_exceeded"}
    _, shown = gateway.admin("GET", f"/admin/keys/{key_id_of(gateway, key)}")
    assert Decimal(shown["spend_usd"]) <= budget
    assert shown["calls"] == outcomes.count("ok")


def test_usage_is_accounted_per_key_and_model(gateway: GatewayProcess) -> None:
    key = gateway.new_key()
    client = sdk(gateway, key)
    for model in ("fast", "claude", "fast"):
        client.chat.completions.create(model=model, messages=HI)  # type: ignore[arg-type]
    key_id = key_id_of(gateway, key)
    _, usage = gateway.admin("GET", "/admin/usage")
    mine = {row["model"]: row for row in usage["data"] if row["key_id"] == key_id}
    assert mine["fast"]["calls"] == 2
    assert mine["claude"]["calls"] == 1
    assert mine["fast"]["input_tokens"] > 0
    assert Decimal(mine["fast"]["cost_usd"]) > 0


def test_metrics_name_the_key_id_never_the_key(gateway: GatewayProcess) -> None:
    key = gateway.new_key()
    sdk(gateway, key).chat.completions.create(model="fast", messages=HI)  # type: ignore[arg-type]
    with urllib.request.urlopen(gateway.url + "/metrics", timeout=5) as r:
        text = r.read().decode()
    assert f'key_id="{key_id_of(gateway, key)}"' in text
    assert "callm_request_seconds_bucket" in text
    assert "callm_tokens_total" in text
    assert key not in text


def test_health_ready_and_the_openapi_document(gateway: GatewayProcess) -> None:
    for path in ("/health", "/ready"):
        with urllib.request.urlopen(gateway.url + path, timeout=5) as r:
            assert r.status == 200
    with urllib.request.urlopen(gateway.url + "/openapi.json", timeout=5) as r:
        document = json.loads(r.read())
    assert document["openapi"].startswith("3.")
    assert "/v1/chat/completions" in document["paths"]
