"""Shared pieces of the benchmark: the request every client sends, settings, results."""

from __future__ import annotations

import contextlib
import gc
import json
import os
import shutil
import statistics
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import Any

MODEL = "gpt-4o-mini"
CALLM_MODEL = f"fake/{MODEL}"
LITELLM_MODEL = f"openai/{MODEL}"
API_KEY = "sk-bench-fake"
SHORT_PROMPT = "hi"
MAX_TOKENS = 50
# The offline model quotes the prompt one fragment per word and stops at max_tokens
# fragments: 300 words with max_tokens=200 stream exactly 200 content chunks.
LONG_PROMPT = " ".join(["w"] * 300)
STREAM_MAX_TOKENS = 200
CONCURRENCY = 64
TIMEOUT = 30.0

#: callm's production policies are off in every callm row but the policies section's "on"
#: row: the other rows measure the bare client (no call log, no tracing, no rate limiter).
#: Cost is always computed on every Response; it cannot be turned off.
BARE = {"log": False, "tracing": False}

#: Every client, in table order. "urllib3" and "aiohttp" are reference rows only.
#: "callm-httpx2" is callm driving a user-supplied httpx2 client: its overhead over raw httpx2.
#: "anthropic" is the official Anthropic SDK (only in the anthropic section).
ALL_CLIENTS = (
    "callm",
    "callm-httpx2",
    "httpx2",
    "urllib3",
    "aiohttp",
    "openai",
    "litellm",
    "anthropic",
)
BASELINE = "httpx2"


def configure_litellm_env() -> None:
    """Keep LiteLLM offline: local price map, no telemetry, quiet logs. Call before import."""
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    os.environ["LITELLM_TELEMETRY"] = "False"
    os.environ["DISABLE_LITELLM_TELEMETRY"] = "True"


def request_body(prompt: str, max_tokens: int, *, stream: bool = False) -> bytes:
    """The JSON body raw clients send; the SDKs build the same content themselves."""
    body: dict[str, Any] = {
        "model": MODEL,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
    }
    if stream:
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
    return json.dumps(body).encode()


def headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}", "Content-Type": "application/json"}


def reply_text(body: bytes) -> str:
    """Parse a whole Chat Completions reply and return its text (the raw clients' work)."""
    data = json.loads(body)
    return str(data["choices"][0]["message"]["content"])


def sse_chunk_text(line: bytes | str) -> str | None:
    """Text of one SSE line: "" for a non-text line, None at ``[DONE]``."""
    if isinstance(line, bytes):
        line = line.decode()
    if not line.startswith("data:"):
        return ""
    payload = line[5:].strip()
    if payload == "[DONE]":
        return None
    choices = json.loads(payload)["choices"]
    if not choices:
        return ""  # the usage chunk
    return choices[0]["delta"].get("content") or ""


@dataclass(frozen=True)
class Settings:
    """How much work each section does. ``weights`` scale the counts for slow clients."""

    quick: bool
    sync_rounds: int
    stream_rounds: int
    async_rounds: int
    sync_requests: int
    streams: int
    async_requests: int
    import_runs: int
    litellm_import_runs: int
    policies_rounds: int
    policies_requests: int
    weights: dict[str, float] = field(
        default_factory=lambda: {"openai": 0.5, "litellm": 0.15, "anthropic": 0.5}
    )

    @classmethod
    def make(cls, quick: bool) -> Settings:
        if quick:
            return cls(True, 2, 2, 1, 150, 8, 256, 3, 1, 2, 150)
        return cls(False, 7, 7, 7, 400, 30, 2000, 15, 4, 11, 1000)

    def with_rounds(self, rounds: int | None) -> Settings:
        if not rounds:
            return self
        return replace(
            self,
            sync_rounds=rounds,
            stream_rounds=rounds,
            async_rounds=rounds,
            policies_rounds=rounds,
        )

    def count(self, base: int, client: str, floor: int = 1) -> int:
        return max(floor, int(base * self.weights.get(client, 1.0)))


@dataclass
class Result:
    """One client's figure in one section, from several timed rounds.

    ``value`` is the best round for throughputs (other processes on the machine only ever
    slow a round down, so the best is the least disturbed) and the median for import times.
    """

    client: str
    unit: str
    rounds: list[float] = field(default_factory=list)
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    higher_is_better: bool = True
    statistic: str = "best"  # or "median"

    @property
    def value(self) -> float | None:
        return self.median if self.statistic == "median" else self.best

    @property
    def median(self) -> float | None:
        return statistics.median(self.rounds) if self.rounds and not self.error else None

    @property
    def best(self) -> float | None:
        if not self.rounds or self.error:
            return None
        return max(self.rounds) if self.higher_is_better else min(self.rounds)

    def as_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "statistic": self.statistic,
            "best": self.best,
            "median": self.median,
            "unit": self.unit,
            "rounds": self.rounds,
            "error": self.error,
            **self.detail,
        }


def settle() -> None:
    """Collect garbage and freeze what is left (imports, LiteLLM's tables) out of the
    collector's way, so a big heap in this process does not tax whichever client runs next."""
    gc.collect()
    gc.freeze()


def describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:160] if text else type(exc).__name__


Runner = Callable[[], None]


@contextlib.contextmanager
def private_callm_home() -> Iterator[str]:
    """Point ``CALLM_HOME`` at a fresh temporary folder for the whole run (subprocesses
    included), so no client ever writes a call log, a spend record or a key into the real
    home. On the way out every call log is flushed and closed, then the folder is removed."""
    previous = os.environ.get("CALLM_HOME")
    home = tempfile.mkdtemp(prefix="callm-bench-home-")
    os.environ["CALLM_HOME"] = home
    try:
        yield home
    finally:
        close_call_logs()
        if previous is None:
            os.environ.pop("CALLM_HOME", None)
        else:
            os.environ["CALLM_HOME"] = previous
        shutil.rmtree(home, ignore_errors=True)


#: Where callm keeps its shared call-log writers (``_call_logs``): the second is callm
#: before the layered layout (issue 10), which bench/compare_trees.py runs this harness on.
_CALL_LOG_MODULES = ("callm._policies.calllog", "callm._pipeline")


def _call_log_module() -> Any:
    """The imported module holding callm's call-log writers, or None."""
    return next((sys.modules[m] for m in _CALL_LOG_MODULES if m in sys.modules), None)


def flush_call_logs() -> None:
    """Wait until every record queued on callm's shared call-log writers is in the database."""
    calllog = _call_log_module()
    if calllog is None:
        return
    for log in list(calllog._call_logs.values()):
        log.flush()


def close_call_logs() -> None:
    """Flush and stop callm's call-log writers (only if callm was imported at all)."""
    calllog = _call_log_module()
    if calllog is None:
        return
    for log in list(calllog._call_logs.values()):
        with contextlib.suppress(Exception):
            log.close()
    calllog._call_logs.clear()
