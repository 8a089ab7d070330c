"""Fixtures: one fake upstream and one gateway process per module, fresh keys per test;
throwaway PostgreSQL and Redis servers for the fleet (``fleet_servers.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fleet_servers import (
    postgres_server,
    postgres_url,
    redis_cluster,
    redis_server,
    redis_url,
)
from gateway_process import GatewayProcess

from callm.testing import FakeOpenAIServer

pytest.importorskip("granian")
__all__ = [  # fixtures
    "postgres_server",
    "postgres_url",
    "redis_cluster",
    "redis_server",
    "redis_url",
]

CONFIG = """
[gateway]
max_request_bytes = 200000

[aliases]
fast = "openai/gpt-4o-mini"
claude = "anthropic/claude-sonnet-4-5"
fast-embed = "openai/text-embedding-3-small"

[fallbacks]
"openai/gpt-4o" = ["anthropic/claude-sonnet-4-5"]
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as server:
        yield server


@pytest.fixture(scope="module")
def gateway(
    upstream: FakeOpenAIServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    home: Path = tmp_path_factory.mktemp("gateway-home")
    with GatewayProcess(upstream, home, config=CONFIG) as process:
        yield process


@pytest.fixture(autouse=True)
def fresh_upstream(upstream: FakeOpenAIServer) -> None:
    upstream.clear()
