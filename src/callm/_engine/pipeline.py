"""The policies around each call, run in order: the engine's only view of them.

A client's :class:`Pipeline` holds its routes and an ordered sequence of
:class:`~callm._policies.base.Policy` (see that module for the steps and their order). The
engine calls :meth:`Pipeline.admit` and :meth:`Pipeline.prepare` for every attempt,
:meth:`Pipeline.answer` (a cached reply, or None), :meth:`Pipeline.wait` before sending, and
one of :meth:`Pipeline.succeed`, :meth:`Pipeline.fail` or :meth:`Pipeline.abandon` after; the
only I/O left to it is sending. A policy takes part only in the steps it overrides, so a
client with no policy on pays nothing for the others.

The default sequence, first to last: the caller's hooks, the call log, tracing, the budget,
the response cache, the rate limiter, cost (:func:`default_policies`). The gateway or a batch
runner adds its own policies to it (``Client(policies=…)`` comes first) without touching
this module.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from .._policies.base import Attempt, CallInfo, Policy
from .._policies.routing import Routes

if TYPE_CHECKING:
    from .._core.types import Response
    from .._store import Store

__all__ = ["Attempt", "CallInfo", "Pipeline", "Policy"]

P = TypeVar("P", bound=Policy)


def _takes_part(policy: Policy, step: str) -> bool:
    """Whether ``policy`` overrides ``step`` (the pipeline skips the steps it does not)."""
    return getattr(type(policy), step) is not getattr(Policy, step)


class LazyStore:
    """A client's store (spend, the sqlite response cache, conversations), opened on first use."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._store: Store | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"LazyStore({str(self.path)!r})"

    def __call__(self) -> Store:
        with self._lock:
            if self._store is None:
                from .._store import Store

                self._store = Store(self.path)
            return self._store


@dataclass
class Pipeline:
    """A client's routes and policies. Built once per client; shared by its threads and tasks."""

    routes: Routes = field(default_factory=Routes)
    policies: Sequence[Policy] = ()
    # Whether calls are logged when they do not say (``log=``): the client's setting.
    log: bool = True
    opened_store: LazyStore = field(default_factory=lambda: LazyStore(None), repr=False)

    def __post_init__(self) -> None:
        self.policies = tuple(self.policies)
        out, back = self.policies, self.policies[::-1]
        self._admit = tuple(p.admit for p in out if _takes_part(p, "admit"))
        self._prepare = tuple(p.prepare for p in out if _takes_part(p, "prepare"))
        self._answer = tuple(p.answer for p in out if _takes_part(p, "answer"))
        self._wait = tuple(p for p in out if _takes_part(p, "wait"))
        self._succeeded = tuple(p.succeeded for p in back if _takes_part(p, "succeeded"))
        self._failed = tuple(p.failed for p in back if _takes_part(p, "failed"))
        self._abandoned = tuple(p.abandoned for p in back if _takes_part(p, "abandoned"))

    def find(self, kind: type[P]) -> P | None:
        """The client's policy of this kind, or None when it has none."""
        return next((p for p in self.policies if isinstance(p, kind)), None)

    # --- before -----------------------------------------------------------------------

    def admit(self, attempt: Attempt) -> None:
        """Before encoding: hooks may change the request, a policy may refuse the call."""
        for admit in self._admit:
            admit(attempt)

    def prepare(self, attempt: Attempt) -> None:
        for prepare in self._prepare:
            prepare(attempt)

    def answer(self, attempt: Attempt) -> Response | None:
        """A reply without sending (passed back through the policies), or None."""
        for answer in self._answer:
            response = answer(attempt)
            if response is not None:
                attempt.cached = True
                return self.succeed(attempt, response, {})
        return None

    def wait(self, attempt: Attempt) -> None:
        for policy in self._wait:
            policy.wait(attempt)

    async def wait_async(self, attempt: Attempt) -> None:
        for policy in self._wait:
            await policy.wait_async(attempt)

    # --- after ------------------------------------------------------------------------

    def succeed(self, attempt: Attempt, response: Response, headers: Mapping[str, str]) -> Response:
        """The reply, through every policy on the way back (the last policy first)."""
        for succeeded in self._succeeded:
            response = succeeded(attempt, response, headers)
        return response

    def fail(self, attempt: Attempt, error: BaseException) -> None:
        """A failed attempt, reported to every policy (the caller decides what is next)."""
        for failed in self._failed:
            failed(attempt, error)

    def abandon(self, attempt: Attempt, partial: Response) -> None:
        """A stream the caller closed early: what arrived is reported, not as an error."""
        for abandoned in self._abandoned:
            abandoned(attempt, partial)

    def flush(self) -> None:
        """Write out what the policies still hold (the call log's queued records)."""
        for policy in self.policies:
            policy.flush()

    def store(self) -> Store:
        """The client's store (spend, the sqlite response cache, conversations), opened once."""
        return self.opened_store()
