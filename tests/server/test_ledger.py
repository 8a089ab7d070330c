"""The ledger interface, driven directly: exact admission, limits, persistence.

Written against ``Ledger`` only, so a fleet implementation can run the same tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from decimal import Decimal
from pathlib import Path

import pytest

from callm import Usage
from callm.server._ledger import KeyLimits, Ledger, Refused, VirtualKey
from callm.server._local_ledger import LocalLedger

MODEL = "openai/gpt-4o-mini"


def open_ledger(kind: str, request: pytest.FixtureRequest) -> Ledger:
    """A ledger of ``kind``: in process over SQLite, or a fleet's over PostgreSQL and Redis."""
    if kind == "local":
        tmp_path: Path = request.getfixturevalue("tmp_path")
        return LocalLedger(tmp_path / "gateway.db")
    from callm.server._fleet import FleetConfig, FleetLedger

    database: str = request.getfixturevalue("postgres_url")
    redis: str = request.getfixturevalue("redis_url")
    return FleetLedger(FleetConfig(database, redis))


@pytest.fixture(params=["local", "fleet"])
async def ledger(request: pytest.FixtureRequest) -> AsyncIterator[Ledger]:
    found = open_ledger(request.param, request)
    await found.start()
    yield found
    await found.close()


async def make(ledger: Ledger, **limits: object) -> VirtualKey:
    key = VirtualKey(
        "key_" + str(time.monotonic_ns()), "t", "sk-callm-ab", time.time(), KeyLimits(**limits)
    )  # type: ignore[arg-type]
    await ledger.create_key("hash-" + key.id, key)
    return key


async def test_keys_are_found_by_hash_until_revoked(ledger: Ledger) -> None:
    key = await make(ledger)
    assert await ledger.find_key("hash-" + key.id) == key
    assert await ledger.find_key("other") is None
    assert await ledger.revoke_key(key.id)
    assert await ledger.find_key("hash-" + key.id) is None
    assert not await ledger.revoke_key(key.id)


async def test_an_expired_key_is_not_found(ledger: Ledger) -> None:
    key = await make(ledger, expires_at=time.time() - 1)
    assert await ledger.find_key("hash-" + key.id) is None


async def test_parallel_requests_are_held_and_released(ledger: Ledger) -> None:
    key = await make(ledger, max_parallel=2)
    first = await ledger.reserve(key, MODEL, tokens=0, cost=None)
    await ledger.reserve(key, MODEL, tokens=0, cost=None)
    with pytest.raises(Refused) as caught:
        await ledger.reserve(key, MODEL, tokens=0, cost=None)
    assert (caught.value.status, caught.value.code) == (429, "parallel_limit_exceeded")
    assert caught.value.retry_after is not None
    await ledger.release(first)
    await ledger.release(first)  # twice is harmless
    await ledger.reserve(key, MODEL, tokens=0, cost=None)


async def test_rpm_counts_the_last_minute(ledger: Ledger) -> None:
    key = await make(ledger, rpm=3)
    for _ in range(3):
        await ledger.settle(await ledger.reserve(key, MODEL, tokens=0, cost=None), Usage(), None)
    with pytest.raises(Refused) as caught:
        await ledger.reserve(key, MODEL, tokens=0, cost=None)
    assert caught.value.code == "rpm_limit_exceeded"
    assert caught.value.retry_after is not None
    assert 55 < caught.value.retry_after <= 60


async def test_tpm_holds_the_reservation_then_the_real_usage(ledger: Ledger) -> None:
    key = await make(ledger, tpm=1000)
    ticket = await ledger.reserve(key, MODEL, tokens=800, cost=None)
    with pytest.raises(Refused) as caught:
        await ledger.reserve(key, MODEL, tokens=300, cost=None)
    assert caught.value.code == "tpm_limit_exceeded"
    # The call used far less than it reserved: the difference is free again at once.
    await ledger.settle(ticket, Usage(100, 50), None)
    await ledger.reserve(key, MODEL, tokens=800, cost=None)


async def test_a_request_larger_than_tpm_is_refused_for_good(ledger: Ledger) -> None:
    key = await make(ledger, tpm=100)
    with pytest.raises(Refused) as caught:
        await ledger.reserve(key, MODEL, tokens=101, cost=None)
    assert caught.value.retry_after is None
    assert "max_tokens" in caught.value.message


async def test_the_budget_counts_spend_and_reservations(ledger: Ledger) -> None:
    key = await make(ledger, budget_usd=Decimal("1.00"))
    held = await ledger.reserve(key, MODEL, tokens=10, cost=Decimal("0.60"))
    with pytest.raises(Refused) as caught:
        await ledger.reserve(key, MODEL, tokens=10, cost=Decimal("0.50"))
    assert (caught.value.code, caught.value.retry_after) == ("budget_exceeded", None)
    await ledger.settle(held, Usage(5, 5), Decimal("0.10"))
    second = await ledger.reserve(key, MODEL, tokens=10, cost=Decimal("0.50"))
    await ledger.settle(second, Usage(5, 5), Decimal("0.50"))
    assert (await ledger.key_usage(key.id)).spent_usd == Decimal("0.60")


async def test_concurrent_reservations_never_overshoot(ledger: Ledger) -> None:
    key = await make(ledger, budget_usd=Decimal("1"))

    async def one() -> bool:
        try:
            ticket = await ledger.reserve(key, MODEL, tokens=1, cost=Decimal("0.3"))
        except Refused:
            return False
        await asyncio.sleep(0.01)
        await ledger.settle(ticket, Usage(1, 1), Decimal("0.3"))
        return True

    admitted = sum(await asyncio.gather(*(one() for _ in range(50))))
    spent = (await ledger.key_usage(key.id)).spent_usd
    assert admitted == 3
    assert spent == Decimal("0.9")


async def test_an_unknown_price_follows_the_key_policy(ledger: Ledger) -> None:
    strict = await make(ledger, budget_usd=Decimal("1"))
    with pytest.raises(Refused) as caught:
        await ledger.reserve(strict, MODEL, tokens=1, cost=None)
    assert (caught.value.status, caught.value.code) == (403, "price_unknown")
    lenient = await make(ledger, budget_usd=Decimal("1"), unknown_price="tokens_only")
    ticket = await ledger.reserve(lenient, MODEL, tokens=1, cost=None)
    await ledger.settle(ticket, Usage(3, 4), None)
    usage = await ledger.key_usage(lenient.id)
    assert (usage.spent_usd, usage.input_tokens, usage.output_tokens) == (0, 3, 4)


async def test_a_budget_period_resets(ledger: Ledger) -> None:
    key = await make(ledger, budget_usd=Decimal("1"), budget_period="1s")
    await ledger.settle(
        await ledger.reserve(key, MODEL, tokens=1, cost=Decimal("1")), Usage(1, 1), Decimal("1")
    )
    with pytest.raises(Refused) as caught:
        await ledger.reserve(key, MODEL, tokens=1, cost=Decimal("0.5"))
    assert caught.value.retry_after is not None
    assert caught.value.retry_after <= 1
    await asyncio.sleep(1.05)
    await ledger.reserve(key, MODEL, tokens=1, cost=Decimal("0.5"))


async def test_limit_changes_apply_to_the_next_request(ledger: Ledger) -> None:
    key = await make(ledger)
    await ledger.reserve(key, MODEL, tokens=0, cost=None)
    changed = await ledger.update_key(key.id, KeyLimits(max_parallel=1), "renamed")
    assert changed is not None
    assert changed.name == "renamed"
    with pytest.raises(Refused):
        await ledger.reserve(changed, MODEL, tokens=0, cost=None)


@pytest.mark.parametrize("kind", ["local", "fleet"])
async def test_spend_keys_and_usage_survive_a_restart(
    kind: str, request: pytest.FixtureRequest
) -> None:
    first = open_ledger(kind, request)
    await first.start()
    key = await make(first, budget_usd=Decimal("5"))
    gone = await make(first)
    await first.revoke_key(gone.id)
    ticket = await first.reserve(key, MODEL, tokens=1, cost=Decimal("1"))
    await first.settle(ticket, Usage(10, 20), Decimal("0.25"))
    failed = await first.reserve(key, MODEL, tokens=1, cost=Decimal("1"))
    await first.release(failed)
    await first.close()

    second = open_ledger(kind, request)  # the same database (and Redis)
    await second.start()
    try:
        assert await second.find_key("hash-" + key.id) == key
        assert await second.find_key("hash-" + gone.id) is None
        assert (await second.key_usage(key.id)).spent_usd == Decimal("0.25")
        rows = await second.usage()
        assert [
            (r.key_id, r.calls, r.errors, r.input_tokens, r.output_tokens, r.cost_usd) for r in rows
        ] == [(key.id, 2, 1, 10, 20, Decimal("0.25"))]
    finally:
        await second.close()
