"""Client-side rate limits: the pure core driven with explicit times, the header parsers,
pattern matching, and the waiting shells under real thread and task concurrency."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from datetime import UTC, datetime

import pytest

from callm import RateLimitError
from callm._policies.ratelimit import (
    Limiter,
    RateLimit,
    RateLimiter,
    ServerLimit,
    parse_duration,
    parse_rate_headers,
    parse_reset,
)

WALL = datetime(2025, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()


def waits(limiter: Limiter, count: int, now: float = 0.0, tokens: int = 0) -> list[float]:
    return [limiter.reserve(tokens, now) for _ in range(count)]


# --- configuration ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs", [{"rpm": 0}, {"tpm": -5}, {"rpm": float("inf")}, {"max_wait": -1}, {"burst": 0}]
)
def test_rate_limit_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RateLimit"):
        RateLimit(**kwargs)


# --- header parsing -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("12ms", 0.012),
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("1h2m3.5s", 3723.5),
        ("17.5s", 17.5),
        ("250us", 0.00025),
        ("0s", 0.0),
        ("55", 55.0),
        (" 2s ", 2.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "s", "abc", "5x", "1s2", "1 s", "-"])
def test_parse_duration_refuses_garbage(text: str) -> None:
    assert parse_duration(text) is None


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("2025-01-01T12:00:30Z", 30.0),
        ("2025-01-01T12:00:30.500Z", 30.5),
        ("2025-01-01T13:01:00+01:00", 60.0),
        ("2025-01-01T11:59:00Z", 0.0),  # already past: no wait, never negative
        ("6m0s", 360.0),
    ],
)
def test_parse_reset(text: str, seconds: float) -> None:
    assert parse_reset(text, WALL) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["2025-01-01T12:00:30", "tomorrow", ""])
def test_parse_reset_refuses_what_cannot_be_placed(text: str) -> None:
    assert parse_reset(text, WALL) is None


def test_openai_headers() -> None:
    limits = parse_rate_headers(
        {
            "x-ratelimit-limit-requests": "500",
            "x-ratelimit-remaining-requests": "499",
            "x-ratelimit-reset-requests": "120ms",
            "x-ratelimit-limit-tokens": "30000",
            "x-ratelimit-remaining-tokens": "29000",
            "x-ratelimit-reset-tokens": "2s",
        },
        WALL,
    )
    assert limits is not None
    assert limits.requests == ServerLimit(500, 499, pytest.approx(0.12))
    assert limits.tokens == ServerLimit(30000, 29000, 2.0)


def test_azure_headers_without_limits_or_with_minus_one() -> None:
    remaining_only = parse_rate_headers(
        {"x-ratelimit-remaining-requests": "79", "x-ratelimit-remaining-tokens": "61353"}, WALL
    )
    assert remaining_only is not None
    assert remaining_only.requests == ServerLimit(None, 79, None)
    assert remaining_only.tokens == ServerLimit(None, 61353, None)
    # Azure's "not reported": -1 limit and remaining, 0 reset (and a 0 limit) carry nothing.
    not_reported = {
        "x-ratelimit-limit-tokens": "-1",
        "x-ratelimit-remaining-tokens": "-1",
        "x-ratelimit-reset-tokens": "0",
        "x-ratelimit-limit-requests": "0",
    }
    assert parse_rate_headers(not_reported, WALL) is None


def test_anthropic_headers() -> None:
    limits = parse_rate_headers(
        {
            "anthropic-ratelimit-requests-limit": "50",
            "anthropic-ratelimit-requests-remaining": "49",
            "anthropic-ratelimit-requests-reset": "2025-01-01T12:00:01Z",
            "anthropic-ratelimit-tokens-limit": "40000",
            "anthropic-ratelimit-tokens-remaining": "38000",
            "anthropic-ratelimit-tokens-reset": "2025-01-01T12:00:03Z",
            "anthropic-ratelimit-input-tokens-remaining": "1",
        },
        WALL,
    )
    assert limits is not None
    assert limits.requests == ServerLimit(50, 49, 1.0)
    assert limits.tokens == ServerLimit(40000, 38000, 3.0)  # the combined limit wins


def test_anthropic_separate_input_and_output_limits_take_the_tighter() -> None:
    limits = parse_rate_headers(
        {
            "anthropic-ratelimit-input-tokens-limit": "400000",
            "anthropic-ratelimit-input-tokens-remaining": "390000",
            "anthropic-ratelimit-output-tokens-limit": "80000",
            "anthropic-ratelimit-output-tokens-remaining": "1000",
            "anthropic-ratelimit-output-tokens-reset": "2025-01-01T12:00:45Z",
        },
        WALL,
    )
    assert limits is not None
    assert limits.requests is None
    assert limits.tokens == ServerLimit(80000, 1000, 45.0)


def test_no_rate_limit_headers() -> None:
    assert parse_rate_headers({"content-type": "application/json"}, WALL) is None
    # Only responses that say what remains are read (every provider that reports sends it).
    assert parse_rate_headers({"x-ratelimit-limit-requests": "60"}, WALL) is None


def test_case_insensitive_transport_headers() -> None:
    import urllib3

    headers = urllib3.HTTPHeaderDict(
        {"X-RateLimit-Limit-Requests": "60", "X-RateLimit-Remaining-Requests": "7"}
    )
    limits = parse_rate_headers(headers, WALL)
    assert limits is not None
    assert limits.requests == ServerLimit(60, 7, None)


# --- the core: pacing, fairness, settling -------------------------------------------------


def test_burst_then_strictly_increasing_waits() -> None:
    limiter = Limiter(RateLimit(rpm=600), now=0.0)  # 10 a second, a burst of 10
    got = waits(limiter, 15)
    assert got[:10] == [0.0] * 10
    assert got[10:] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])


def test_many_callers_over_the_limit_queue_fairly() -> None:
    limiter = Limiter(RateLimit(rpm=60, tpm=6000, max_wait=1e9), now=0.0)
    got = waits(limiter, 50, tokens=30)
    assert got[0] == 0.0
    assert all(b > a for a, b in itertools.pairwise(got))


def test_capacity_returns_after_idle() -> None:
    limiter = Limiter(RateLimit(rpm=600), now=0.0)
    waits(limiter, 15)
    assert limiter.reserve(0, now=100.0) == 0.0


def test_a_request_larger_than_the_burst_goes_at_once_from_idle() -> None:
    limiter = Limiter(RateLimit(tpm=6000), now=0.0)  # 100 tokens a second, burst of 100
    assert limiter.reserve(1000, now=0.0) == 0.0
    # ...and the debt it left is repaid before the next, smaller one: (900 + 50) / 100.
    assert limiter.reserve(50, now=0.0) == pytest.approx(9.5)


@pytest.mark.parametrize(("actual", "next_wait"), [(100, 0.5), (1000, 9.5), (2000, 19.5)])
def test_settle_corrects_the_token_estimate(actual: int, next_wait: float) -> None:
    limiter = Limiter(RateLimit(tpm=6000), now=0.0)
    assert limiter.reserve(1000, now=0.0) == 0.0
    limiter.settle(1000, actual, now=0.0)
    assert limiter.reserve(50, now=0.0) == pytest.approx(next_wait)


def test_settle_never_fills_above_the_burst() -> None:
    limiter = Limiter(RateLimit(tpm=6000), now=0.0)
    limiter.reserve(10, now=0.0)
    limiter.settle(10, 0, now=0.0)
    limiter.settle(5000, 0, now=0.0)  # a wildly high estimate refunds no more than capacity
    assert limiter.reserve(100, now=0.0) == 0.0
    assert limiter.reserve(100, now=0.0) == pytest.approx(1.0)


def test_release_gives_a_reservation_back() -> None:
    limiter = Limiter(RateLimit(rpm=60, max_wait=100), now=0.0)
    assert waits(limiter, 3) == pytest.approx([0.0, 1.0, 2.0])
    limiter.release(0, now=0.0)
    assert limiter.reserve(0, now=0.0) == pytest.approx(2.0)


def test_wait_beyond_max_wait_raises_and_reserves_nothing() -> None:
    limiter = Limiter(RateLimit(rpm=60, max_wait=5), now=0.0, key="openai/gpt-4o")
    assert waits(limiter, 6) == pytest.approx([0, 1, 2, 3, 4, 5])
    with pytest.raises(RateLimitError) as caught:
        limiter.reserve(0, now=0.0)
    error = caught.value
    assert error.retry_after == pytest.approx(6.0)
    assert error.status_code is None
    assert error.code == "client_rate_limit"
    assert error.provider == "openai"
    assert "openai/gpt-4o" in str(error)
    assert "max_wait=5" in str(error)
    # The refused call took nothing: the next one sees the same queue.
    with pytest.raises(RateLimitError) as again:
        limiter.reserve(0, now=0.0)
    assert again.value.retry_after == pytest.approx(6.0)
    assert limiter.reserve(0, now=1.0) == pytest.approx(5.0)


def test_negative_tokens_are_refused() -> None:
    with pytest.raises(ValueError, match="tokens"):
        Limiter(RateLimit(), now=0.0).reserve(-1, now=0.0)


# --- the core: adapting to headers and 429s -----------------------------------------------


def test_a_lower_server_limit_replaces_the_configured_one() -> None:
    limiter = Limiter(RateLimit(rpm=6000, tpm=1_000_000), now=0.0)
    limiter.observe(
        {
            "x-ratelimit-limit-requests": "60",
            "x-ratelimit-remaining-requests": "59",
            "x-ratelimit-limit-tokens": "5000000",
            "x-ratelimit-remaining-tokens": "4999000",
        },
        0.0,
        WALL,
    )
    assert limiter.rpm == 60  # the provider's tighter limit
    assert limiter.tpm == 1_000_000  # the user's tighter limit
    assert waits(limiter, 3) == pytest.approx([0.0, 1.0, 2.0])


def test_limits_are_learned_where_none_are_configured() -> None:
    limiter = Limiter(RateLimit(), now=0.0)
    assert waits(limiter, 5) == [0.0] * 5
    limiter.observe(
        {
            "anthropic-ratelimit-requests-limit": "120",
            "anthropic-ratelimit-requests-remaining": "100",
            "anthropic-ratelimit-tokens-limit": "60000",
        },
        0.0,
        WALL,
    )
    assert (limiter.rpm, limiter.tpm) == (120, 60000)
    assert waits(limiter, 4) == pytest.approx([0.0, 0.0, 0.5, 1.0])


def test_a_server_with_less_remaining_lowers_the_bucket() -> None:
    limiter = Limiter(RateLimit(rpm=600), now=0.0)
    limiter.observe({"x-ratelimit-remaining-requests": "0"}, 0.0, WALL)
    assert waits(limiter, 2) == pytest.approx([0.1, 0.2])
    # More remaining than the bucket holds changes nothing: the burst still bounds it.
    fresh = Limiter(RateLimit(rpm=600), now=0.0)
    fresh.observe({"x-ratelimit-remaining-requests": "499"}, 0.0, WALL)
    assert waits(fresh, 11)[-1] == pytest.approx(0.1)


def test_remaining_counts_reservations_already_queued() -> None:
    limiter = Limiter(RateLimit(rpm=600), now=0.0)
    waits(limiter, 12)  # the bucket is spoken for until t = 0.2
    limiter.observe({"x-ratelimit-remaining-requests": "0"}, 0.0, WALL)
    # The server's 0 is compared with what is left now net of the queue (-2): no change.
    assert limiter.reserve(0, now=0.0) == pytest.approx(0.3)


def test_exhausted_budget_without_a_rate_pauses_until_the_reset() -> None:
    limiter = Limiter(RateLimit(), now=0.0)
    limiter.observe(
        {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "2s"}, 10.0, WALL
    )
    assert limiter.reserve(0, now=10.0) == pytest.approx(2.0)
    assert limiter.reserve(0, now=13.0) == 0.0


def test_not_adaptive_ignores_headers() -> None:
    limiter = Limiter(RateLimit(rpm=6000, adaptive=False), now=0.0)
    limiter.observe(
        {"x-ratelimit-limit-requests": "60", "x-ratelimit-remaining-requests": "0"}, 0.0, WALL
    )
    assert limiter.rpm == 6000
    assert limiter.reserve(0, now=0.0) == 0.0


def test_pause_drains_and_spreads_the_restart() -> None:
    limiter = Limiter(RateLimit(rpm=600, max_wait=100), now=0.0)
    limiter.pause_until(5.0, now=0.0)
    assert waits(limiter, 3) == pytest.approx([5.1, 5.2, 5.3])
    unpaced = Limiter(RateLimit(max_wait=100), now=0.0)
    unpaced.pause_until(5.0, now=1.0)
    assert unpaced.reserve(0, now=1.0) == pytest.approx(4.0)
    assert unpaced.reserve(0, now=6.0) == 0.0


# --- the registry -------------------------------------------------------------------------


def test_most_specific_pattern_wins() -> None:
    everything, openai, exact, anthropic = (RateLimit(rpm=n) for n in (1, 2, 3, 4))
    limits = RateLimiter(
        {"*": everything, "openai/*": openai, "openai/gpt-4o": exact, "anthropic": anthropic}
    )

    def limit_of(provider: str, model: str) -> RateLimit:
        limiter = limits.limiter_for(provider, model)
        assert limiter is not None
        return limiter.limit

    assert limit_of("openai", "gpt-4o") is exact
    assert limit_of("openai", "gpt-4o-mini") is openai
    assert limit_of("anthropic", "claude-sonnet-4-5") is anthropic
    assert limit_of("openrouter", "meta-llama/llama-3-70b") is everything


def test_each_model_has_its_own_limiter_unless_shared() -> None:
    limits = RateLimiter({"openai/*": RateLimit(rpm=60), "groq/*": RateLimit(rpm=60, shared=True)})
    first = limits.limiter_for("openai", "a")
    assert first is limits.limiter_for("openai", "a")
    assert first is not limits.limiter_for("openai", "b")
    assert limits.limiter_for("groq", "a") is limits.limiter_for("groq", "b")
    assert limits.limiter_for("anthropic", "claude") is None


def test_a_single_rate_limit_applies_everywhere() -> None:
    limits = RateLimiter(RateLimit(rpm=60))
    limiter = limits.limiter_for("anything", "at-all")
    assert limiter is not None
    assert limiter.rpm == 60


def test_unlimited_models_pass_straight_through() -> None:
    limits = RateLimiter({"openai/*": RateLimit(rpm=1, max_wait=0)})
    for _ in range(100):
        reservation = limits.acquire("anthropic", "claude", tokens=10**6)
        assert reservation.wait == 0.0
        reservation.settle(10**6)
    limits.observe("anthropic", "claude", {"x-ratelimit-remaining-requests": "0"})
    limits.on_rate_limited("anthropic", "claude", 100.0)
    assert limits.acquire("anthropic", "claude").wait == 0.0


def test_acquire_raises_at_once_when_the_wait_is_too_long() -> None:
    limits = RateLimiter({"openai/*": RateLimit(rpm=60, max_wait=0.5)})
    limits.acquire("openai", "gpt-4o")
    started = time.monotonic()
    with pytest.raises(RateLimitError, match="client-side rate limit"):
        limits.acquire("openai", "gpt-4o")
    assert time.monotonic() - started < 0.2


async def test_a_429_pauses_admissions() -> None:
    limits = RateLimiter(RateLimit(max_wait=1))
    limits.on_rate_limited("openai", "gpt-4o", retry_after=30)
    with pytest.raises(RateLimitError) as caught:
        await limits.acquire_async("openai", "gpt-4o")
    assert caught.value.retry_after == pytest.approx(30, abs=0.5)
    assert limits.acquire("openai", "gpt-4o-mini").wait == 0.0  # other models unaffected


def test_reservation_settles_once() -> None:
    limits = RateLimiter(RateLimit(tpm=6000, max_wait=100))
    reservation = limits.acquire("openai", "m", tokens=1000)
    reservation.settle(100)
    reservation.settle(100_000)  # ignored: already settled
    limiter = limits.limiter_for("openai", "m")
    assert limiter is not None
    assert limiter.reserve(50, time.monotonic()) == pytest.approx(0.5, abs=0.05)


def test_observe_through_the_registry() -> None:
    limits = RateLimiter(RateLimit())
    limits.observe(
        "openai", "m", {"x-ratelimit-limit-requests": "30", "x-ratelimit-remaining-requests": "29"}
    )
    limiter = limits.limiter_for("openai", "m")
    assert limiter is not None
    assert limiter.rpm == 30


# --- real concurrency ---------------------------------------------------------------------

# rpm=600 is 10 a second with a burst of 10: of 30 requests, the 10 first go at once and the
# k-th after them waits k / 10 s, so the last starts at 2.0 s — never earlier.
RPM, TOTAL, BURST = 600, 30, 10
EXPECTED = (TOTAL - BURST) / (RPM / 60)


def assert_paced(starts: list[float], began: float, elapsed: float) -> None:
    assert len(starts) == TOTAL
    offsets = sorted(s - began for s in starts)
    for k, offset in enumerate(offsets[BURST:], start=1):
        assert offset >= k / (RPM / 60) - 0.01, (k, offset)
    assert EXPECTED - 0.01 <= elapsed < EXPECTED + 0.8


def test_threads_share_one_limit() -> None:
    limits = RateLimiter({"fake/*": RateLimit(rpm=RPM)})
    starts: list[float] = []
    remaining = iter(range(TOTAL))
    lock = threading.Lock()

    def worker() -> None:
        while True:
            with lock:
                if next(remaining, None) is None:
                    return
            limits.acquire("fake", "model", tokens=10).settle(10)
            with lock:
                starts.append(time.monotonic())

    began = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert_paced(starts, began, time.monotonic() - began)


async def test_tasks_share_one_limit() -> None:
    limits = RateLimiter({"fake/*": RateLimit(rpm=RPM)})
    starts: list[float] = []

    async def one() -> None:
        (await limits.acquire_async("fake", "model", tokens=10)).settle(10)
        starts.append(time.monotonic())

    began = time.monotonic()
    await asyncio.gather(*(one() for _ in range(TOTAL)))
    assert_paced(starts, began, time.monotonic() - began)


async def test_a_cancelled_wait_gives_its_place_back() -> None:
    limits = RateLimiter(RateLimit(rpm=60, max_wait=10))
    await limits.acquire_async("fake", "model")  # the burst of one
    waiting = asyncio.create_task(limits.acquire_async("fake", "model"))
    await asyncio.sleep(0.01)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    limiter = limits.limiter_for("fake", "model")
    assert limiter is not None
    # Only the first request is still accounted for: the next waits ~1 s, not ~2 s.
    assert limiter.reserve(0, time.monotonic()) == pytest.approx(1.0, abs=0.1)
