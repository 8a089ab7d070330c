"""OpenTelemetry: one SERVER span per gateway request, with the library's call span inside.

The span comes from the tracer of the engine's own :class:`~callm._policies.tracing.Tracing`,
so the gateway follows the library's rules: nothing happens (and nothing is imported) unless
OpenTelemetry is installed and a tracer provider is configured. While the engine calls the
model, the server span is the current span, so the library's CLIENT span of that call (and
of each fallback) becomes its child.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .._policies.tracing import Tracing


def start(tracing: Tracing | None, method: str, path: str, route: str) -> Any:
    """The request's server span, or None when tracing is off."""
    if tracing is None:
        return None
    tracer = tracing.tracer()
    if tracer is None:
        return None
    from opentelemetry.trace import SpanKind

    return tracer.start_span(
        f"{method} {route}",
        kind=SpanKind.SERVER,
        attributes={"http.request.method": method, "url.path": path, "http.route": route},
        record_exception=False,
        set_status_on_exception=False,
    )


@contextmanager
def current(span: Any) -> Iterator[None]:
    """Make ``span`` the current span in a block (a no-op for None)."""
    if span is None:
        yield
        return
    from opentelemetry.trace import use_span

    with use_span(span, end_on_exit=False, record_exception=False, set_status_on_exception=False):
        yield


def end(span: Any, status: int, attributes: dict[str, Any], error: str | None) -> None:
    """Describe the request's outcome on its span and end it (5xx: status ERROR)."""
    if span.is_recording():
        span.set_attributes(attributes)
        if status >= 500:
            from opentelemetry.trace import Status, StatusCode

            span.set_status(Status(StatusCode.ERROR, error or str(status)))
    span.end()
