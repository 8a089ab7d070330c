"""Interleaved timing rounds for the synchronous sections (A B C, A B C, …)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping

from _common import Result, describe, settle

#: A prepared client: ``call()`` does one request and returns the units of work it saw
#: (1 per request, or the number of content chunks of a stream); ``close()`` frees it.
#: A factory may return a third function, ``finish()``, run at the end of every timed
#: round inside the timed region (e.g. flushing callm's call log, so work a client left to
#: a background thread is counted in its own round, not in the next client's).
Call = Callable[[], int]
Close = Callable[[], None]
Finish = Callable[[], None]
Factory = Callable[[str], tuple[Call, Close] | tuple[Call, Close, Finish]]


def not_available(client: str, unit: str, exc: BaseException) -> Result:
    return Result(client, unit, error=f"not available ({describe(exc)})")


def run_interleaved(
    factories: Mapping[str, Factory],
    url: str,
    *,
    unit: str,
    counts: Mapping[str, int],
    rounds: int,
    warmup: Mapping[str, int],
    per_call: str | None = None,
) -> dict[str, Result]:
    """Time every client for ``counts[name]`` calls per round, clients interleaved.

    Each round's figure is total units / elapsed seconds. With ``per_call`` set, the set of
    distinct units-per-call values is kept in ``detail[per_call]`` (e.g. chunks per stream).
    ``detail["cpu_us_per_unit"]`` has each round's CPU time of this process (every thread:
    a call log's writer too) per unit: far less moved by other load than the wall clock.
    """
    results: dict[str, Result] = {}
    live: dict[str, tuple[Call, Close, Finish | None]] = {}
    seen: dict[str, set[int]] = {}
    try:
        for name, factory in factories.items():
            results[name] = Result(name, unit)
            try:
                call, close, *finish = factory(url)
                live[name] = (call, close, finish[0] if finish else None)
            except ImportError as exc:
                results[name] = not_available(name, unit, exc)
                continue
            except Exception as exc:
                results[name].error = f"failed to start ({describe(exc)})"
                continue
            seen[name] = set()
            if not _timed(live, results, seen, name, warmup.get(name, 1)):
                continue
            results[name].detail["count_per_round"] = counts[name]
        for _ in range(rounds):
            for name in list(live):
                settle()
                timed = _timed(live, results, seen, name, counts[name])
                if timed is not None:
                    results[name].rounds.append(round(timed[0], 1))
                    cpu = results[name].detail.setdefault("cpu_us_per_unit", [])
                    cpu.append(round(timed[1], 3))
    finally:
        for call_close in live.values():
            _close_quietly(call_close[1])
    if per_call:
        for name, values in seen.items():
            if values:
                results[name].detail[per_call] = sorted(values)
    return results


def _timed(
    live: dict[str, tuple[Call, Close, Finish | None]],
    results: dict[str, Result],
    seen: dict[str, set[int]],
    name: str,
    count: int,
) -> tuple[float, float] | None:
    """Run ``count`` calls; units per second and CPU µs per unit, or None after recording
    the failure."""
    call, _, finish = live[name]
    units = 0
    values = seen[name]
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(count):
            got = call()
            units += got
            values.add(got)
        if finish is not None:
            finish()
        elapsed = time.perf_counter() - started
        cpu = time.process_time() - cpu_started
    except Exception as exc:
        results[name].error = f"failed ({describe(exc)})"
        _close_quietly(live.pop(name)[1])
        return None
    if not units:
        return float("inf"), 0.0
    return (units / elapsed if elapsed > 0 else float("inf")), cpu * 1e6 / units


def _close_quietly(close: Close) -> None:
    with contextlib.suppress(Exception):
        close()
