"""Two ``callm serve`` processes sharing one PostgreSQL and one Redis, driven over HTTP:
limits hold exactly across both, a change on one is seen by the other within a second, a
dead instance's reservations come back, and a Redis outage is handled as configured."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from fleet_servers import RedisServer, start_or_report
from gateway_process import GatewayProcess

from callm.testing import FakeOpenAIServer, Fault, Reply

SECRET = "fleet-secret-" + "s" * 20  # every instance hashes keys with the same secret
HI = [{"role": "user", "content": "Hi"}]


def fleet_env(database: str, redis: str) -> dict[str, str]:
    return {"CALLM_DATABASE_URL": database, "CALLM_REDIS_URL": redis, "CALLM_SERVER_SECRET": SECRET}


def start_pair(
    upstream: FakeOpenAIServer, root: Path, env: dict[str, str], config: str = ""
) -> tuple[GatewayProcess, GatewayProcess]:
    first = GatewayProcess(upstream, root / "a", env=env, config=config).start()
    try:
        second = GatewayProcess(upstream, root / "b", env=env, config=config).start()
    except BaseException:
        first.stop()
        raise
    return first, second


@pytest.fixture
def fleet(
    upstream: FakeOpenAIServer, postgres_url: str, redis_url: str, tmp_path: Path
) -> Iterator[tuple[GatewayProcess, GatewayProcess]]:
    first, second = start_pair(upstream, tmp_path, fleet_env(postgres_url, redis_url))
    yield first, second
    first.stop()
    second.stop()


async def chat(session: aiohttp.ClientSession, url: str, key: str) -> tuple[int, Any]:
    body = {"model": "openai/gpt-4o-mini", "messages": HI, "max_tokens": 16}
    headers = {"authorization": f"Bearer {key}"}
    async with session.post(url + "/v1/chat/completions", json=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


async def spread(
    gateways: tuple[GatewayProcess, ...], key: str, count: int
) -> list[tuple[int, Any]]:
    """``count`` requests at once, alternating between the gateways."""
    limit = aiohttp.TCPConnector(limit=count)
    async with aiohttp.ClientSession(connector=limit) as session:
        return await asyncio.gather(
            *(chat(session, gateways[i % len(gateways)].url, key) for i in range(count))
        )


def one(gateway: GatewayProcess, key: str) -> tuple[int, Any]:
    return asyncio.run(spread((gateway,), key, 1))[0]


def get(url: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(url, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def code_of(body: Any) -> str:
    return str(body["error"]["code"])


def test_rpm_is_exact_across_two_gateways(fleet: tuple[GatewayProcess, GatewayProcess]) -> None:
    key = fleet[0].new_key(rpm=40)
    results = asyncio.run(spread(fleet, key, 200))
    statuses = [status for status, _ in results]
    assert statuses.count(200) == 40
    assert statuses.count(429) == 160
    assert {code_of(body) for status, body in results if status == 429} == {"rpm_limit_exceeded"}
    # Both instances admitted some: the limit was shared, not split or doubled.
    status, page = get(fleet[1].url + "/ready")
    assert (status, page["stores"]["limits"]) == (200, "shared")


def test_a_budget_is_never_overshot_across_two_gateways(
    fleet: tuple[GatewayProcess, GatewayProcess],
) -> None:
    first, second = fleet
    key = first.new_key(budget_usd="0.0001")
    results = asyncio.run(spread(fleet, key, 60))
    admitted = sum(1 for status, _ in results if status == 200)
    refused = {code_of(body) for status, body in results if status != 200}
    assert refused == {"budget_exceeded"}
    assert admitted >= 1
    key_id = next(k["id"] for k in first.admin("GET", "/admin/keys")[1]["data"])
    _, shown = second.admin("GET", f"/admin/keys/{key_id}")
    assert 0 < float(shown["spend_usd"]) <= 0.0001


def test_a_revocation_on_one_gateway_holds_on_the_other_within_a_second(
    fleet: tuple[GatewayProcess, GatewayProcess],
) -> None:
    first, second = fleet
    key = first.new_key()
    assert one(second, key)[0] == 200  # cached on the second
    key_id = next(k["id"] for k in first.admin("GET", "/admin/keys")[1]["data"])
    changed = first.new_key()
    assert one(second, changed)[0] == 200
    changed_id = next(
        k["id"] for k in first.admin("GET", "/admin/keys")[1]["data"] if k["id"] != key_id
    )
    assert first.admin("DELETE", f"/admin/keys/{key_id}")[0] == 200
    assert first.admin("PATCH", f"/admin/keys/{changed_id}", {"models": ["anthropic/*"]})[0] == 200
    started = time.monotonic()
    while True:
        revoked, limited = one(second, key), one(second, changed)
        body = limited[1]
        if revoked[0] == 401 and limited[0] == 403:
            break
        assert time.monotonic() - started < 1.0, "the other gateway still serves the old keys"
        time.sleep(0.02)
    assert "model" in body["error"]["message"]


def test_a_dead_gateways_reservation_comes_back(
    upstream: FakeOpenAIServer, postgres_url: str, redis_url: str, tmp_path: Path
) -> None:
    config = "[gateway]\nlease_seconds = 1\n"
    first, second = start_pair(upstream, tmp_path, fleet_env(postgres_url, redis_url), config)
    try:
        key = first.new_key(max_parallel=1)
        upstream.queue(Fault.slow_first_byte(30, reply=Reply("late")))

        async def hang_then_kill() -> None:
            async with aiohttp.ClientSession() as session:
                call = asyncio.ensure_future(chat(session, first.url, key))
                await asyncio.sleep(1.5)  # in flight, its lease renewed meanwhile
                status, body = await chat(session, second.url, key)
                assert (status, code_of(body)) == (429, "parallel_limit_exceeded")
                assert first.proc is not None
                kill_tree(first.proc.pid)  # no settle, no release, no goodbye
                with pytest.raises(aiohttp.ClientError):
                    await call

        asyncio.run(hang_then_kill())
        upstream.clear()
        deadline = time.monotonic() + 5
        while one(second, key)[0] != 200:
            assert time.monotonic() < deadline, "the dead gateway's reservation was never freed"
            time.sleep(0.2)
    finally:
        first.stop()
        second.stop()


def kill_tree(pid: int) -> None:
    """SIGKILL a process and its children (granian's workers), children first."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    for child in children:
        kill_tree(int(child))
    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = start_or_report(RedisServer())
    yield server
    server.stop()


@pytest.mark.parametrize("mode", ["refuse", "local"])
def test_redis_unreachable_is_reported_and_handled_as_configured(
    mode: str,
    upstream: FakeOpenAIServer,
    postgres_url: str,
    own_redis: RedisServer,
    tmp_path: Path,
) -> None:
    config = f'[gateway]\nredis_unavailable = "{mode}"\n'
    env = fleet_env(postgres_url, own_redis.url)
    first, second = start_pair(upstream, tmp_path, env, config)
    try:
        key = first.new_key(rpm=100)
        assert one(first, key)[0] == 200
        own_redis.kill()
        status, body = one(first, key)
        page_status, page = get(first.url + "/ready")
        assert page["stores"]["redis"] == "unreachable"
        if mode == "refuse":
            assert (status, code_of(body)) == (503, "limits_unavailable")
            assert (page_status, page["stores"]["limits"]) == (503, "refusing")
        else:
            assert status == 200
            assert (page_status, page["stores"]["limits"]) == (200, "per_instance")
        metrics = urllib.request.urlopen(first.url + "/metrics", timeout=10).read().decode()
        assert "callm_limits_shared 0.0" in metrics
        own_redis.start()  # back (and empty): shared limits again within a couple of seconds
        deadline = time.monotonic() + 5
        while get(second.url + "/ready")[1]["stores"]["limits"] != "shared":
            assert time.monotonic() < deadline, "the gateway did not return to shared limits"
            time.sleep(0.1)
        assert one(second, key)[0] == 200
    finally:
        first.stop()
        second.stop()


def test_the_fleet_is_configured_by_environment_and_config() -> None:
    from callm import ConfigurationError
    from callm.server._settings import settings_from

    database = "postgresql://gw:" + "pw" * 4 + "@127.0.0.1:5432/callm"
    settings = settings_from(
        {"gateway": {"redis_unavailable": "local", "lease_seconds": 5}},
        {"CALLM_DATABASE_URL": database, "CALLM_REDIS_URL": "redis://127.0.0.1:6379/0"},
    )
    assert (settings.database_url, settings.redis_url) == (database, "redis://127.0.0.1:6379/0")
    assert (settings.redis_unavailable, settings.lease_seconds) == ("local", 5)
    assert "pw" not in repr(settings)
    with pytest.raises(ConfigurationError, match="CALLM_DATABASE_URL=postgresql"):
        settings_from({}, {"CALLM_REDIS_URL": "redis://127.0.0.1:6379/0"})
    with pytest.raises(ConfigurationError, match="refuse"):
        settings_from({"gateway": {"redis_unavailable": "maybe"}}, {"CALLM_DATABASE_URL": database})
    with pytest.raises(ConfigurationError, match="redis://"):
        settings_from({}, {"CALLM_DATABASE_URL": database, "CALLM_REDIS_URL": "127.0.0.1"})
