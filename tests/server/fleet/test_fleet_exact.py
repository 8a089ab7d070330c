"""Every limit of one key holds exactly across two ``callm serve`` processes sharing one
PostgreSQL and one Redis: tokens a minute, requests in flight and a budget, each under a
burst of concurrent requests spread over both (the rpm case is in test_fleet_gateway.py).

The upstream answers slowly, so every admitted call still holds its reservation while the
whole burst is decided: the number admitted is then exactly what the limit allows."""

from __future__ import annotations

import asyncio
import re
from decimal import Decimal
from typing import Any

import aiohttp
from gateway_process import GatewayProcess
from test_fleet_gateway import fleet  # noqa: F401 — the fixture: two gateways, one fleet

from callm.testing import FakeOpenAIServer, Fault, Reply

Fleet = tuple[GatewayProcess, GatewayProcess]
BODY = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "Hi"}],
    "max_tokens": 1000,
}
HOLD_S = 6.0  # how long each admitted call takes upstream: longer than any burst takes


async def _post(session: aiohttp.ClientSession, url: str, key: str) -> tuple[int, Any]:
    headers = {"authorization": f"Bearer {key}"}
    async with session.post(url + "/v1/chat/completions", json=BODY, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def _burst(gateways: Fleet, key: str, count: int) -> list[tuple[int, Any]]:
    """``count`` requests at once, alternating between the two gateways."""
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=count)) as session:
        calls = (_post(session, gateways[i % 2].url, key) for i in range(count))
        return await asyncio.gather(*calls)


def burst(gateways: Fleet, key: str, count: int) -> list[tuple[int, Any]]:
    return asyncio.run(_burst(gateways, key, count))


def admitted_and_refusals(results: list[tuple[int, Any]]) -> tuple[int, set[str], list[str]]:
    """How many went through, the refusal codes, and the refusal messages."""
    refused = [body["error"] for status, body in results if status != 200]
    ok = sum(1 for status, _ in results if status == 200)
    return ok, {e["code"] for e in refused}, [e["message"] for e in refused]


def new_key(gateway: GatewayProcess, **limits: Any) -> tuple[str, str]:
    """A key with these limits: (the key, its id)."""
    status, made = gateway.admin("POST", "/admin/keys", {"name": "exact", **limits})
    assert status == 201, made
    return str(made["key"]), str(made["id"])


def shown(gateway: GatewayProcess, key_id: str) -> Any:
    status, body = gateway.admin("GET", f"/admin/keys/{key_id}")
    assert status == 200, body
    return body


def slow_upstream(upstream: FakeOpenAIServer, count: int) -> None:
    upstream.queue(*[Fault.slow_first_byte(HOLD_S, reply=Reply("ok")) for _ in range(count)])


def test_tokens_a_minute_hold_exactly_across_two_gateways(
    fleet: Fleet,  # noqa: F811
    upstream: FakeOpenAIServer,
) -> None:
    first = fleet[0]
    # What one request reserves (prompt + max_tokens): the refusal of a tiny key says it.
    [(status, body)] = burst(fleet, new_key(first, tpm=1)[0], 1)
    assert (status, body["error"]["code"]) == (429, "tpm_limit_exceeded")
    per_call = int(re.search(r"may use (\d+) tokens", body["error"]["message"])[1])  # type: ignore[index]
    slow_upstream(upstream, 7)
    key, _ = new_key(first, tpm=per_call * 7 + per_call // 2)  # room for 7 and a half

    admitted, codes, _ = admitted_and_refusals(burst(fleet, key, 80))

    assert admitted == 7
    assert codes == {"tpm_limit_exceeded"}


def test_requests_in_flight_hold_exactly_across_two_gateways(
    fleet: Fleet,  # noqa: F811
    upstream: FakeOpenAIServer,
) -> None:
    first, second = fleet
    slow_upstream(upstream, 5)
    key, key_id = new_key(first, max_parallel=5)

    admitted, codes, _ = admitted_and_refusals(burst(fleet, key, 80))

    assert admitted == 5
    assert codes == {"parallel_limit_exceeded"}
    assert shown(second, key_id)["in_flight"] == 0  # every slot given back at the end


def test_a_budget_admits_exactly_what_it_can_pay_for_across_two_gateways(
    fleet: Fleet,  # noqa: F811
    upstream: FakeOpenAIServer,
) -> None:
    first, second = fleet
    # What one request may cost at most (prompt and max_tokens at the model's price).
    [(_, body)] = burst(fleet, new_key(first, budget_usd="0.000000001")[0], 1)
    rough = Decimal(re.search(r"may cost up to \$([\d.]+)", body["error"]["message"])[1])  # type: ignore[index]
    budget = (rough * Decimal("7.5")).quantize(Decimal("0.000000001"))
    slow_upstream(upstream, 7)
    key, key_id = new_key(first, budget_usd=str(budget))

    admitted, codes, messages = admitted_and_refusals(burst(fleet, key, 80))

    assert admitted == 7
    assert codes == {"budget_exceeded"}
    # A refusal says what the calls in flight held; with all 7 in flight, 7 times the
    # exact cost each reserved: 7 fit in the budget, an 8th would not have.
    held = max(Decimal(re.search(r"\$([\d.]+) held", m)[1]) for m in messages)  # type: ignore[index]
    each = held / 7
    assert abs(each - rough) < Decimal("0.000001")
    assert 7 * each <= budget < 8 * each
    assert Decimal(shown(second, key_id)["spend_usd"]) <= budget
