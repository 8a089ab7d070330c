"""callm's benchmark: callm against raw httpx2, raw urllib3/aiohttp, openai and LiteLLM,
and (section ``anthropic``) callm's Anthropic provider against the official anthropic SDK;
section ``policies`` times callm with its call log, cost and rate limiter on against off.

Run ``python bench/run.py`` (``make bench``); ``--quick`` for a smoke run, ``--only`` to
pick clients. Everything talks to callm's fake server (OpenAI and Anthropic protocols on
one port), started once in a subprocess on loopback; any other network access is refused.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import _anthropic
import _async
import _guard
import _imports
import _policies
import _report
import _sse
import _stream
import _sync
from _common import (
    ALL_CLIENTS,
    BARE,
    BASELINE,
    CONCURRENCY,
    Result,
    Settings,
    private_callm_home,
)
from _rounds import Factory, run_interleaved
from _server import FakeServer

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "latest.json"
SECTION_NAMES = ("sync", "stream", "async", "anthropic", "policies", "imports", "sse")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python bench/run.py", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small counts (CI smoke run)")
    parser.add_argument(
        "--only",
        default=",".join(ALL_CLIENTS),
        help=f"comma-separated clients (default all: {','.join(ALL_CLIENTS)})",
    )
    parser.add_argument(
        "--sections",
        default=",".join(SECTION_NAMES),
        help=f"comma-separated sections (default all: {','.join(SECTION_NAMES)})",
    )
    parser.add_argument("--rounds", type=int, default=None, help="override rounds per client")
    parser.add_argument(
        "--server",
        choices=("replay", "fake"),
        default="replay",
        help="replay: callm's fake, answered from memory after the first time (default); "
        "fake: callm's fake alone (its aiohttp handlers cap the fastest clients)",
    )
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write JSON")
    args = parser.parse_args(argv)
    args.clients = _split(parser, args.only, ALL_CLIENTS, "client")
    args.section_list = _split(parser, args.sections, SECTION_NAMES, "section")
    return args


def _split(
    parser: argparse.ArgumentParser, text: str, known: tuple[str, ...], kind: str
) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        parser.error(f"unknown {kind}(s): {', '.join(unknown)}; choose from {', '.join(known)}")
    return names


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    _guard.install()
    # callm's call log (and anything else callm stores) goes to a temporary folder that is
    # removed at the end: the benchmark never writes to the real CALLM_HOME.
    with private_callm_home() as home:
        _progress(f"CALLM_HOME: {home} (temporary)")
        return _main(args)


def _main(args: argparse.Namespace) -> int:
    settings = Settings.make(args.quick).with_rounds(args.rounds)
    clients: list[str] = args.clients
    sections: list[str] = args.section_list
    results: dict[str, dict[str, Result]] = {}
    meta: dict[str, object] = {
        "clients": clients,
        "concurrency": CONCURRENCY,
        # every callm row except the policies section's "on" row
        "callm_options": {**BARE, "rate_limits": None},
        "callm_home": "temporary folder, removed after the run",
        "server": args.server,
    }
    started = time.perf_counter()

    def pick(factories: dict[str, Factory]) -> dict[str, Factory]:
        return {n: f for n, f in factories.items() if n in clients}

    if {"sync", "stream", "async", "anthropic", "policies"} & set(sections):
        with FakeServer(replay=args.server == "replay") as server:
            _progress(f"{args.server} server: {server.url} (subprocess)")
            if "sync" in sections:
                _progress("1/7 sequential non-streaming requests …")
                results["sync"] = _rounds_run(
                    pick(_sync.FACTORIES),
                    server.url,
                    settings=settings,
                    rounds=settings.sync_rounds,
                    base=settings.sync_requests,
                    warm=50,
                    unit="req/s",
                )
            if "stream" in sections:
                _progress("2/7 streamed chunks …")
                results["stream"] = _rounds_run(
                    pick(_stream.FACTORIES),
                    server.url,
                    settings=settings,
                    rounds=settings.stream_rounds,
                    base=settings.streams,
                    warm=4,
                    unit="chunks/s",
                    per_call="chunks_per_stream",
                )
            if "async" in sections:
                _progress(f"3/7 async requests, {CONCURRENCY} in flight …")
                afactories = {n: f for n, f in _async.FACTORIES.items() if n in clients}
                counts = {
                    n: settings.count(settings.async_requests, n, floor=CONCURRENCY * 2)
                    for n in afactories
                }
                results["async"] = _async.run(
                    afactories, server.url, counts=counts, rounds=settings.async_rounds
                )
            if "anthropic" in sections:
                _progress("4/7 Anthropic Messages API: non-streaming requests, streamed chunks …")
                results["anthropic-sync"] = _rounds_run(
                    pick(_anthropic.SYNC_FACTORIES),
                    server.url,
                    settings=settings,
                    rounds=settings.sync_rounds,
                    base=settings.sync_requests,
                    warm=50,
                    unit="req/s",
                )
                results["anthropic-stream"] = _rounds_run(
                    pick(_anthropic.STREAM_FACTORIES),
                    server.url,
                    settings=settings,
                    rounds=settings.stream_rounds,
                    base=settings.streams,
                    warm=4,
                    unit="chunks/s",
                    per_call="chunks_per_stream",
                )
            if "policies" in sections and "callm" in clients:
                _progress("5/7 callm's policies: call log + rate limiter + cost, off vs on …")
                results["policies"] = _policies.run(server.url, settings)
    if "imports" in sections:
        _progress("6/7 import times …")
        results["imports"] = _imports.run(
            clients, settings.import_runs, settings.litellm_import_runs
        )
    if "sse" in sections:
        _progress("7/7 SSE decoding alone: one huge event, a typical stream …")
        results.update(_sse.run(settings.quick, clients))
    elapsed = time.perf_counter() - started
    meta["elapsed_s"] = round(elapsed, 1)
    meta["blocked_network_attempts"] = list(_guard.blocked)

    print(f"callm benchmark ({'quick' if settings.quick else 'full'} run, {elapsed:.0f} s)")
    print(_report.render(results))
    notes = _report.unavailable_lines(results)
    if notes or _guard.blocked:
        print()
    for line in notes:
        print(line)
    if _guard.blocked:
        print(f"blocked network attempts (loopback only): {sorted(set(_guard.blocked))}")
    if BASELINE not in clients:
        print(f"(ratios need {BASELINE}; it was left out with --only)")
    _report.write_json(args.json, results, settings, meta)
    print(f"\nwrote {args.json}")
    return 0


def _rounds_run(
    factories: dict[str, Factory],
    url: str,
    *,
    settings: Settings,
    rounds: int,
    base: int,
    warm: int,
    unit: str,
    per_call: str | None = None,
) -> dict[str, Result]:
    counts = {n: settings.count(base, n) for n in factories}
    warmup = {n: max(1, int(warm * settings.weights.get(n, 1.0))) for n in factories}
    return run_interleaved(
        factories, url, unit=unit, counts=counts, rounds=rounds, warmup=warmup, per_call=per_call
    )


if __name__ == "__main__":
    sys.exit(main())
