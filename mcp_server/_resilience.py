"""Resilience primitives for upstream calls: retry rules, backoff, retry budget, rate limit, circuit breaker.

Each is pure or keeps a little state, reads time only through an injectable clock
(`Callable[[], float]`, default `time.monotonic`) and needs no locks: everything runs on
one event loop and no method awaits.

- Which calls may be retried: idempotent methods (RFC 9110 §9.2.2) always; POST and PATCH
  only when the connector sends an idempotency key (`RetryPolicy.idempotency_header`).
- Backoff: "full jitter", uniform(0, min(cap, base * 2**attempt)), from the AWS Architecture
  Blog's "Exponential Backoff And Jitter" (Marc Brooker, 2015).
- Server-requested delays: `Retry-After` (RFC 9110 §10.2.3, delta-seconds or HTTP-date), else
  the `X-RateLimit-Reset` family (GitHub epoch seconds, or delta seconds as in the IETF
  RateLimit header fields draft).
- Retry budget: Finagle's `RetryBudget` — retries stay under a share of first attempts over a
  sliding window, plus a small floor, so a failing upstream sees bounded extra load.
- Client-side rate limit: a token bucket whose tokens may go negative, so reservations queue in
  arrival order (as in Guava's `RateLimiter`); a wait longer than allowed fails at once.
- Circuit breaker: Hystrix/Envoy-style — trips on consecutive failures or on a failure ratio over
  the last outcomes, fails fast for a cooldown, then lets exactly one half-open probe decide.
"""

from __future__ import annotations

import math
import random
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import Literal

from mcp_server._errors import CircuitOpen, RateLimited
from mcp_server._model import IDEMPOTENT_METHODS, BreakerPolicy, RateLimit, RetryPolicy

Clock = Callable[[], float]
BreakerState = Literal["closed", "open", "half_open"]

RETRYABLE_STATUSES = frozenset({408, 429, 502, 503, 504})
_KEYED_METHODS = frozenset({"POST", "PATCH"})
"""Not idempotent by themselves, but retried when each tool call carries one idempotency key."""

_DELTA_SECONDS = re.compile(r"[0-9]+")
_DECIMAL_SECONDS = re.compile(r"[0-9]+(?:\.[0-9]+)?")
_EPOCH_THRESHOLD = 10**9
"""A reset value above this is a Unix timestamp (2001-09-09 onwards), below it a number of seconds."""
_RESET_HEADERS = ("x-ratelimit-reset", "ratelimit-reset", "x-ratelimit-reset-after")
_MAX_EXPONENT = 64
"""Beyond this `backoff_base * 2**attempt` is above any sane cap; clamping avoids float overflow."""
_EPSILON = 1e-9


def may_retry_method(method: str, policy: RetryPolicy) -> bool:
    """Idempotent methods always; POST/PATCH only when policy.idempotency_header is set."""
    method = method.upper()
    if method in IDEMPOTENT_METHODS:
        return True
    return method in _KEYED_METHODS and bool(policy.idempotency_header)


def backoff_delay(attempt: int, policy: RetryPolicy, rng: random.Random) -> float:
    """Full jitter (AWS): uniform(0, min(backoff_max, backoff_base * 2**attempt)); attempt 0 is the first retry."""
    exponent = min(max(attempt, 0), _MAX_EXPONENT)
    ceiling = min(policy.backoff_max, policy.backoff_base * 2.0**exponent)
    return rng.uniform(0.0, max(ceiling, 0.0))


def server_delay(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the upstream asked us to wait, never negative; None when no header says so parseably.

    `Retry-After` wins: ASCII delta-seconds, or an HTTP-date taken relative to `now` (wall-clock
    epoch seconds). Otherwise `X-RateLimit-Reset`, `RateLimit-Reset` or `X-RateLimit-Reset-After`:
    a value above 10**9 is an epoch timestamp (GitHub), a smaller one delta seconds. Header names
    are matched case-insensitively; an unparseable header gives way to the next one.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    retry_after = lowered.get("retry-after")
    if retry_after is not None:
        delay = _parse_retry_after(retry_after.strip(), now)
        if delay is not None:
            return delay
    for name in _RESET_HEADERS:
        value = lowered.get(name)
        if value is None:
            continue
        delay = _parse_reset(value.strip(), now)
        if delay is not None:
            return delay
    return None


def _parse_retry_after(value: str, now: float) -> float | None:
    if _DELTA_SECONDS.fullmatch(value):
        return _finite(float(value))
    try:
        moment = parsedate_to_datetime(value)
    except (ValueError, TypeError, OverflowError, IndexError):
        return None
    if moment.tzinfo is None:  # "-0000" and asctime dates: HTTP dates are always UTC
        moment = moment.replace(tzinfo=UTC)
    return _finite(max(moment.timestamp() - now, 0.0))


def _parse_reset(value: str, now: float) -> float | None:
    if not _DECIMAL_SECONDS.fullmatch(value):
        return None
    number = float(value)
    if number > _EPOCH_THRESHOLD:
        number -= now
    return _finite(max(number, 0.0))


def _finite(seconds: float) -> float | None:
    return seconds if math.isfinite(seconds) else None


class RetryBudget:
    """Finagle-style retry budget for one connector.

    Over a sliding `window` of seconds, a retry is allowed while the retries already sent number
    fewer than floor(ratio * first attempts) + min_retries; the floor keeps a quiet connector able
    to retry at all. A failing upstream thus sees at most about `ratio` extra traffic.
    """

    def __init__(
        self, ratio: float, *, window: float = 10.0, min_retries: int = 3, clock: Clock = time.monotonic
    ) -> None:
        self._ratio = max(ratio, 0.0)
        self._window = window
        self._min_retries = max(min_retries, 0)
        self._clock = clock
        self._requests: deque[float] = deque()
        self._retries: deque[float] = deque()

    def record_request(self) -> None:
        """Count a first attempt."""
        now = self._clock()
        self._prune(now)
        self._requests.append(now)

    def try_withdraw(self) -> bool:
        """Ask to send a retry; it is counted when allowed."""
        now = self._clock()
        self._prune(now)
        allowance = math.floor(self._ratio * len(self._requests) + _EPSILON) + self._min_retries
        if len(self._retries) >= allowance:
            return False
        self._retries.append(now)
        return True

    def _prune(self, now: float) -> None:
        horizon = now - self._window
        for stamps in (self._requests, self._retries):
            while stamps and stamps[0] <= horizon:
                stamps.popleft()


class TokenBucket:
    """Client-side rate limit for one connector.

    Holds up to `limit.burst` (default `limit.requests`) tokens, refilled at `limit.requests` per
    `limit.per_seconds`. `reserve()` takes a token and returns how long to sleep before sending;
    tokens may go negative, so concurrent callers are served in arrival order. A wait longer than
    min(limit.max_wait, max_wait) is refused with RateLimited and reserves nothing.
    """

    def __init__(self, limit: RateLimit, *, connector: str, clock: Clock = time.monotonic) -> None:
        self._limit = limit
        self._connector = connector
        self._clock = clock
        self._capacity = float(limit.burst if limit.burst is not None else limit.requests)
        self._rate = limit.requests / limit.per_seconds
        self._tokens = self._capacity
        self._updated = clock()

    def reserve(self, *, max_wait: float | None = None) -> float:
        """Reserve a token; seconds to wait before sending (0.0 if one is free now)."""
        now = self._clock()
        self._tokens = min(self._capacity, self._tokens + max(now - self._updated, 0.0) * self._rate)
        self._updated = now
        wait = 0.0 if self._tokens >= 1.0 else (1.0 - self._tokens) / self._rate
        allowed = self._limit.max_wait if max_wait is None else min(self._limit.max_wait, max_wait)
        allowed = max(allowed, 0.0)
        if wait > allowed + _EPSILON:
            retry_after = max(math.ceil(wait - _EPSILON), 1)
            raise RateLimited(
                f"Connector {self._connector!r} is over its rate limit ({self._describe_limit()}): "
                f"the next request could be sent in {retry_after} s, longer than the {allowed:g} s allowed to wait. "
                f"No request was sent; retry after {retry_after} s.",
                retry_after=retry_after,
            )
        self._tokens -= 1.0
        return wait

    def _describe_limit(self) -> str:
        requests = self._limit.requests
        noun = "request" if requests == 1 else "requests"
        return f"{requests} {noun} per {self._limit.per_seconds:g} s"


class CircuitBreaker:
    """Hystrix/Envoy-style circuit breaker for one connector.

    closed → open after `policy.consecutive_failures` failures in a row, or when at least
    `policy.failure_ratio` of the last `policy.window` outcomes failed (once `policy.min_calls`
    outcomes were seen since it last closed). Open fails fast for `policy.cooldown` seconds, then
    half-open admits exactly one probe: its success closes the breaker with a fresh window, its
    failure re-opens it for another cooldown, a neutral outcome frees the slot for the next caller.

    Outcomes reported while open (calls admitted before it opened) are ignored.
    """

    def __init__(self, policy: BreakerPolicy, *, connector: str, clock: Clock = time.monotonic) -> None:
        self._policy = policy
        self._connector = connector
        self._clock = clock
        self._state: BreakerState = "closed"
        self._opened_at = 0.0
        self._probe_in_flight = False
        self._consecutive = 0
        self._seen = 0
        self._outcomes: deque[bool] = deque(maxlen=max(policy.window, 1))
        """True for a failure, over the last `policy.window` outcomes."""

    @property
    def state(self) -> BreakerState:
        if self._state == "open" and self._clock() >= self._opened_at + self._policy.cooldown:
            return "half_open"
        return self._state

    def before_call(self) -> None:
        """Admit a call or raise CircuitOpen; in half-open, the one admitted call is the probe."""
        state = self.state
        if state == "closed":
            return
        if state == "open":
            remaining = self._opened_at + self._policy.cooldown - self._clock()
            retry_after = max(math.ceil(remaining - _EPSILON), 1)
            raise CircuitOpen(
                f"Connector {self._connector!r} is failing: its circuit breaker is open after repeated upstream "
                f"failures, so no request was sent. Retry in {retry_after} s.",
                retry_after=retry_after,
                state=state,
            )
        if self._probe_in_flight:
            raise CircuitOpen(
                f"Connector {self._connector!r} is recovering from repeated upstream failures: one trial request "
                f"is in flight, so no request was sent. Retry in a few seconds.",
                retry_after=1,
                state=state,
            )
        self._state = "half_open"
        self._probe_in_flight = True

    def record_success(self) -> None:
        if self._state == "half_open":
            self._close()
        elif self._state == "closed":
            self._consecutive = 0
            self._record(failed=False)

    def record_failure(self) -> None:
        if self._state == "half_open":
            self._open()
        elif self._state == "closed":
            self._consecutive += 1
            self._record(failed=True)

    def record_neutral(self) -> None:
        """A call that says nothing about upstream health: frees a half-open probe slot, changes nothing else."""
        if self._state == "half_open":
            self._probe_in_flight = False

    def _record(self, *, failed: bool) -> None:
        """Count a closed-state outcome and trip if a rule says so (a success can complete `min_calls`)."""
        self._outcomes.append(failed)
        self._seen += 1
        if self._consecutive >= self._policy.consecutive_failures or self._ratio_tripped():
            self._open()

    def _ratio_tripped(self) -> bool:
        if self._seen < self._policy.min_calls:
            return False
        failures = sum(self._outcomes)
        return failures > 0 and failures >= self._policy.failure_ratio * len(self._outcomes) - _EPSILON

    def _open(self) -> None:
        self._state = "open"
        self._opened_at = self._clock()
        self._probe_in_flight = False
        self._reset_counts()

    def _close(self) -> None:
        self._state = "closed"
        self._probe_in_flight = False
        self._reset_counts()

    def _reset_counts(self) -> None:
        self._consecutive = 0
        self._seen = 0
        self._outcomes.clear()
