"""One model's answer in ``callm compare``, as it streams in."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from .._core.errors import CallmError
from .._core.types import Response
from ._output import money


@dataclass
class Answer:
    """One model's answer so far: its text, and how it ended (a Response or an error)."""

    model: str
    text: str = ""
    started: float = field(default_factory=time.monotonic)
    ttft_s: float | None = None
    response: Response | None = None
    error: CallmError | None = None

    @property
    def done(self) -> bool:
        return self.response is not None or self.error is not None

    def stats(self) -> str:
        """``1.23s · first token 0.20s · 12 in / 34 out tokens · $0.0001``, or the error."""
        if self.error is not None:
            return f"error: {type(self.error).__name__}: {self.error}"
        if self.response is None:
            elapsed = time.monotonic() - self.started
            return f"{elapsed:.1f}s …"
        r = self.response
        parts = []
        if r.latency_s is not None:
            parts.append(f"{r.latency_s:.2f}s")
        ttft = r.ttft_s if r.ttft_s is not None else self.ttft_s
        if ttft is not None:
            parts.append(f"first token {ttft:.2f}s")
        parts.append(f"{r.usage.input_tokens:,} in / {r.usage.output_tokens:,} out tokens")
        parts.append("cost unknown" if r.cost is None else money(r.cost))
        return " · ".join(parts)
