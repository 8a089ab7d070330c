"""What the gateway tells its operators: Prometheus metrics and one JSON access-log line per
request. Labels and log fields carry the key's id, never the key.

Neither costs a request much on its path: a finished request is noted in a list, and a few
times a second (and before ``/metrics`` answers) the requests noted so far are counted into
plain counters, which a Prometheus collector reads only when scraped, and their log lines
are formatted and written out in one write (as nginx's ``access_log … buffer=`` does).
"""

from __future__ import annotations

import asyncio
import sys
import time
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any

from .._core.types import Usage
from . import _tracing
from ._http import dumps

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
_FLUSH_EVERY = 0.1  # seconds a finished request may wait to be counted and logged
_FLUSH_LINES = 512  # … or until this many wait


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
    span: Any = None  # the request's OpenTelemetry server span (see _tracing.py)
    reported: bool = False


class _Histogram:
    """Counts of observations per bucket (non-cumulative), their sum and their number."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(_BUCKETS, value)] += 1
        self.total += value


class _Series:
    """Everything counted for one (model, key id) pair."""

    __slots__ = ("cost", "errors", "input_tokens", "latency", "output_tokens", "statuses", "ttft")

    def __init__(self) -> None:
        self.statuses: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self.latency = _Histogram()
        self.ttft = _Histogram()
        self.input_tokens = 0
        self.output_tokens = 0
        self.cost = 0.0


class Metrics:
    """The gateway's Prometheus metrics: counted in plain dicts, exposed in a registry."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry

        self.series: dict[tuple[str, str], _Series] = {}
        self.in_flight = 0
        self.usage_queued = 0  # the ledger's, as of the last scrape
        self.limits_shared = 1
        self.registry = CollectorRegistry(auto_describe=True)
        self.registry.register(_Collector(self))

    def record(self, outcome: Outcome, seconds: float) -> None:
        labels = (outcome.model or "-", outcome.key_id or "-")
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = _Series()
        status = str(outcome.status)
        series.statuses[status] = series.statuses.get(status, 0) + 1
        series.latency.observe(seconds)
        if outcome.ttft_s is not None:
            series.ttft.observe(outcome.ttft_s)
        if outcome.code is not None or outcome.status >= 400:
            code = outcome.code or status
            series.errors[code] = series.errors.get(code, 0) + 1
        usage = outcome.usage
        if usage is not None:
            series.input_tokens += usage.input_tokens
            series.output_tokens += usage.output_tokens
        if outcome.cost:
            series.cost += float(outcome.cost)

    def stores(self, health: dict[str, Any]) -> None:
        """The ledger's state, read when the metrics are scraped."""
        self.usage_queued = int(health.get("usage_queued", 0))
        self.limits_shared = 1 if health.get("limits") in ("exact", "shared") else 0

    def exposition(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _Collector:
    """Reads :class:`Metrics` into Prometheus metric families when scraped."""

    def __init__(self, metrics: Metrics) -> None:
        self.metrics = metrics

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        labels = ["model", "key_id"]
        requests = CounterMetricFamily(
            "callm_requests", "Model requests", labels=[*labels, "status"]
        )
        errors = CounterMetricFamily(
            "callm_errors", "Model requests that failed", labels=[*labels, "code"]
        )
        latency = HistogramMetricFamily(
            "callm_request_seconds", "Time to the whole reply", labels=labels
        )
        ttft = HistogramMetricFamily(
            "callm_time_to_first_token_seconds", "Time to the first streamed event", labels=labels
        )
        tokens = CounterMetricFamily("callm_tokens", "Tokens used", labels=[*labels, "kind"])
        cost = CounterMetricFamily("callm_cost_usd", "Spend in USD", labels=labels)
        for (model, key_id), series in list(self.metrics.series.items()):
            pair = [model, key_id]
            for status, count in series.statuses.items():
                requests.add_metric([*pair, status], count)
            for code, count in series.errors.items():
                errors.add_metric([*pair, code], count)
            for family, histogram in ((latency, series.latency), (ttft, series.ttft)):
                if sum(histogram.counts):
                    family.add_metric(pair, _cumulative(histogram), histogram.total)
            tokens.add_metric([*pair, "input"], series.input_tokens)
            tokens.add_metric([*pair, "output"], series.output_tokens)
            cost.add_metric(pair, series.cost)
        yield from (requests, errors, latency, ttft, tokens, cost)
        yield GaugeMetricFamily(
            "callm_requests_in_flight", "Model requests being served", value=self.metrics.in_flight
        )
        yield GaugeMetricFamily(
            "callm_usage_queued",
            "Usage rows waiting to be written to the database",
            value=self.metrics.usage_queued,
        )
        yield GaugeMetricFamily(
            "callm_limits_shared",
            "1 while limits are exact (one process, or a fleet with Redis reachable), else 0",
            value=self.metrics.limits_shared,
        )


def _cumulative(histogram: _Histogram) -> list[tuple[str, float]]:
    buckets: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip((*_BUCKETS, float("inf")), histogram.counts, strict=True):
        running += count
        buckets.append(("+Inf" if bound == float("inf") else str(bound), running))
    return buckets


class AccessLog:
    """One JSON line per request, written out together a few times a second."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""

    def add(self, outcome: Outcome, seconds: float, at: float) -> None:
        """Queue the line of a request that ended at ``at`` (``time.time()``)."""
        self._lines.append(self.line(outcome, seconds, at))

    def flush(self) -> None:
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            self.stream.write("\n".join(lines) + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # stderr closed: the log must never break a request
            pass

    def line(self, outcome: Outcome, seconds: float, at: float) -> str:
        line: dict[str, Any] = {
            "time": self._stamp_of(at),
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
        return dumps(line).decode()

    def _stamp_of(self, at: float) -> str:
        second = int(at)
        if second != self._second:  # one strftime a second, not one a request
            self._second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
        return self._stamp


class Observer:
    """Metrics, the access log and the server span of every model request.

    A finished request is only noted on its path (what it did, how long it took, when it
    ended); counting it into the metrics and writing its log line happen for all the
    requests noted so far at once, a few times a second (and before ``/metrics`` answers),
    where that work finds its code and data in the caches rather than fetching them anew
    for each request. Its span, if traced, ends at once.
    """

    def __init__(
        self, metrics: Metrics | None, access_log: AccessLog | None, tracing: Any = None
    ) -> None:
        self.metrics = metrics
        self.access_log = access_log
        self.tracing = tracing
        self._finished: list[tuple[Outcome, float, float]] = []
        self._scheduled = False

    def begin(self, method: str, path: str, route: str) -> Outcome:
        """The Outcome of a request starting now (its server span opened, if tracing)."""
        outcome = Outcome(method, path)
        if self.tracing is not None:
            outcome.span = _tracing.start(self.tracing, method, path, route)
        if self.metrics is not None:
            self.metrics.in_flight += 1
        return outcome

    def report(self, outcome: Outcome) -> None:
        """Note the finished request for the metrics and the log, end its span (once)."""
        if outcome.reported:
            return
        outcome.reported = True
        seconds = time.perf_counter() - outcome.started
        span, outcome.span = outcome.span, None
        if span is not None:
            _tracing.end(span, outcome.status, span_attributes(outcome), outcome.code)
        if self.metrics is None and self.access_log is None:
            return
        if self.metrics is not None:
            self.metrics.in_flight -= 1
        self._finished.append((outcome, seconds, time.time()))
        if len(self._finished) >= _FLUSH_LINES:
            self.flush()
        elif not self._scheduled:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not in the event loop (a test, say): count it now
                self.flush()
                return
            self._scheduled = True
            loop.call_later(_FLUSH_EVERY, self.flush)

    def flush(self) -> None:
        """Count the requests noted so far and write their log lines."""
        self._scheduled = False
        finished, self._finished = self._finished, []
        metrics, access_log = self.metrics, self.access_log
        for outcome, seconds, at in finished:
            if metrics is not None:
                metrics.record(outcome, seconds)
            if access_log is not None:
                access_log.add(outcome, seconds, at)
        if access_log is not None:
            access_log.flush()

    def close(self) -> None:
        self.flush()


def span_attributes(outcome: Outcome) -> dict[str, Any]:
    """What the request's server span says of its outcome."""
    attributes: dict[str, Any] = {"http.response.status_code": outcome.status}
    if outcome.model:
        attributes["gen_ai.request.model"] = outcome.model
    if outcome.key_id:
        attributes["callm.key_id"] = outcome.key_id
    if outcome.stream:
        attributes["callm.stream"] = True
    if outcome.code:
        attributes["error.type"] = outcome.code
    if outcome.usage is not None:
        attributes["gen_ai.usage.input_tokens"] = outcome.usage.input_tokens
        attributes["gen_ai.usage.output_tokens"] = outcome.usage.output_tokens
    if outcome.cost is not None:
        attributes["callm.cost_usd"] = float(outcome.cost)
    if outcome.ttft_s is not None:
        attributes["callm.ttft_s"] = outcome.ttft_s
    return attributes
