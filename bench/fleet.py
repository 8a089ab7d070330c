"""The gateway as a fleet: two ``callm serve`` on one PostgreSQL and one Redis, against one
``callm serve`` on SQLite, every request under a key with every limit set.

One upstream for all: callm's fake server on loopback. The key has an rpm, a tpm, a
parallelism limit and a budget, all far above what the run uses, so every request is
checked, reserved and settled without being refused. Rows:

- sqlite   one instance, SQLite and in-process counters (the single-process gateway)
- fleet-1  one instance on PostgreSQL + Redis (what a decision costs over the network)
- fleet-2  two instances on the same PostgreSQL + Redis, the load split between them

Each row: throughput and latency percentiles from ``wrk --latency`` at 32 connections in
all (16 per instance for fleet-2; a Python client stands in without wrk). Rounds are
interleaved and the best round of each row is kept. The run then checks exactness: a key
with rpm=40 gets 200 concurrent requests spread over both fleet instances, and exactly 40
must succeed. PostgreSQL and Redis are throwaway servers started from the installed
binaries (apt-get install postgresql redis-server).

    python bench/fleet.py [--quick] [--rounds N] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway import MASTER, UPSTREAM_KEY, free_port, start_upstream, wait_ready

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "server"))
from fleet_servers import PostgresServer, RedisServer  # noqa: E402

RESULTS = HERE / "results" / "fleet.json"
BODY = {
    "model": "openai/gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hello in five words."}],
    "max_tokens": 16,
}
LIMITS = {"rpm": 10**7, "tpm": 10**10, "max_parallel": 10_000, "budget_usd": "1000000"}
SECRET = "bench-fleet-secret-" + "s" * 16


@dataclass
class Row:
    name: str
    urls: list[str]
    key: str = ""
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    p50_ms: list[float] = field(default_factory=list)
    p99_ms: list[float] = field(default_factory=list)
    errors: int = 0

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()


def start_gateway(tmp: Path, name: str, upstream: str, env: dict[str, str]) -> tuple[Any, str]:
    port = free_port()
    home = tmp / name
    full = {
        **os.environ,
        "CALLM_HOME": str(home),
        "CALLM_MASTER_KEY": MASTER,
        "CALLM_SERVER_SECRET": SECRET,
        "OPENAI_BASE_URL": upstream + "/v1",
        "OPENAI_API_KEY": UPSTREAM_KEY,
        **env,
    }
    home.mkdir(parents=True)
    log = (home / "gateway.log").open("wb")
    command = [sys.executable, "-m", "callm", "serve", "--port", str(port)]
    proc = subprocess.Popen(command, env=full, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/ready", proc)
    return proc, url


def new_key(url: str, **limits: object) -> str:
    import urllib.request

    request = urllib.request.Request(
        url + "/admin/keys",
        json.dumps({"name": "bench", **limits}).encode(),
        {"authorization": f"Bearer {MASTER}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        return str(json.loads(r.read())["key"])


def start_row(tmp: Path, name: str, upstream: str, env: dict[str, str], count: int) -> Row:
    row = Row(name, [])
    for i in range(count):
        proc, url = start_gateway(tmp, f"{name}-{i}", upstream, env)
        row.procs.append(proc)
        row.urls.append(url)
    row.key = new_key(row.urls[0], **LIMITS)
    return row


def wrk(url: str, key: str, seconds: float, connections: int) -> subprocess.Popen[str]:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    body = json.dumps(BODY).replace("'", "\\'")
    script.write_text(
        f"wrk.method = 'POST'\nwrk.body = '{body}'\n"
        "wrk.headers['Content-Type'] = 'application/json'\n"
        f"wrk.headers['Authorization'] = 'Bearer {key}'\n"
    )
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--latency", "-s", str(script)]
    return subprocess.Popen(
        [*command, url + "/v1/chat/completions"], stdout=subprocess.PIPE, text=True
    )


def _ms(text: str, label: str) -> float:
    found = re.search(rf"^\s*{label}%\s+([\d.]+)(us|ms|s)\s*$", text, re.M)
    if not found:
        return 0.0
    value, unit = float(found.group(1)), found.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def measure_wrk(row: Row, seconds: float, connections: int) -> None:
    each = max(1, connections // len(row.urls))
    runs = [wrk(url, row.key, seconds, each) for url in row.urls]
    outputs = [run.communicate()[0] for run in runs]
    rps = 0.0
    for out in outputs:
        found = re.search(r"Requests/sec:\s+([\d.]+)", out)
        rps += float(found.group(1)) if found else 0.0
        bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
        row.errors += int(bad.group(1)) if bad else 0
    row.rps.append(rps)
    row.p50_ms.append(max(_ms(out, "50") for out in outputs))
    row.p99_ms.append(max(_ms(out, "99") for out in outputs))


async def measure_python(row: Row, seconds: float, connections: int) -> None:
    """Throughput and percentiles from a Python client when wrk is not installed."""
    import time

    import aiohttp

    headers = {"authorization": f"Bearer {row.key}"}
    times: list[float] = []
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession, url: str) -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            async with session.post(url + "/v1/chat/completions", json=BODY, headers=headers) as r:
                await r.read()
                row.errors += r.status != 200
            times.append(time.perf_counter() - started)

    started = time.perf_counter()
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as s:
        await asyncio.gather(*(worker(s, row.urls[i % len(row.urls)]) for i in range(connections)))
    times.sort()
    row.rps.append(len(times) / (time.perf_counter() - started))
    row.p50_ms.append(times[len(times) // 2] * 1000)
    row.p99_ms.append(times[int(len(times) * 0.99)] * 1000)


async def exact_rpm(urls: list[str], key: str, count: int) -> int:
    """How many of ``count`` concurrent requests over ``urls`` succeed."""
    import aiohttp

    headers = {"authorization": f"Bearer {key}"}

    async def one(session: aiohttp.ClientSession, url: str) -> int:
        async with session.post(url + "/v1/chat/completions", json=BODY, headers=headers) as r:
            await r.read()
            return r.status

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=count)) as session:
        statuses = await asyncio.gather(*(one(session, urls[i % len(urls)]) for i in range(count)))
    return statuses.count(200)


def report(rows: list[Row], admitted: int) -> dict[str, Any]:
    print(f"\n{'':10}{'req/s at 32':>14}{'p50 (ms)':>10}{'p99 (ms)':>10}{'errors':>8}")
    best: dict[str, tuple[float, float, float]] = {}
    for r in rows:
        i = max(range(len(r.rps)), key=r.rps.__getitem__)
        best[r.name] = (r.rps[i], r.p50_ms[i], r.p99_ms[i])
        print(f"{r.name:10}{r.rps[i]:>14.0f}{r.p50_ms[i]:>10.2f}{r.p99_ms[i]:>10.2f}{r.errors:>8}")
    ratios = {}
    if "sqlite" in best:
        for name in ("fleet-1", "fleet-2"):
            if name in best:
                ratios[f"{name}_rps_vs_sqlite"] = round(best[name][0] / best["sqlite"][0], 2)
                print(f"{name} req/s / sqlite req/s = {ratios[f'{name}_rps_vs_sqlite']}x")
    print(f"exactness: rpm=40, 200 concurrent requests over 2 instances -> {admitted} succeeded")
    return {
        "rows": {
            r.name: {"rps": r.rps, "p50_ms": r.p50_ms, "p99_ms": r.p99_ms, "errors": r.errors}
            for r in rows
        },
        "ratios": ratios,
        "rpm40_of_200_admitted": admitted,
    }


def run(args: argparse.Namespace, tmp: Path, upstream: str) -> dict[str, Any]:
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = 2.0 if args.quick else 5.0
    postgres, redis = PostgresServer().start(), RedisServer().start()
    rows: list[Row] = []
    try:
        fleet_env = {"CALLM_DATABASE_URL": postgres.url, "CALLM_REDIS_URL": redis.url}
        rows.append(start_row(tmp, "sqlite", upstream, {}, 1))
        rows.append(start_row(tmp, "fleet-1", upstream, fleet_env, 1))
        rows.append(start_row(tmp, "fleet-2", upstream, fleet_env, 2))
        for row in rows:  # first calls load code, prices, prepared statements, scripts
            asyncio.run(exact_rpm(row.urls, row.key, 64))
        for number in range(1, rounds + 1):
            for row in rows:
                if shutil.which("wrk"):
                    measure_wrk(row, seconds, 32)
                else:
                    asyncio.run(measure_python(row, seconds, 32))
            print(
                f"round {number}/{rounds}: "
                + ", ".join(
                    f"{r.name} {r.rps[-1]:.0f} req/s p99 {r.p99_ms[-1]:.1f} ms" for r in rows
                ),
                flush=True,
            )
        fleet = rows[-1]
        admitted = asyncio.run(exact_rpm(fleet.urls, new_key(fleet.urls[0], rpm=40), 200))
        return report(rows, admitted)
    finally:
        for row in rows:
            row.stop()
        postgres.stop()
        redis.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (~1 min)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if not shutil.which("wrk"):
        print("wrk: not installed (apt-get install wrk) — a Python client measures throughput")
    with tempfile.TemporaryDirectory() as tmp_name:
        upstream_proc, upstream = start_upstream(Path(tmp_name))
        try:
            result = run(args, Path(tmp_name), upstream)
        finally:
            upstream_proc.terminate()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    errors = sum(row["errors"] for row in result["rows"].values())
    return 0 if errors == 0 and result["rpm40_of_200_admitted"] == 40 else 1


if __name__ == "__main__":
    sys.exit(main())
