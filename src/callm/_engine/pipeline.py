"""The policies around each call, in one place: routing, hooks, budget, cost, log, tracing.

The clients call :meth:`Pipeline.begin` before an attempt, :meth:`Pipeline.succeed` with
its Response and :meth:`Pipeline.fail` with its error; the only I/O left to them is
sending and the rate limiter's wait. Each policy is optional and costs nothing when off.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .._core.errors import BudgetExceededError, CallmError, RateLimitError
from .._core.types import Request, Response, Usage
from .._policies.routing import Routes
from .send import Call

if TYPE_CHECKING:
    from decimal import Decimal


logger = logging.getLogger("callm")


@dataclass(frozen=True, slots=True)
class CallInfo:
    """What hooks see of a call: the model ("provider/model"), the request, the call's tags."""

    model: str
    request: Request
    tags: Mapping[str, str]
    streamed: bool
    # The conversation the call belongs to (set by Client.conversation), for the call log.
    conversation_id: str | None = None


BeforeHook = Callable[[CallInfo], Request | None]
AfterHook = Callable[[CallInfo, Response], None]
ErrorHook = Callable[[CallInfo, BaseException], None]


@dataclass(frozen=True, slots=True)
class Budget:
    """A spend limit in USD for the client, and per tag value (e.g. ``{"user": {"u42": 1}}``).

    Spend is kept in the store, so a restart does not reset it. A call is refused before it
    is sent when the spend so far plus its estimated cost would pass a limit.
    """

    limit: Decimal | None = None
    per_tag: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)

    def scopes(self, tags: Mapping[str, str]) -> list[tuple[str, Decimal]]:
        """The (scope, limit) pairs a call with these tags is charged to."""
        from decimal import Decimal  # decimal costs ~5 ms to import: only budgets need it

        scopes = [("client", Decimal(self.limit))] if self.limit is not None else []
        for tag, limits in self.per_tag.items():
            value = tags.get(tag)
            if value is not None and value in limits:
                scopes.append((f"{tag}={value}", Decimal(limits[value])))
        return scopes


@dataclass(slots=True)
class Attempt:
    """One attempt of a call, as it goes through the pipeline."""

    info: CallInfo
    call: Call
    tried: tuple[str, ...]
    log: bool
    span: Any = None
    reservation: Any = None
    cache_key: str | None = None


@dataclass
class Pipeline:
    """A client's policies. Built once per client; shared by all its threads and tasks."""

    routes: Routes = field(default_factory=Routes)
    before_request: Sequence[BeforeHook] = ()
    after_response: Sequence[AfterHook] = ()
    on_error: Sequence[ErrorHook] = ()
    budget: Budget | None = None
    limiter: Any = None  # callm._ratelimit.RateLimiter
    log: bool = True
    tracing: Any = None  # callm._tracing.Tracing, or None when OpenTelemetry is absent
    cache: Any = None  # callm._cache.CacheStore
    store_path: Any = None
    _store: Any = field(default=None, repr=False)
    _calllog: Any = field(default=None, repr=False)
    _spent: dict[str, Decimal] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- before -----------------------------------------------------------------------

    def hooks_before(self, info: CallInfo) -> CallInfo:
        """Run the before-request hooks; each may return a changed Request or raise to veto."""
        for hook in self.before_request:
            changed = hook(info)
            if changed is not None:
                info = replace(info, request=changed)
        return info

    def check_budget(self, info: CallInfo, estimate: Decimal | None) -> None:
        """Refuse the call before it is sent when it would pass a spend limit."""
        if self.budget is None:
            return
        for scope, limit in self.budget.scopes(info.tags):
            spent = self.spent(scope)
            if spent + (estimate or 0) > limit or spent >= limit:
                raise BudgetExceededError(
                    f"the {scope} budget of ${limit} is spent (${spent} so far"
                    + (f", this call ~${estimate:.6f}" if estimate else "")
                    + "): raise the limit or wait for a new budget"
                )

    def cached(self, attempt: Attempt) -> Response | None:
        """A cached reply for this attempt, passed through log, trace and hooks; else None."""
        if attempt.cache_key is None:
            return None
        found = self.cache.get(attempt.cache_key)
        if found is None:
            return None
        from .._policies.cache import hit

        response = hit(found, attempt.info.model)
        if attempt.span is not None:
            attempt.span.finish(response, cached=True)
        if attempt.log:
            self._write(attempt, response, None, cached=True)
        for hook in self.after_response:
            hook(attempt.info, response)
        return response

    def start_span(self, attempt: Attempt) -> None:
        if self.tracing is not None:
            attempt.span = self.tracing.start_span(
                attempt.call.endpoint.provider,
                attempt.info.request,
                attempt.call.endpoint.base_url,
            )

    # --- after ------------------------------------------------------------------------

    def succeed(self, attempt: Attempt, response: Response, headers: Mapping[str, str]) -> Response:
        """Cost, spend, log, trace and after-hooks for a successful attempt."""
        endpoint = attempt.call.endpoint
        model = response.model or attempt.info.request.model
        cost = price(endpoint.provider, model, response.usage, endpoint.protocol)
        _complete(response, cost, attempt.tried)
        if attempt.cache_key is not None:
            self.cache.put(attempt.cache_key, response)
        if self.limiter is not None:
            self._settle(attempt, response, headers)
        if self.budget is not None and cost:
            self._charge(attempt.info.tags, cost)
        if attempt.span is not None:
            attempt.span.finish(response)
        if attempt.log:
            self._write(attempt, response, None)
        for hook in self.after_response:
            hook(attempt.info, response)
        return response

    def fail(self, attempt: Attempt, error: BaseException) -> None:
        """Log, trace and error hooks for a failed attempt (the caller decides what's next)."""
        if self.limiter is not None:
            self._limited(attempt, error)
        if attempt.span is not None:
            attempt.span.fail(error, getattr(error, "partial", None))
        if attempt.log:
            self._write(attempt, getattr(error, "partial", None), error)
        for hook in self.on_error:
            hook(attempt.info, error)

    def abandon(self, attempt: Attempt, partial: Response) -> None:
        """A stream the caller closed early: what arrived is logged, the span closed."""
        if attempt.span is not None:
            attempt.span.abandon(partial)
        if attempt.log:
            self._write(attempt, partial, None)

    def _limited(self, attempt: Attempt, error: BaseException) -> None:
        """Teach the rate limiter what a failed attempt showed: headers, and a real 429."""
        provider, _, model = attempt.info.model.partition("/")
        headers = getattr(error, "headers", None)
        if headers:
            self.limiter.observe(provider, model, headers)
        if isinstance(error, RateLimitError) and error.status_code is not None:
            self.limiter.on_rate_limited(provider, model, error.retry_after or 0.0)

    def _settle(self, attempt: Attempt, response: Response, headers: Mapping[str, str]) -> None:
        if attempt.reservation is not None:
            attempt.reservation.settle(response.usage.total_tokens)
        provider, _, model = attempt.info.model.partition("/")
        self.limiter.observe(provider, model, headers)

    # --- storage ----------------------------------------------------------------------

    def spent(self, scope: str) -> Decimal:
        """Spend so far in a budget scope: read from the store once, then kept up to date."""
        with self._lock:
            total = self._spent.get(scope)
            if total is None:
                total = self._spent[scope] = self.store().spend(scope)
            return total

    def _charge(self, tags: Mapping[str, str], cost: Decimal) -> None:
        assert self.budget is not None
        store = self.store()
        for scope, _ in self.budget.scopes(tags):
            self.spent(scope)  # loads the running total before adding to it
            with self._lock:
                self._spent[scope] += cost
            store.add_spend(scope, cost)

    def store(self) -> Any:
        if self._store is None:
            from .._store import Store

            self._store = Store(self.store_path)
        return self._store

    def _write(
        self,
        attempt: Attempt,
        response: Response | None,
        error: BaseException | None,
        *,
        cached: bool = False,
    ) -> None:
        """Queue the call's record; a writer thread builds and stores it off the call path."""
        try:
            if self._calllog is None:
                self._calllog = shared_call_log(self.store_path)
            info = attempt.info
            provider, _, model = info.model.partition("/")
            self._calllog.log_call(
                info.request,
                provider=provider,
                model=model,
                response=response,
                error=error,
                tags=info.tags,
                conversation_id=info.conversation_id,
                streamed=info.streamed,
                cached=cached,
            )
        except Exception:  # the log must never break a call
            logger.warning("callm: could not write the call log", exc_info=True)

    def flush(self) -> None:
        """Write out every queued log record."""
        if self._calllog is not None:
            self._calllog.flush()


_set = object.__setattr__


def _complete(response: Response, cost: Decimal | None, tried: tuple[str, ...]) -> None:
    """Fill in cost and tried on a Response made moments ago for this call.

    No one else holds it yet, so setting the two fields in place is safe, and it saves
    building a second Response (``dataclasses.replace``) on every call.
    """
    _set(response, "cost", cost)
    _set(response, "tried", tried)


def price(provider: str, model: str, usage: Usage, protocol: str | None = None) -> Decimal | None:
    """The cost of a call, None when the price is unknown."""
    from .._policies.cost import cost_of

    return cost_of(provider, model, usage, protocol=protocol)


_warming: list[bool] = []


def warm_prices() -> None:
    """Load the price table once, in the background, so the first reply does not wait."""
    if _warming:
        return
    _warming.append(True)
    import threading

    from .._policies.cost import warm_up

    threading.Thread(target=warm_up, name="callm-prices", daemon=True).start()


_call_logs: dict[str, Any] = {}


def shared_call_log(path: Any) -> Any:
    """One writer per database file, shared by every client of the process."""
    from .._policies.calllog import CallLog

    key = str(path)
    log = _call_logs.get(key)
    if log is None:
        log = _call_logs[key] = CallLog(path)
    return log


def estimate_cost(info: CallInfo, provider: str) -> Decimal | None:
    """A cost estimate made before sending: the prompt's tokens plus max_tokens of output."""
    from .._policies.tokens import estimate

    tokens = estimate(info.request).tokens
    usage = Usage(input_tokens=tokens, output_tokens=info.request.max_tokens or 0)
    return price(provider, info.request.model, usage)


def no_policy_errors() -> tuple[type[CallmError], ...]:
    """Errors raised by policies themselves: never a reason to fall back to another model."""
    return (BudgetExceededError,)
