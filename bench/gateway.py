"""The gateway side by side: a direct call, nginx proxy_pass, ``callm serve``, LiteLLM's proxy.

One upstream for all: callm's fake server (``python -m callm.testing``) on loopback. Each
row sends the same Chat Completions request (gpt-4o-mini, one user message, max_tokens):

- direct   the client calls the fake itself (the floor every proxy adds to)
- nginx    ``proxy_pass`` to the fake with upstream keep-alive, one worker (when installed)
- callm    ``callm serve``, one worker, a virtual key, the model as ``openai/gpt-4o-mini``
- litellm  ``litellm --config … --num_workers 1`` with the same model (when installed;
           looked up as ``litellm`` next to this interpreter, in ``.venv-litellm`` or on PATH).
           It refuses to start without a master key (it would accept any request: it exits
           with status 3), so it gets a strong random one, and callers use it as their key.

Two measures per row: the median latency of one request at a time from a lean Python
client (aiohttp, 2,000 sequential requests after a warm-up), and the throughput at 32
concurrent connections from ``wrk`` (a C load generator, so the client costs the shared
cores little; a Python client stands in without it). Rounds are interleaved (every row once
per round, so a burst of outside load hits them alike); the table shows each row's best
round and the range over rounds, and each ratio is given for the best rounds and as the
range of the same-round ratios. Targets from the project: callm's throughput ≥ 0.5x
nginx's and ≥ 20x LiteLLM's; its p50 ≤ 2x direct.

    python bench/gateway.py [--quick] [--rounds N] [--json PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BODY = {
    "model": "gpt-4o-mini",
    "messages": [{"role": "user", "content": "Say hello in five words."}],
    "max_tokens": 16,
}
MASTER = "bench-master-" + "k" * 16
UPSTREAM_KEY = "sk-bench-" + "u" * 16
HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "gateway.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=1):
                return
        except OSError as exc:
            if getattr(exc, "code", None) is not None:  # an HTTP error: it is up
                return
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up in {timeout:.0f} s")


@dataclass
class Row:
    """One way of reaching the upstream: its URL, model name and key."""

    name: str
    url: str
    model: str
    key: str
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    p50_us: list[float] = field(default_factory=list)
    rps: list[float] = field(default_factory=list)
    errors: int = 0

    def body(self) -> bytes:
        return json.dumps({**BODY, "model": self.model}).encode()

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def start_upstream(tmp: Path) -> tuple[subprocess.Popen[bytes], str]:
    log = (tmp / "upstream.log").open("w+b")
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "callm.testing", "--port", "0"], stdout=log, stderr=log
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        log.seek(0)
        found = re.search(rb"listening on (http://\S+)", log.read())
        if found:
            return proc, found.group(1).decode()
        time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the fake upstream did not start")


def start_nginx(tmp: Path, upstream: str) -> Row | None:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        print("nginx: not installed (apt-get install nginx) — row skipped")
        return None
    port = free_port()
    up = upstream.removeprefix("http://")
    conf = tmp / "nginx.conf"
    conf.write_text(
        f"""worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/nginx-body;
  proxy_temp_path {tmp}/nginx-proxy;
  upstream fake {{ server {up}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass http://fake;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering off;
    }}
  }}
}}
"""
    )
    proc = subprocess.Popen([nginx, "-c", str(conf)], stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/v1/models", proc)
    return Row("nginx", url, "gpt-4o-mini", UPSTREAM_KEY, [proc])


def start_callm(tmp: Path, upstream: str) -> Row:
    port = free_port()
    home = tmp / "callm-home"
    env = {
        **os.environ,
        "CALLM_HOME": str(home),
        "CALLM_MASTER_KEY": MASTER,
        "OPENAI_BASE_URL": upstream + "/v1",
        "OPENAI_API_KEY": UPSTREAM_KEY,
    }
    log = (tmp / "callm.log").open("wb")
    command = [sys.executable, "-m", "callm", "serve", "--port", str(port)]
    proc = subprocess.Popen(command, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    wait_ready(url + "/ready", proc)
    request = urllib.request.Request(
        url + "/admin/keys",
        json.dumps({"name": "bench"}).encode(),
        {"authorization": f"Bearer {MASTER}", "content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as r:
        key = json.loads(r.read())["key"]
    return Row("callm", url, "openai/gpt-4o-mini", key, [proc])


def litellm_command() -> list[str] | None:
    for candidate in (
        Path(sys.executable).with_name("litellm"),
        HERE.parent / ".venv-litellm" / "bin" / "litellm",
    ):
        if candidate.exists():
            return [str(candidate)]
    found = shutil.which("litellm")
    return [found] if found else None


def start_litellm(tmp: Path, upstream: str) -> Row | None:
    command = litellm_command()
    if command is None:
        print("litellm: not installed (pip install 'litellm[proxy]') — row skipped")
        return None
    port = free_port()
    config = tmp / "litellm.yaml"
    config.write_text(
        "model_list:\n"
        "  - model_name: gpt-4o-mini\n"
        "    litellm_params:\n"
        "      model: openai/gpt-4o-mini\n"
        f"      api_base: {upstream}/v1\n"
        f"      api_key: {UPSTREAM_KEY}\n"
        "litellm_settings:\n"
        "  telemetry: false\n"
    )
    master = "sk-" + secrets.token_hex(32)  # without one the proxy exits with status 3
    env = {
        **os.environ,
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "LITELLM_LOG": "ERROR",
        "LITELLM_MASTER_KEY": master,
    }
    log = (tmp / "litellm.log").open("wb")
    command += ["--config", str(config), "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen([*command, "--num_workers", "1"], env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url + "/health/liveliness", proc, timeout=180)
    except RuntimeError:
        print((tmp / "litellm.log").read_text(errors="replace")[-2000:])
        raise
    return Row("litellm", url, "gpt-4o-mini", master, [proc])


async def sequential_p50(row: Row, count: int) -> float:
    """Median microseconds of one request at a time (aiohttp, connection kept alive)."""
    import aiohttp

    headers = {"authorization": f"Bearer {row.key}", "content-type": "application/json"}
    body, url = row.body(), row.url + "/v1/chat/completions"
    times: list[float] = []
    async with aiohttp.ClientSession() as session:
        for i in range(count + count // 10):
            started = time.perf_counter()
            async with session.post(url, data=body, headers=headers) as r:
                data = await r.read()
                if r.status != 200:
                    row.errors += 1
            json.loads(data)
            if i >= count // 10:  # the first tenth warms up
                times.append(time.perf_counter() - started)
    times.sort()
    return times[len(times) // 2] * 1e6


def wrk_rps(row: Row, seconds: float, connections: int) -> float:
    script = Path(tempfile.mkstemp(suffix=".lua")[1])
    body = row.body().decode().replace("\\", "\\\\").replace("'", "\\'")
    script.write_text(
        f"wrk.method = 'POST'\nwrk.body = '{body}'\n"
        "wrk.headers['Content-Type'] = 'application/json'\n"
        f"wrk.headers['Authorization'] = 'Bearer {row.key}'\n"
    )
    # A slow proxy (LiteLLM) answers 32 callers in seconds: wrk's 2 s default would cut
    # its requests short and undercount it.
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "30s"]
    command += ["-s", str(script)]
    out = subprocess.run(
        [*command, row.url + "/v1/chat/completions"], capture_output=True, text=True, check=True
    ).stdout
    script.unlink()
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: .*", out)
    if bad:
        row.errors += int(bad.group(1))
    if socket_errors and "timeout 0" not in socket_errors.group(0):
        row.errors += 1
    found = re.search(r"Requests/sec:\s+([\d.]+)", out)
    return float(found.group(1)) if found else 0.0


async def python_rps(row: Row, seconds: float, connections: int) -> float:
    """Throughput from a Python client when wrk is not installed."""
    import aiohttp

    headers = {"authorization": f"Bearer {row.key}", "content-type": "application/json"}
    body, url = row.body(), row.url + "/v1/chat/completions"
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(session: aiohttp.ClientSession) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            async with session.post(url, data=body, headers=headers) as r:
                await r.read()
                row.errors += r.status != 200
            done += 1

    started = time.perf_counter()
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as session:
        await asyncio.gather(*(worker(session) for _ in range(connections)))
    return done / (time.perf_counter() - started)


def measure(rows: list[Row], rounds: int, count: int, seconds: float) -> None:
    throughput: Callable[[Row], float]
    if shutil.which("wrk"):
        throughput = lambda row: wrk_rps(row, seconds, 32)  # noqa: E731
    else:
        print("wrk: not installed (apt-get install wrk) — a Python client measures throughput")
        throughput = lambda row: asyncio.run(python_rps(row, seconds, 32))  # noqa: E731
    for number in range(1, rounds + 1):
        for row in rows:
            # LiteLLM is ~50x slower: fewer sequential requests keep the run short.
            n = count if row.name != "litellm" else max(50, count // 20)
            row.p50_us.append(asyncio.run(sequential_p50(row, n)))
            row.rps.append(throughput(row))
        print(
            f"round {number}/{rounds}: "
            + ", ".join(f"{r.name} {r.p50_us[-1]:.0f} us / {r.rps[-1]:.0f} req/s" for r in rows),
            flush=True,
        )


def _span(values: list[float]) -> str:
    return f"{min(values):,.0f}-{max(values):,.0f}"


def _ratio(name: str, a: list[float], b: list[float], best: float, target: str) -> float:
    """Print a ratio for the best rounds and the range of same-round ratios."""
    per_round = [x / y for x, y in zip(a, b, strict=True) if y]
    spread = f"{min(per_round):.2f}-{max(per_round):.2f}" if per_round else "-"
    print(f"{name:28}= {best:5.2f}x   rounds {spread:12} (target {target})")
    return round(best, 2)


def report(rows: list[Row]) -> dict[str, object]:
    best = {r.name: (min(r.p50_us), max(r.rps)) for r in rows}
    by_name = {r.name: r for r in rows}
    print(
        f"\n{'':9}{'p50 at 1 (us)':>14}{'range':>14}{'req/s at 32':>13}{'range':>14}{'errors':>8}"
    )
    for r in rows:
        p50, rps = best[r.name]
        print(
            f"{r.name:9}{p50:>14,.0f}{_span(r.p50_us):>18}{rps:>13,.0f}{_span(r.rps):>14}"
            f"{r.errors:>8}"
        )
    checks: dict[str, object] = {}
    callm = by_name.get("callm")
    if callm is not None:
        print()
        direct = by_name["direct"]
        checks["p50_vs_direct"] = _ratio(
            "callm p50 / direct p50",
            callm.p50_us,
            direct.p50_us,
            best["callm"][0] / best["direct"][0],
            "<= 2x",
        )
        for peer, target in (("nginx", ">= 0.5x"), ("litellm", ">= 20x")):
            if peer in by_name:
                checks[f"rps_vs_{peer}"] = _ratio(
                    f"callm req/s / {peer} req/s",
                    callm.rps,
                    by_name[peer].rps,
                    best["callm"][1] / best[peer][1],
                    target,
                )
    return {
        "rows": {r.name: {"p50_us": r.p50_us, "rps": r.rps, "errors": r.errors} for r in rows},
        "ratios": checks,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run (~1 min)")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--only", default="direct,nginx,callm,litellm")
    parser.add_argument("--json", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 3)
    count, seconds = (300, 2.0) if args.quick else (2000, 5.0)
    wanted = set(args.only.split(","))
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        upstream_proc, upstream = start_upstream(tmp)
        try:
            rows.append(Row("direct", upstream, "gpt-4o-mini", UPSTREAM_KEY))
            starters = {"nginx": start_nginx, "callm": start_callm, "litellm": start_litellm}
            for name, start in starters.items():
                if name in wanted:
                    row = start(tmp, upstream)
                    if row is not None:
                        rows.append(row)
            measure(rows, rounds, count, seconds)
            result = report(rows)
        finally:
            for row in rows:
                row.stop()
            upstream_proc.terminate()
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(result, indent=2))
    return 1 if any(r.errors for r in rows if r.name == "callm") else 0


if __name__ == "__main__":
    sys.exit(main())
