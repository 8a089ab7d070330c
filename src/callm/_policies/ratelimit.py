"""Client-side rate limits: wait for capacity instead of failing with a 429.

One :class:`RateLimiter` belongs to a client and is shared by all its threads and tasks.
It maps ``provider/model`` patterns to :class:`RateLimit` settings and keeps one
:class:`Limiter` per concrete model (or per pattern, with ``shared=True``)::

    limiter = RateLimiter({"openai/*": RateLimit(rpm=500, tpm=200_000), "*": RateLimit()})
    reservation = limiter.acquire("openai", "gpt-4o-mini", tokens=1_200)   # may sleep
    ...send the request...
    limiter.observe("openai", "gpt-4o-mini", response_headers)
    reservation.settle(actual_tokens)

How a :class:`Limiter` decides (the pure core; every method takes ``now`` explicitly):

- Requests and tokens each have a **token bucket** refilled at ``limit / 60`` a second and
  holding at most ``burst`` seconds of it. A caller needing ``n`` waits until the bucket
  holds ``min(n, capacity)`` — so one request larger than the burst still goes at once
  from idle — and then takes ``n``, which may leave the bucket in debt.
- Reservations are taken **at their admission time**, under a lock: the next caller is
  admitted after the previous one, so N callers over the limit get strictly increasing
  waits (first come, first served; no thundering herd when capacity returns).
- The provider's ``x-ratelimit-*`` (OpenAI, Azure, most OpenAI-compatible servers) and
  ``anthropic-ratelimit-*`` headers **adapt** the buckets: a server limit below the
  configured one (or where none is configured) becomes the rate, and a server's
  ``remaining`` below what the bucket believes lowers the bucket. Negative values
  (Azure's ``-1`` for "not reported") are ignored.
- A 429 drains the buckets and, with a ``retry-after``, pauses admissions until then.

When the wait would exceed ``RateLimit.max_wait`` nothing is reserved and
:class:`callm.RateLimitError` is raised at once — the same exception a provider's 429
becomes, so one ``except`` handles both — with ``status_code=None``,
``code="client_rate_limit"`` and ``retry_after`` set to the wait that would have been
needed. ``status_code=None`` also keeps the client's retry loop from retrying it.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING

from .._core.errors import RateLimitError
from .base import Attempt, Policy, StateKey

if TYPE_CHECKING:
    from .._core.types import Response

SECONDS_PER_MINUTE = 60.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit:
    """Client-side limits for a model: requests and tokens a minute, and how long to wait.

    ``rpm`` / ``tpm``: requests / tokens a minute (None: no limit of that kind unless the
    provider's headers report one). ``max_wait``: the longest a call waits for capacity
    before :class:`callm.RateLimitError` is raised. ``burst``: how many seconds' worth of
    the limit may go at once after an idle spell — the default of 1 s smooths traffic the
    way providers enforce it (a limit of 600 a minute is policed as 10 a second); 60 lets a
    whole minute's allowance go at once. ``adaptive``: follow the provider's rate-limit
    headers. ``shared``: one budget for every model the pattern matches instead of one
    per model.
    """

    rpm: float | None = None
    tpm: float | None = None
    max_wait: float = 60.0
    burst: float = 1.0
    adaptive: bool = True
    shared: bool = False

    def __post_init__(self) -> None:
        for name in ("rpm", "tpm"):
            value = getattr(self, name)
            if value is not None and not (value > 0 and math.isfinite(value)):
                raise ValueError(f"RateLimit.{name} must be a positive number or None")
        if not self.max_wait >= 0:
            raise ValueError("RateLimit.max_wait must be >= 0")
        if not (self.burst > 0 and math.isfinite(self.burst)):
            raise ValueError("RateLimit.burst must be a positive number of seconds")


# --- reading the provider's headers -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ServerLimit:
    """One kind of limit (requests or tokens) as a response's headers reported it.

    ``limit`` is per minute; ``reset_s`` is the seconds until the limit is fully
    replenished. Each is None when the header was missing or meaningless (e.g. ``-1``).
    """

    limit: float | None = None
    remaining: float | None = None
    reset_s: float | None = None


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """The request and token limits a response reported (None where it said nothing)."""

    requests: ServerLimit | None = None
    tokens: ServerLimit | None = None


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(h|ms|m|s|us|µs|ns)")
_DURATION = re.compile(f"(?:{_DURATION_PART.pattern})+")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}


def parse_duration(text: str) -> float | None:
    """Seconds in a Go-style duration (``12ms``, ``1s``, ``6m0s``, ``1h2m3.5s``) or a bare
    number of seconds (``"55"``); None when ``text`` is neither."""
    text = text.strip()
    if text[-1:].isdigit():
        try:
            return float(text)
        except ValueError:
            return None
    if not _DURATION.fullmatch(text):
        return None
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def parse_reset(text: str, wall_now: float) -> float | None:
    """Seconds from ``wall_now`` (a ``time.time()``) until a reset given as a duration or an
    RFC 3339 timestamp (Anthropic's ``2025-01-01T12:00:30Z``); never negative."""
    seconds = parse_duration(text)
    if seconds is None:
        try:
            stamp = datetime.fromisoformat(text.strip())
        except ValueError:
            return None
        if stamp.tzinfo is None:
            return None  # a reset without a zone cannot be placed in time
        seconds = stamp.timestamp() - wall_now
    return max(0.0, seconds) if math.isfinite(seconds) else None


def _number(headers: Mapping[str, str], name: str) -> float | None:
    value = headers.get(name)
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    # Azure sends -1 for "not reported"; NaN and infinities carry nothing usable either.
    return number if number >= 0 and math.isfinite(number) else None


def _server_limit(
    headers: Mapping[str, str], names: tuple[str, str, str], wall_now: float
) -> ServerLimit | None:
    limit = _number(headers, names[0])
    remaining = _number(headers, names[1])
    reset_text = headers.get(names[2])
    reset = parse_reset(reset_text, wall_now) if reset_text is not None else None
    if limit == 0:
        limit = None  # a limit of 0 would block forever; it means "not reported"
    if limit is None and remaining is None:
        return None
    return ServerLimit(limit, remaining, reset)


def _openai_names(kind: str) -> tuple[str, str, str]:
    return (
        f"x-ratelimit-limit-{kind}",
        f"x-ratelimit-remaining-{kind}",
        f"x-ratelimit-reset-{kind}",
    )


def _anthropic_names(kind: str) -> tuple[str, str, str]:
    prefix = f"anthropic-ratelimit-{kind}"
    return (f"{prefix}-limit", f"{prefix}-remaining", f"{prefix}-reset")


_OPENAI = (_openai_names("requests"), _openai_names("tokens"))
_ANTHROPIC_REQUESTS = _anthropic_names("requests")
_ANTHROPIC_TOKENS = tuple(_anthropic_names(k) for k in ("tokens", "input-tokens", "output-tokens"))
# Checked with ``in`` before anything is read: a missed ``get`` on urllib3's case-insensitive
# headers raises and catches a KeyError inside, and most responses carry no rate headers.
_ANTHROPIC_MARKERS = (_ANTHROPIC_REQUESTS, *_ANTHROPIC_TOKENS)


def parse_rate_headers(headers: Mapping[str, str], wall_now: float) -> ServerLimits | None:
    """The limits in a response's ``x-ratelimit-*`` or ``anthropic-ratelimit-*`` headers,
    or None when it has none. Header names are looked up in lower case; a response that
    reports no ``remaining`` count is taken to report nothing."""
    requests = tokens = None
    if _OPENAI[0][1] in headers or _OPENAI[1][1] in headers:
        requests = _server_limit(headers, _OPENAI[0], wall_now)
        tokens = _server_limit(headers, _OPENAI[1], wall_now)
    elif any(names[1] in headers for names in _ANTHROPIC_MARKERS):
        requests = _server_limit(headers, _ANTHROPIC_REQUESTS, wall_now)
        tokens = _anthropic_tokens(headers, wall_now)
    if requests is None and tokens is None:
        return None
    return ServerLimits(requests, tokens)


def _anthropic_tokens(headers: Mapping[str, str], wall_now: float) -> ServerLimit | None:
    """Anthropic's combined ``tokens`` limit (its most restrictive one in effect), else the
    tighter of the separate input and output limits."""
    combined, *separate = (_server_limit(headers, names, wall_now) for names in _ANTHROPIC_TOKENS)
    if combined is not None:
        return combined
    known = [s for s in separate if s is not None]
    if not known:
        return None
    return min(known, key=lambda s: math.inf if s.remaining is None else s.remaining)


# --- the pure core -----------------------------------------------------------------------


class _Bucket:
    """A token bucket whose state is "``level`` at time ``since``"; ``since`` may lie in the
    future, when reservations or a pause have claimed the time up to it."""

    __slots__ = ("burst", "capacity", "level", "per_minute", "rate", "since")

    def __init__(self, per_minute: float, burst: float, now: float) -> None:
        self.burst = burst
        self.per_minute = per_minute
        self.rate = per_minute / SECONDS_PER_MINUTE
        self.capacity = self.rate * burst
        self.level = self.capacity
        self.since = now

    def set_rate(self, per_minute: float, now: float) -> None:
        t = max(now, self.since)
        level = self.level_at(t)
        self.per_minute = per_minute
        self.rate = per_minute / SECONDS_PER_MINUTE
        self.capacity = self.rate * self.burst
        self.level, self.since = min(level, self.capacity), t

    def level_at(self, t: float) -> float:
        """The level at ``t >= since``: refilled at ``rate``, never above ``capacity``."""
        return min(self.capacity, self.level + (t - self.since) * self.rate)

    def ready_at(self, n: float, now: float) -> float:
        """The earliest time ``n`` may be taken: when the bucket holds ``min(n, capacity)``."""
        # Written out rather than through level_at(): this runs on every call.
        since, capacity = self.since, self.capacity
        t = now if now > since else since
        level = self.level + (t - since) * self.rate
        level = min(level, capacity)
        need = n if n < capacity else capacity
        return t if level >= need else t + (need - level) / self.rate

    def take(self, n: float, at: float) -> None:
        self.level, self.since = self.level_at(at) - n, at

    def give(self, n: float, now: float) -> None:
        """Return ``n`` (or charge it, when negative), never filling above capacity."""
        t = max(now, self.since)
        self.level, self.since = min(self.capacity, self.level_at(t) + n), t

    def cap(self, remaining: float, now: float) -> None:
        """Lower the bucket where the server reports less left now than the bucket holds
        net of the reservations already queued ahead."""
        t = max(now, self.since)
        level = self.level_at(t)
        excess = level - (t - now) * self.rate - remaining
        if excess > 0:
            self.level, self.since = level - excess, t

    def drain(self, until: float, now: float) -> None:
        """Empty the bucket and let it refill only from ``until`` on (after a 429)."""
        t = max(now, self.since)
        self.level, self.since = min(self.level_at(t), 0.0), max(t, until)


class Limiter:
    """The request and token budget of one model (or one shared pattern); thread-safe.

    Every method takes the current ``time.monotonic()`` as ``now``, so the logic can be
    driven and tested without a clock; :class:`RateLimiter` supplies the time and sleeps.
    """

    __slots__ = ("_lock", "_paused_until", "_requests", "_tokens", "key", "limit")

    def __init__(self, limit: RateLimit, now: float, key: str = "") -> None:
        self.limit = limit
        self.key = key
        self._lock = threading.Lock()
        self._paused_until = -math.inf
        self._requests = _Bucket(limit.rpm, limit.burst, now) if limit.rpm else None
        self._tokens = _Bucket(limit.tpm, limit.burst, now) if limit.tpm else None

    def __repr__(self) -> str:
        return f"Limiter({self.key!r}, rpm={self.rpm}, tpm={self.tpm})"

    @property
    def rpm(self) -> float | None:
        """The requests a minute in force (configured, or lowered by the provider's headers)."""
        return None if self._requests is None else self._requests.per_minute

    @property
    def tpm(self) -> float | None:
        """The tokens a minute in force (configured, or lowered by the provider's headers)."""
        return None if self._tokens is None else self._tokens.per_minute

    def reserve(self, tokens: int, now: float) -> float:
        """Reserve one request and ``tokens``; return the seconds to wait before sending.

        Raises :class:`callm.RateLimitError` (reserving nothing) when the wait would exceed
        ``max_wait``.
        """
        if tokens < 0:
            raise ValueError("tokens must be >= 0")
        with self._lock:
            requests, budget = self._requests, self._tokens
            at = now if now > self._paused_until else self._paused_until
            if requests is not None and (ready := requests.ready_at(1, now)) > at:
                at = ready
            if budget is not None and (ready := budget.ready_at(tokens, now)) > at:
                at = ready
            wait = at - now
            if wait > self.limit.max_wait:
                raise self._too_long(wait)
            if requests is not None:
                requests.take(1, at)
            if budget is not None:
                budget.take(tokens, at)
            return wait

    def settle(self, reserved_tokens: int, actual_tokens: int, now: float) -> None:
        """Correct a reservation's token estimate once the response's usage is known."""
        if self._tokens is not None and actual_tokens != reserved_tokens:
            with self._lock:
                self._tokens.give(reserved_tokens - actual_tokens, now)

    def release(self, reserved_tokens: int, now: float) -> None:
        """Give back a reservation that was never used (the caller was cancelled)."""
        with self._lock:
            if self._requests is not None:
                self._requests.give(1, now)
            if self._tokens is not None:
                self._tokens.give(reserved_tokens, now)

    def observe(self, headers: Mapping[str, str], now: float, wall_now: float) -> None:
        """Adapt to the rate-limit headers of a response (``wall_now``: ``time.time()``)."""
        if not self.limit.adaptive:
            return
        reported = parse_rate_headers(headers, wall_now)
        if reported is None:
            return
        with self._lock:
            if reported.requests is not None:
                self._requests = self._adapt(self._requests, self.limit.rpm, reported.requests, now)
            if reported.tokens is not None:
                self._tokens = self._adapt(self._tokens, self.limit.tpm, reported.tokens, now)

    def pause_until(self, until: float, now: float) -> None:
        """Admit nothing before ``until`` and restart the buckets empty from then (a 429)."""
        with self._lock:
            self._paused_until = max(self._paused_until, until)
            for bucket in (self._requests, self._tokens):
                if bucket is not None:
                    bucket.drain(until, now)

    def _adapt(
        self, bucket: _Bucket | None, configured: float | None, server: ServerLimit, now: float
    ) -> _Bucket | None:
        if server.limit is not None:
            # The provider knows its limit; the configured one may only lower it further.
            per_minute = min(configured or math.inf, server.limit)
            if bucket is None:
                bucket = _Bucket(per_minute, self.limit.burst, now)
            elif per_minute != bucket.per_minute:
                bucket.set_rate(per_minute, now)
        if server.remaining is not None:
            if bucket is not None:
                bucket.cap(server.remaining, now)
            elif server.remaining == 0 and server.reset_s:
                # No rate to pace by: all that is known is when the budget comes back.
                self._paused_until = max(self._paused_until, now + server.reset_s)
        return bucket

    def _too_long(self, wait: float) -> RateLimitError:
        limits = ", ".join(
            f"{name}={value:g}" for name, value in (("rpm", self.rpm), ("tpm", self.tpm)) if value
        )
        head = self.key.partition("/")[0]
        provider = None if not head or "*" in head else head
        return RateLimitError(
            f"client-side rate limit for {self.key or 'this model'} ({limits or 'paused'}) "
            f"would need a wait of {wait:.1f} s, more than max_wait={self.limit.max_wait:g} s; "
            "send fewer or smaller requests, or raise max_wait or the limit",
            retry_after=wait,
            provider=provider,
            code="client_rate_limit",
        )


# --- the client-level registry and its waiting shells -------------------------------------


class Reservation:
    """Capacity reserved for one call; :meth:`settle` it with the tokens actually used."""

    __slots__ = ("_limiter", "tokens", "wait")

    def __init__(self, limiter: Limiter | None, tokens: int, wait: float) -> None:
        self._limiter = limiter
        self.tokens = tokens
        self.wait = wait  # the seconds this call waited for capacity

    def __repr__(self) -> str:
        return f"Reservation(tokens={self.tokens}, wait={self.wait:.3f})"

    def settle(self, actual_tokens: int) -> None:
        """Charge the tokens the call really used instead of the estimate (once; later
        calls do nothing)."""
        limiter, self._limiter = self._limiter, None
        if limiter is not None:
            limiter.settle(self.tokens, actual_tokens, time.monotonic())


_UNLIMITED = Reservation(None, 0, 0.0)


def _normalise_pattern(pattern: str) -> str:
    # "openai" alone means every model of that provider.
    return pattern if "/" in pattern or pattern == "*" else f"{pattern}/*"


def _specificity(pattern: str) -> tuple[int, int]:
    # More literal characters win; among equals, fewer wildcards.
    wild = pattern.count("*") + pattern.count("?")
    return len(pattern) - wild, -wild


class RateLimiter:
    """The rate limits of one client, shared by all its threads and tasks.

    ``limits`` maps ``provider/model`` patterns (``*`` matches anything, ``"openai"`` means
    ``"openai/*"``) to a :class:`RateLimit`; the most specific matching pattern configures a
    model, and a model no pattern matches is not limited. A single :class:`RateLimit`
    applies to every model. ``RateLimiter({"*": RateLimit()})`` limits nothing up front and
    only follows what the providers' headers and 429s report.
    """

    def __init__(self, limits: Mapping[str, RateLimit] | RateLimit) -> None:
        if isinstance(limits, RateLimit):
            limits = {"*": limits}
        patterns = {_normalise_pattern(p): limit for p, limit in limits.items()}
        self._patterns = sorted(patterns.items(), key=lambda item: _specificity(item[0]))[::-1]
        self._limiters: dict[tuple[str, str], Limiter | None] = {}
        self._shared: dict[str, Limiter] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RateLimiter({dict(self._patterns)!r})"

    def limiter_for(self, provider: str, model: str) -> Limiter | None:
        """The :class:`Limiter` of a model, or None when no pattern matches it."""
        try:
            return self._limiters[provider, model]
        except KeyError:
            pass
        with self._lock:
            limiter = self._limiters.get((provider, model))
            if limiter is None and (provider, model) not in self._limiters:
                limiter = self._new_limiter(provider, model)
                self._limiters[provider, model] = limiter
            return limiter

    def _new_limiter(self, provider: str, model: str) -> Limiter | None:
        name = f"{provider}/{model}"
        for pattern, limit in self._patterns:
            if fnmatchcase(name, pattern):
                if not limit.shared:
                    return Limiter(limit, time.monotonic(), name)
                if pattern not in self._shared:
                    self._shared[pattern] = Limiter(limit, time.monotonic(), pattern)
                return self._shared[pattern]
        return None

    def acquire(self, provider: str, model: str, tokens: int = 0) -> Reservation:
        """Wait (sleeping this thread) until one request of ``tokens`` may be sent.

        ``tokens`` is the call's estimate (prompt tokens plus ``max_tokens``); settle the
        returned reservation with the real usage. Raises :class:`callm.RateLimitError` at
        once when the wait would exceed the limit's ``max_wait``.
        """
        limiter = self.limiter_for(provider, model)
        if limiter is None:
            return _UNLIMITED
        wait = limiter.reserve(tokens, time.monotonic())
        if wait > 0:
            try:
                time.sleep(wait)
            except BaseException:
                limiter.release(tokens, time.monotonic())
                raise
        return Reservation(limiter, tokens, wait)

    async def acquire_async(self, provider: str, model: str, tokens: int = 0) -> Reservation:
        """The async twin of :meth:`acquire`: waits with ``asyncio.sleep``, and a cancelled
        wait gives its reservation back."""
        limiter = self.limiter_for(provider, model)
        if limiter is None:
            return _UNLIMITED
        wait = limiter.reserve(tokens, time.monotonic())
        if wait > 0:
            import asyncio

            try:
                await asyncio.sleep(wait)
            except BaseException:
                limiter.release(tokens, time.monotonic())
                raise
        return Reservation(limiter, tokens, wait)

    def observe(self, provider: str, model: str, headers: Mapping[str, str]) -> None:
        """Adapt a model's limits to the rate-limit headers of a response (2xx or error)."""
        limiter = self.limiter_for(provider, model)
        if limiter is not None:
            limiter.observe(headers, time.monotonic(), time.time())

    def on_rate_limited(self, provider: str, model: str, retry_after: float | None) -> None:
        """Record a 429: drain the model's budget and admit nothing for ``retry_after`` s."""
        limiter = self.limiter_for(provider, model)
        if limiter is not None:
            now = time.monotonic()
            limiter.pause_until(now + max(0.0, retry_after or 0.0), now)


# --- the policy ---------------------------------------------------------------------------

_RESERVATION: StateKey[Reservation] = StateKey("rate limit reservation")
_DEFAULT_OUTPUT_GUESS = 1024  # output tokens to reserve when max_tokens is not given


class RateLimitPolicy(Policy):
    """Waits for capacity before each call goes, and learns from every answer's headers."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    def __repr__(self) -> str:
        return f"RateLimitPolicy({self.limiter!r})"

    def wait(self, attempt: Attempt) -> None:
        provider, model = attempt.provider_model
        reservation = self.limiter.acquire(provider, model, _tokens_wanted(attempt))
        attempt.put(_RESERVATION, reservation)

    async def wait_async(self, attempt: Attempt) -> None:
        provider, model = attempt.provider_model
        wanted = _tokens_wanted(attempt)
        attempt.put(_RESERVATION, await self.limiter.acquire_async(provider, model, wanted))

    def succeeded(
        self, attempt: Attempt, response: Response, headers: Mapping[str, str]
    ) -> Response:
        if attempt.cached:
            return response
        reservation = attempt.get(_RESERVATION)
        if reservation is not None and response.usage.reported:  # else the estimate stands
            reservation.settle(response.usage.total_tokens)
        provider, model = attempt.provider_model
        self.limiter.observe(provider, model, headers)
        return response

    def failed(self, attempt: Attempt, error: BaseException) -> None:
        """Teach the limiter what a failed attempt showed: headers, and a real 429."""
        provider, model = attempt.provider_model
        headers = getattr(error, "headers", None)
        if headers:
            self.limiter.observe(provider, model, headers)
        if isinstance(error, RateLimitError) and error.status_code is not None:
            self.limiter.on_rate_limited(provider, model, error.retry_after or 0.0)


def _tokens_wanted(attempt: Attempt) -> int:
    """Tokens a call may use, for token-per-minute limits: its prompt and its output cap."""
    from .tokens import estimate

    request = attempt.info.request
    return estimate(request).tokens + (request.max_tokens or _DEFAULT_OUTPUT_GUESS)
