"""What the gateway tells its operators: Prometheus metrics and one JSON access-log line per
request. Labels and log fields carry the key's id, never the key.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .._core.types import Usage
from ._http import dumps

access_log = logging.getLogger("callm.server.access")
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


@dataclass(slots=True)
class Outcome:
    """What one request did, filled in as it goes and reported once at its end."""

    method: str
    path: str
    started: float = field(default_factory=time.perf_counter)
    status: int = 0
    model: str = ""
    key_id: str = ""
    stream: bool = False
    ttft_s: float | None = None
    usage: Usage | None = None
    cost: Decimal | None = None
    code: str | None = None


class Metrics:
    """The gateway's Prometheus metrics, in a registry of its own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "key_id")
        self.requests = Counter(
            "callm_requests", "Model requests", (*labels, "status"), registry=self.registry
        )
        self.errors = Counter(
            "callm_errors", "Model requests that failed", (*labels, "code"), registry=self.registry
        )
        self.latency = Histogram(
            "callm_request_seconds",
            "Time to the whole reply",
            labels,
            registry=self.registry,
            buckets=_BUCKETS,
        )
        self.ttft = Histogram(
            "callm_time_to_first_token_seconds",
            "Time to the first streamed event",
            labels,
            registry=self.registry,
            buckets=_BUCKETS,
        )
        self.tokens = Counter(
            "callm_tokens", "Tokens used", (*labels, "kind"), registry=self.registry
        )
        self.cost = Counter("callm_cost_usd", "Spend in USD", labels, registry=self.registry)
        self.in_flight = Gauge(
            "callm_requests_in_flight", "Model requests being served", registry=self.registry
        )

    def record(self, outcome: Outcome, seconds: float) -> None:
        model, key_id = outcome.model or "-", outcome.key_id or "-"
        self.requests.labels(model, key_id, str(outcome.status)).inc()
        self.latency.labels(model, key_id).observe(seconds)
        if outcome.ttft_s is not None:
            self.ttft.labels(model, key_id).observe(outcome.ttft_s)
        if outcome.code is not None or outcome.status >= 400:
            self.errors.labels(model, key_id, outcome.code or str(outcome.status)).inc()
        usage = outcome.usage
        if usage is not None:
            self.tokens.labels(model, key_id, "input").inc(usage.input_tokens)
            self.tokens.labels(model, key_id, "output").inc(usage.output_tokens)
        if outcome.cost:
            self.cost.labels(model, key_id).inc(float(outcome.cost))

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def report(metrics: Metrics | None, outcome: Outcome) -> None:
    """Metrics and the access-log line of a finished model request."""
    seconds = time.perf_counter() - outcome.started
    if metrics is not None:
        metrics.record(outcome, seconds)
    if access_log.isEnabledFor(logging.INFO):
        access_log.info(access_line(outcome, seconds))


def access_line(outcome: Outcome, seconds: float) -> str:
    line: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "method": outcome.method,
        "path": outcome.path,
        "status": outcome.status,
        "ms": round(seconds * 1000, 2),
    }
    if outcome.model:
        line["model"] = outcome.model
    if outcome.key_id:
        line["key_id"] = outcome.key_id
    if outcome.stream:
        line["stream"] = True
    if outcome.ttft_s is not None:
        line["ttft_ms"] = round(outcome.ttft_s * 1000, 2)
    if outcome.usage is not None:
        line["input_tokens"] = outcome.usage.input_tokens
        line["output_tokens"] = outcome.usage.output_tokens
    if outcome.cost is not None:
        line["cost_usd"] = str(outcome.cost)
    if outcome.code:
        line["error"] = outcome.code
    return str(dumps(line))
