"""Section 5: what callm's production policies cost a sequential non-streaming call.

Two callm clients on the fake server, in interleaved rounds like section 1:

- ``callm-bare``: everything off (``log=False, tracing=False``, no ``rate_limits``) — the
  configuration every other callm row of the benchmark uses.
- ``callm-policies``: the call log on (``log=True``: a background thread writes every call to
  SQLite in ``$CALLM_HOME``, a temporary folder for the run), a client-side rate limiter on
  every model (``rate_limits={"*": RateLimit(rpm=10M, tpm=10G)}`` — far above what the run
  reaches, so it measures the limiter's bookkeeping, never a wait) and tracing left at its
  default (on; a no-op without a configured tracer provider).

Cost is computed on every Response in both rows (it cannot be turned off). The log writer
shares the GIL with the caller, so every round of ``callm-policies`` ends by flushing the
call log inside the timed region: all records of the round are in the database when its
clock stops. The target (from the issue): policies on >= 0.9x policies off.
"""

from __future__ import annotations

import os
import sqlite3
from importlib import import_module
from pathlib import Path
from typing import Any

from _common import CALLM_MODEL, MAX_TOKENS, SHORT_PROMPT, Result, Settings, flush_call_logs
from _rounds import Call, Close, Factory, Finish, run_interleaved
from _sync import callm_client

BARE = "callm-bare"
ON = "callm-policies"
#: Far above anything a benchmark on loopback reaches: the limiter never waits.
RPM = 10_000_000
TPM = 10_000_000_000
_SIGN = "[offline]"
_last_cost: dict[str, Any] = {}


def _call(name: str, client: Any) -> Call:
    def call() -> int:
        reply = client.complete(CALLM_MODEL, SHORT_PROMPT, max_tokens=MAX_TOKENS)
        text = reply.text
        if not text or not text.startswith(_SIGN):
            raise RuntimeError(f"unexpected reply text: {text!r}")
        _last_cost[name] = reply.cost
        return 1

    return call


def _has(pipeline: Any, policy: str) -> bool:
    """Whether callm's pipeline runs the rate limiter (``"ratelimit"``) or tracing."""
    try:
        module = import_module(f"callm._policies.{policy}")
    except ImportError:  # callm before the layered layout (bench/compare_trees.py)
        return getattr(pipeline, {"ratelimit": "limiter"}.get(policy, policy)) is not None
    kind = {"ratelimit": "RateLimitPolicy", "tracing": "TracingPolicy"}[policy]
    return pipeline.find(getattr(module, kind)) is not None


def _bare(url: str) -> tuple[Call, Close]:
    client = callm_client(url)
    pipeline = client.pipeline
    if pipeline.log or _has(pipeline, "ratelimit") or _has(pipeline, "tracing"):
        raise RuntimeError("the bare client has a policy on")
    return _call(BARE, client), client.close


def _policies(url: str) -> tuple[Call, Close, Finish]:
    import callm

    client = callm_client(
        url,
        log=True,
        tracing=True,
        rate_limits={"*": callm.RateLimit(rpm=RPM, tpm=TPM)},
    )
    if not client.pipeline.log:
        raise RuntimeError("callm's call log is off (is CALLM_LOG set to 0 / false / off?)")
    if not _has(client.pipeline, "ratelimit"):
        raise RuntimeError("callm's rate limiter is off")
    return _call(ON, client), client.close, flush_call_logs


FACTORIES: dict[str, Factory] = {BARE: _bare, ON: _policies}


def logged_calls() -> int | None:
    """Rows in the run's call log (``$CALLM_HOME/callm.db``), None if there is none."""
    path = Path(os.environ.get("CALLM_HOME", "")) / "callm.db"
    if not path.is_file():
        return None
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT count(*) FROM calls").fetchone()[0])


def run(url: str, settings: Settings) -> dict[str, Result]:
    count = settings.policies_requests
    results = run_interleaved(
        FACTORIES,
        url,
        unit="req/s",
        counts=dict.fromkeys(FACTORIES, count),
        rounds=settings.policies_rounds,
        warmup=dict.fromkeys(FACTORIES, 100),
    )
    flush_call_logs()
    for name, result in results.items():
        cost = _last_cost.get(name)
        result.detail["cost_per_call_usd"] = None if cost is None else str(cost)
    if ON in results:
        on = results[ON]
        on.detail["log"] = True
        on.detail["rate_limits"] = {"*": {"rpm": RPM, "tpm": TPM}}
        on.detail["tracing"] = "default (on, no tracer provider configured)"
        on.detail["logged_calls"] = logged_calls()
    if BARE in results:
        results[BARE].detail.update(log=False, tracing=False, rate_limits=None)
    return results


def ratios(rows: dict[str, Result]) -> dict[str, float | None]:
    """``policies on / off`` of the best rounds and of the medians."""
    on, off = rows.get(ON), rows.get(BARE)
    out: dict[str, float | None] = {"best": None, "median": None}
    if on is None or off is None:
        return out
    if on.best is not None and off.best:
        out["best"] = round(on.best / off.best, 3)
    if on.median is not None and off.median:
        out["median"] = round(on.median / off.median, 3)
    return out
