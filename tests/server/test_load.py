"""A bounded load test on loopback: many requests at 200 concurrent connections through one
gateway process, every one answered 200 in full, and the gateway's memory flat.

The upstream is callm's fake in a process of its own; the load comes from a lean
keep-alive HTTP/1.1 client (asyncio streams, one pre-built request per connection), so the
client costs little of the shared cores. A quarter of the requests stream. The gateway's
RSS is sampled all along; after the warm-up it may not grow by more than a bound.

``CALLM_LOAD_REQUESTS`` sets the count (``make test`` runs 20,000 unless the variable says
otherwise).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from gateway_process import GatewayProcess

REQUESTS = int(os.environ.get("CALLM_LOAD_REQUESTS", "20000"))
CONNECTIONS = 200
RSS_GROWTH_MB = 24  # after the warm-up: room for allocator noise, not for a leak


class SubprocessFake:
    """callm's fake upstream in its own process (the test process is the load client)."""

    def __init__(self, log: Path) -> None:
        self._log = log.open("w+b")
        self.proc = subprocess.Popen(
            [sys.executable, "-u", "-m", "callm.testing", "--port", "0"],
            stdout=self._log,
            stderr=self._log,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            self._log.seek(0)
            found = re.search(rb"listening on (http://\S+)", self._log.read())
            if found:
                self.url = found.group(1).decode()
                self.base_url = self.url + "/v1"
                return
            time.sleep(0.1)
        self.proc.kill()
        raise RuntimeError("the fake upstream did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)
        self._log.close()


@pytest.fixture(scope="module")
def loaded_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    home = tmp_path_factory.mktemp("load-home")
    fake = SubprocessFake(home / "upstream.log")
    try:
        config = "[gateway]\naccess_log = false\n"
        with GatewayProcess(fake, home, config=config) as gateway:  # type: ignore[arg-type]
            yield gateway
    finally:
        fake.stop()


def rss_mb(pid: int) -> float:
    """The resident memory of ``pid`` and its children (granian serves from a worker
    process under ``callm serve``)."""
    total = 0
    for member in [pid, *children(pid)]:
        for line in Path(f"/proc/{member}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                total += int(line.split()[1])
    return total / 1024


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            found += [int(child), *children(int(child))]
    return found


def request_bytes(port: int, key: str, stream: bool) -> bytes:
    body = {
        "model": "openai/gpt-4o-mini",
        "messages": [{"role": "user", "content": "Say hello in five words."}],
        "max_tokens": 16,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    data = json.dumps(body).encode()
    head = (
        f"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


async def read_reply(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """One HTTP/1.1 response: its status and whole body (content-length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    if "content-length" in headers:
        return status, await reader.readexactly(int(headers["content-length"]))
    body = bytearray()
    while True:  # chunked
        size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
        chunk = await reader.readexactly(size + 2)
        if size == 0:
            return status, bytes(body)
        body += chunk[:-2]


async def one_connection(
    port: int, key: str, requests: range, *, errors: list[str], done: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for n in requests:
            stream = n % 4 == 0
            writer.write(request_bytes(port, key, stream))
            status, body = await read_reply(reader)
            complete = body.rstrip().endswith(b"[DONE]") if stream else body.endswith(b"}")
            if status != 200 or not complete:
                errors.append(f"{status}: {body[:200]!r}")
            done[0] += 1
    finally:
        writer.close()


async def load(gateway: GatewayProcess, key: str, samples: list[tuple[int, float]]) -> list[str]:
    assert gateway.proc is not None
    errors: list[str] = []
    done = [0]
    per_connection = REQUESTS // CONNECTIONS

    async def sample() -> None:
        while True:
            samples.append((done[0], rss_mb(gateway.proc.pid)))  # type: ignore[union-attr]
            await asyncio.sleep(0.25)

    sampler = asyncio.create_task(sample())
    try:
        await asyncio.gather(
            *(
                one_connection(
                    gateway.port,
                    key,
                    range(i * per_connection, (i + 1) * per_connection),
                    errors=errors,
                    done=done,
                )
                for i in range(CONNECTIONS)
            )
        )
    finally:
        sampler.cancel()
    samples.append((done[0], rss_mb(gateway.proc.pid)))
    return errors


def test_many_requests_at_200_connections_all_succeed_in_flat_memory(
    loaded_gateway: GatewayProcess,
) -> None:
    gateway = loaded_gateway
    # A key with every limit set high, so each request goes through reservation and
    # settlement, not around them.
    key = gateway.new_key(budget_usd="1000000", rpm=10**7, tpm=10**9, max_parallel=10**4)
    samples: list[tuple[int, float]] = []
    started = time.perf_counter()
    errors = asyncio.run(load(gateway, key, samples))
    elapsed = time.perf_counter() - started
    total = samples[-1][0]
    warm = [rss for count, rss in samples if count >= total // 5]
    growth = max(warm) - warm[0]
    print(
        f"\n{total} requests at {CONNECTIONS} connections in {elapsed:.1f} s "
        f"({total / elapsed:.0f}/s); gateway RSS {samples[0][1]:.0f} -> {warm[0]:.0f} MB "
        f"after warm-up, peak {max(warm):.0f} MB, end {samples[-1][1]:.0f} MB"
    )
    assert errors == [], errors[:5]
    assert total == REQUESTS - REQUESTS % CONNECTIONS
    assert growth < RSS_GROWTH_MB, samples
    _, usage = gateway.admin("GET", "/admin/usage")
    calls = sum(row["calls"] for row in usage["data"])
    assert calls >= total  # every call accounted (usage writes are batched, not lost)
