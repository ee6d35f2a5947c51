"""The resilience primitives with a fake clock and seeded randomness: nothing here sleeps."""

from __future__ import annotations

import math
import random
from email.utils import formatdate
from typing import Any

import pytest

from mcp_server._errors import CircuitOpen, RateLimited
from mcp_server._model import IDEMPOTENT_METHODS, BreakerPolicy, RateLimit, RetryPolicy
from mcp_server._resilience import (
    RETRYABLE_STATUSES,
    CircuitBreaker,
    RetryBudget,
    TokenBucket,
    backoff_delay,
    may_retry_method,
    server_delay,
)

NOW = 1_700_000_000.0
"""A wall-clock epoch time for server_delay."""


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# --- which calls may be retried -------------------------------------------------------------------


def test_constants() -> None:
    assert frozenset({408, 429, 502, 503, 504}) == RETRYABLE_STATUSES
    assert "POST" not in IDEMPOTENT_METHODS and "PATCH" not in IDEMPOTENT_METHODS


@pytest.mark.parametrize(
    ("method", "without_key", "with_key"),
    [
        ("GET", True, True),
        ("HEAD", True, True),
        ("OPTIONS", True, True),
        ("PUT", True, True),
        ("DELETE", True, True),
        ("TRACE", True, True),
        ("POST", False, True),
        ("PATCH", False, True),
        ("CONNECT", False, False),
        ("get", True, True),
        ("post", False, True),
    ],
)
def test_may_retry_method(method: str, without_key: bool, with_key: bool) -> None:
    assert may_retry_method(method, RetryPolicy()) is without_key
    assert may_retry_method(method, RetryPolicy(idempotency_header="Idempotency-Key")) is with_key


# --- backoff ---------------------------------------------------------------------------------------


def test_backoff_stays_under_the_cap_and_averages_half_of_it() -> None:
    policy = RetryPolicy(backoff_base=0.25, backoff_max=8.0)
    rng = random.Random(42)
    samples = [backoff_delay(10, policy, rng) for _ in range(5000)]
    assert all(0.0 <= s <= 8.0 for s in samples)
    assert sum(samples) / len(samples) == pytest.approx(4.0, rel=0.05)
    assert max(samples) > 7.5  # the whole range is used, not just the middle


def test_backoff_ceiling_doubles_per_attempt() -> None:
    policy = RetryPolicy(backoff_base=0.25, backoff_max=8.0)
    rng = random.Random(7)
    means: list[float] = []
    for attempt in range(6):
        ceiling = min(8.0, 0.25 * 2**attempt)
        samples = [backoff_delay(attempt, policy, rng) for _ in range(2000)]
        assert all(0.0 <= s <= ceiling for s in samples)
        means.append(sum(samples) / len(samples))
        assert means[-1] == pytest.approx(ceiling / 2, rel=0.1)
    assert means == sorted(means)


def test_backoff_survives_absurd_attempts_and_zero_base() -> None:
    rng = random.Random(1)
    assert 0.0 <= backoff_delay(10_000, RetryPolicy(backoff_max=8.0), rng) <= 8.0
    assert backoff_delay(-1, RetryPolicy(backoff_base=0.25), rng) <= 0.25
    assert backoff_delay(3, RetryPolicy(backoff_base=0.0), rng) == 0.0


def test_backoff_is_deterministic_for_a_seed() -> None:
    policy = RetryPolicy()
    first = [backoff_delay(n, policy, random.Random(3)) for n in range(5)]
    again = [backoff_delay(n, policy, random.Random(3)) for n in range(5)]
    assert first == again


# --- server-requested delays -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        ("0", 0.0),
        ("  12 ", 12.0),
        ("\u00b2", None),  # a superscript two: str.isdigit() says yes, HTTP says no
        ("\u0663", None),  # an Arabic-Indic three
        ("-3", None),
        ("abc", None),
        ("", None),
        ("1.5", None),  # delta-seconds is 1*DIGIT
    ],
)
def test_retry_after_delta_seconds(value: str, expected: float | None) -> None:
    assert server_delay({"Retry-After": value}, NOW) == expected


def test_retry_after_http_date() -> None:
    ahead = formatdate(NOW + 120, usegmt=True)
    assert server_delay({"Retry-After": ahead}, NOW) == pytest.approx(120.0, abs=1.0)
    past = formatdate(NOW - 3600, usegmt=True)
    assert server_delay({"Retry-After": past}, NOW) == 0.0


def test_retry_after_obsolete_date_formats() -> None:
    # RFC 9110 §5.6.7: recipients accept RFC 850 and asctime dates too (asctime has no zone: UTC)
    assert server_delay({"Retry-After": "Sun Nov  6 08:51:37 1994"}, 784111777.0) == 120.0
    assert server_delay({"Retry-After": "Sunday, 06-Nov-94 08:51:37 GMT"}, 784111777.0) == 120.0


def test_ratelimit_reset_headers() -> None:
    assert server_delay({"X-RateLimit-Reset": str(int(NOW) + 30)}, NOW) == 30.0
    assert server_delay({"X-RateLimit-Reset": str(int(NOW) - 30)}, NOW) == 0.0
    assert server_delay({"X-RateLimit-Reset": "15"}, NOW) == 15.0
    assert server_delay({"RateLimit-Reset": "42"}, NOW) == 42.0
    assert server_delay({"X-RateLimit-Reset-After": "2.5"}, NOW) == 2.5
    assert server_delay({"X-RateLimit-Reset": "soon"}, NOW) is None
    assert server_delay({"X-RateLimit-Reset": "-5"}, NOW) is None


def test_retry_after_takes_precedence() -> None:
    headers = {"X-RateLimit-Reset": str(int(NOW) + 30), "Retry-After": "5"}
    assert server_delay(headers, NOW) == 5.0


def test_unparseable_retry_after_falls_back_to_reset() -> None:
    assert server_delay({"Retry-After": "later", "X-RateLimit-Reset": "9"}, NOW) == 9.0


def test_header_names_are_case_insensitive() -> None:
    assert server_delay({"retry-after": "3"}, NOW) == 3.0
    assert server_delay({"RETRY-AFTER": "3"}, NOW) == 3.0
    assert server_delay({"x-ratelimit-reset": "4"}, NOW) == 4.0
    assert server_delay({"ratelimit-RESET": "6"}, NOW) == 6.0


def test_absent_and_absurd_values() -> None:
    assert server_delay({}, NOW) is None
    assert server_delay({"Content-Type": "application/json"}, NOW) is None
    assert server_delay({"Retry-After": "9" * 400}, NOW) is None  # not finite: unparseable
    assert server_delay({"Retry-After": "Mon, 01 Jan 10000 00:00:00 GMT"}, NOW) is None


# --- retry budget ----------------------------------------------------------------------------------


def _withdraw_all(budget: RetryBudget) -> int:
    allowed = 0
    while budget.try_withdraw():
        allowed += 1
        assert allowed < 10_000
    return allowed


def test_budget_allows_ratio_of_first_attempts_plus_floor() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.2, clock=clock)
    for _ in range(100):
        budget.record_request()
    assert _withdraw_all(budget) == math.floor(0.2 * 100) + 3


def test_budget_ratio_is_not_fooled_by_float_rounding() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.29, min_retries=0, clock=clock)  # 0.29 * 100 == 28.999999999999996
    for _ in range(100):
        budget.record_request()
    assert _withdraw_all(budget) == 29


def test_budget_window_slides() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.5, window=10.0, clock=clock)
    for _ in range(10):
        budget.record_request()
    assert _withdraw_all(budget) == 5 + 3
    clock.advance(5.0)
    assert not budget.try_withdraw()  # still the same window
    clock.advance(5.0)
    # ten seconds on, the old first attempts and retries no longer count: only the floor is left
    assert _withdraw_all(budget) == 3
    budget.record_request()
    budget.record_request()
    assert _withdraw_all(budget) == 1  # floor(0.5 * 2) + 3 == 4, three already spent


def test_budget_with_ratio_zero_still_allows_the_floor() -> None:
    budget = RetryBudget(0.0, clock=FakeClock())
    for _ in range(1000):
        budget.record_request()
    assert _withdraw_all(budget) == 3


def test_budget_refused_retries_are_not_counted() -> None:
    clock = FakeClock()
    budget = RetryBudget(0.0, min_retries=1, clock=clock)
    assert budget.try_withdraw()
    for _ in range(5):
        assert not budget.try_withdraw()
    clock.advance(10.0)
    assert budget.try_withdraw()


# --- token bucket ----------------------------------------------------------------------------------


def test_bucket_burst_then_waits_of_one_interval_each() -> None:
    clock = FakeClock()
    bucket = TokenBucket(RateLimit(requests=2, per_seconds=1.0, burst=3, max_wait=100.0), connector="c", clock=clock)
    assert [bucket.reserve() for _ in range(3)] == [0.0, 0.0, 0.0]
    # tokens go negative: each queued caller waits one more interval (0.5 s) than the one before
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0.5, 1.0, 1.5, 2.0])


def test_bucket_refills_over_time_up_to_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(RateLimit(requests=10, per_seconds=10.0, burst=2), connector="c", clock=clock)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(1.0)  # token -1: free at t+1
    clock.advance(1.0)
    assert bucket.reserve() == pytest.approx(1.0)  # the queued one took the refilled token
    clock.advance(100.0)
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.0, 0.0, 1.0])  # capped at burst 2


def test_bucket_queued_reservation_shrinks_as_time_passes() -> None:
    clock = FakeClock()
    bucket = TokenBucket(RateLimit(requests=1, per_seconds=2.0), connector="c", clock=clock)
    assert bucket.reserve() == 0.0
    clock.advance(0.5)
    assert bucket.reserve() == pytest.approx(1.5)


def test_bucket_burst_defaults_to_requests() -> None:
    bucket = TokenBucket(RateLimit(requests=5, per_seconds=1.0), connector="c", clock=FakeClock())
    assert [bucket.reserve() for _ in range(5)] == [0.0] * 5
    assert bucket.reserve() == pytest.approx(0.2)


def test_bucket_refuses_a_wait_beyond_max_wait_without_reserving() -> None:
    clock = FakeClock()
    bucket = TokenBucket(RateLimit(requests=1, per_seconds=5.0, max_wait=10.0), connector="c", clock=clock)
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(5.0)
    assert bucket.reserve() == pytest.approx(10.0)  # exactly max_wait is still fine
    for _ in range(3):  # nothing is reserved by a refusal: every next caller sees the same wait
        with pytest.raises(RateLimited) as caught:
            bucket.reserve()
        assert caught.value.details == {"retry_after": 15}
    clock.advance(5.0)
    assert bucket.reserve() == pytest.approx(10.0)


def test_bucket_max_wait_override_only_tightens() -> None:
    clock = FakeClock()
    bucket = TokenBucket(RateLimit(requests=1, per_seconds=5.0, max_wait=10.0), connector="c", clock=clock)
    assert bucket.reserve(max_wait=0.0) == 0.0
    with pytest.raises(RateLimited) as caught:
        bucket.reserve(max_wait=2.0)  # e.g. what is left of the call's total timeout
    assert caught.value.details == {"retry_after": 5}
    assert bucket.reserve(max_wait=60.0) == pytest.approx(5.0)
    assert bucket.reserve(max_wait=60.0) == pytest.approx(10.0)
    with pytest.raises(RateLimited):
        bucket.reserve(max_wait=60.0)  # 15 s: the limit's own max_wait stays the bound


def test_bucket_negative_max_wait_means_no_waiting() -> None:
    bucket = TokenBucket(RateLimit(requests=1, per_seconds=5.0), connector="c", clock=FakeClock())
    assert bucket.reserve(max_wait=-1.0) == 0.0
    with pytest.raises(RateLimited):
        bucket.reserve(max_wait=-1.0)


def test_bucket_refusal_message_and_rounding() -> None:
    limit = RateLimit(requests=1000, per_seconds=60.0, burst=1, max_wait=0.1)
    bucket = TokenBucket(limit, connector="github", clock=FakeClock())
    assert bucket.reserve() == 0.0
    assert bucket.reserve() == pytest.approx(0.06)
    with pytest.raises(RateLimited) as caught:
        bucket.reserve()  # 0.12 s > 0.1 s
    error = caught.value
    assert error.error_code == "RATE_LIMITED"
    assert error.details == {"retry_after": 1}  # rounded up, at least 1
    assert "'github'" in error.message
    assert "1000 requests per 60 s" in error.message
    assert "No request was sent" in error.message


def test_bucket_message_singular() -> None:
    bucket = TokenBucket(RateLimit(requests=1, per_seconds=1.5, max_wait=0.0), connector="c", clock=FakeClock())
    bucket.reserve()
    with pytest.raises(RateLimited, match=r"1 request per 1\.5 s") as caught:
        bucket.reserve()
    assert caught.value.details == {"retry_after": 2}


# --- circuit breaker -------------------------------------------------------------------------------


def _breaker(clock: FakeClock, **policy: Any) -> CircuitBreaker:
    return CircuitBreaker(BreakerPolicy(**policy), connector="shaky", clock=clock)


def _open_breaker(clock: FakeClock, cooldown: float = 30.0) -> CircuitBreaker:
    breaker = _breaker(clock, consecutive_failures=2, cooldown=cooldown)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state == ("open" if cooldown else "half_open")
    return breaker


def test_breaker_opens_after_consecutive_failures() -> None:
    clock = FakeClock()
    breaker = _breaker(clock, consecutive_failures=3, min_calls=100)
    for _ in range(2):
        breaker.before_call()
        breaker.record_failure()
    assert breaker.state == "closed"
    breaker.before_call()
    breaker.record_failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen):
        breaker.before_call()


def test_breaker_success_resets_the_consecutive_count() -> None:
    breaker = _breaker(FakeClock(), consecutive_failures=3, min_calls=100)
    for _ in range(10):
        breaker.record_failure()
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state == "closed"


def test_breaker_neutral_outcomes_change_nothing_when_closed() -> None:
    breaker = _breaker(FakeClock(), consecutive_failures=3, min_calls=100)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_neutral()  # e.g. a 429 or a 400: neither resets nor adds to the count
    assert breaker.state == "closed"
    breaker.record_failure()
    assert breaker.state == "open"


def test_breaker_opens_on_failure_ratio_once_min_calls_seen() -> None:
    breaker = _breaker(FakeClock(), consecutive_failures=100, failure_ratio=0.5, window=10, min_calls=6)
    for _ in range(2):
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state == "closed"  # 2 of 4 failed, but only 4 outcomes seen
    breaker.record_failure()
    assert breaker.state == "closed"  # 3 of 5
    breaker.record_success()
    assert breaker.state == "open"  # 3 of 6: the ratio holds once min_calls outcomes are seen


def test_breaker_stays_closed_below_min_calls() -> None:
    breaker = _breaker(FakeClock(), consecutive_failures=100, failure_ratio=0.1, window=20, min_calls=10)
    for _ in range(4):
        breaker.record_failure()
        breaker.record_success()
    assert breaker.state == "closed"


def test_breaker_ratio_counts_only_the_last_window_outcomes() -> None:
    breaker = _breaker(FakeClock(), consecutive_failures=100, failure_ratio=0.5, window=4, min_calls=4)
    for _ in range(6):
        breaker.record_success()
    breaker.record_failure()
    assert breaker.state == "closed"  # S S S F
    breaker.record_failure()
    assert breaker.state == "open"  # S S F F: half of the window, though only 2 of 8 overall


def test_breaker_all_successes_never_open() -> None:
    breaker = _breaker(FakeClock(), failure_ratio=0.01, window=5, min_calls=1)
    for _ in range(50):
        breaker.before_call()
        breaker.record_success()
    assert breaker.state == "closed"


def test_open_breaker_fails_fast_with_retry_after_counting_down() -> None:
    clock = FakeClock()
    breaker = _open_breaker(clock, cooldown=30.0)
    with pytest.raises(CircuitOpen) as caught:
        breaker.before_call()
    error = caught.value
    assert error.error_code == "CIRCUIT_OPEN"
    assert error.details == {"retry_after": 30, "state": "open"}
    assert "'shaky'" in error.message
    assert "no request was sent" in error.message
    assert "Retry in 30 s" in error.message
    clock.advance(10.5)
    with pytest.raises(CircuitOpen) as caught:
        breaker.before_call()
    assert caught.value.details["retry_after"] == 20  # 19.5 rounded up
    clock.advance(19.4)
    with pytest.raises(CircuitOpen) as caught:
        breaker.before_call()
    assert caught.value.details["retry_after"] == 1  # never less than 1
    assert breaker.state == "open"


def test_half_open_admits_exactly_one_probe() -> None:
    clock = FakeClock()
    breaker = _open_breaker(clock)
    clock.advance(30.0)
    assert breaker.state == "half_open"
    breaker.before_call()  # the probe
    with pytest.raises(CircuitOpen) as caught:
        breaker.before_call()  # a concurrent caller
    assert caught.value.details == {"retry_after": 1, "state": "half_open"}
    assert "no request was sent" in caught.value.message
    assert breaker.state == "half_open"


def test_probe_success_closes_with_a_fresh_window() -> None:
    clock = FakeClock()
    breaker = _open_breaker(clock)
    clock.advance(30.0)
    breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed"
    breaker.before_call()
    breaker.before_call()  # closed: everyone is admitted
    breaker.record_failure()
    assert breaker.state == "closed"  # the failures before opening no longer count
    breaker.record_failure()
    assert breaker.state == "open"


def test_probe_failure_reopens_for_a_fresh_cooldown() -> None:
    clock = FakeClock()
    breaker = _open_breaker(clock, cooldown=30.0)
    clock.advance(45.0)
    breaker.before_call()
    clock.advance(5.0)  # the probe took a while
    breaker.record_failure()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen) as caught:
        breaker.before_call()
    assert caught.value.details == {"retry_after": 30, "state": "open"}
    clock.advance(30.0)
    assert breaker.state == "half_open"
    breaker.before_call()


def test_neutral_probe_releases_the_slot() -> None:
    clock = FakeClock()
    breaker = _open_breaker(clock)
    clock.advance(30.0)
    breaker.before_call()
    breaker.record_neutral()  # e.g. the probe was cancelled, or answered 429
    assert breaker.state == "half_open"
    breaker.before_call()  # the next caller becomes the probe
    with pytest.raises(CircuitOpen):
        breaker.before_call()
    breaker.record_success()
    assert breaker.state == "closed"


def test_outcomes_reported_while_open_are_ignored() -> None:
    clock = FakeClock()
    breaker = _open_breaker(clock)
    breaker.record_success()  # a call admitted before the breaker opened, finishing late
    breaker.record_neutral()
    assert breaker.state == "open"
    clock.advance(30.0)
    breaker.record_failure()
    assert breaker.state == "half_open"
    breaker.before_call()


def test_zero_cooldown_goes_straight_to_half_open() -> None:
    clock = FakeClock()
    breaker = _open_breaker(clock, cooldown=0.0)
    assert breaker.state == "half_open"
