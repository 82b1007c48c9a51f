"""Policies as data (retry, rate, timeouts) and the Pacer that applies the rate to every attempt.

The Pacer is the one gate every request attempt passes, retries included:
  1. a global pause, set when the server said 429 with Retry-After and enough of the pool is
     being turned away that everyone should wait (see RateAdapter);
  2. the adapted rate, only once the server has pushed back (429s);
  3. aiolimiter at the user's --rate: the hard ceiling, never exceeded.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from aiolimiter import AsyncLimiter

__all__ = ["Breaker", "Pacer", "RatePolicy", "RetryPolicy", "Timeouts", "make_limiter"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a transient failure is tried again."""

    retries: int = 5  # further attempts after the first
    server_error_retries: int = 2  # for a plain 500, which is often the request's own fault
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0  # a longer Retry-After is capped to this


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """The request rate across all workers; 0 means unlimited."""

    rate: float = 10.0
    adaptive: bool = True


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-request time limits, in seconds."""

    request: float = 30.0
    connect: float = 10.0


def make_limiter(rate: float) -> AsyncLimiter:
    """A leaky bucket holding ~50 ms of quota: reaches the rate without bursting past it.

    AsyncLimiter(rate, 1) bursts a whole second's quota at once; AsyncLimiter(1, 1/rate) falls
    short under load (a late wake-up is lost). See reference/python-libraries.md.
    """
    size = max(1.0, rate * 0.05)
    return AsyncLimiter(size, size / rate)


class Pacer:
    """The gate before every request attempt: global pause, adapted rate, then the ceiling."""

    def __init__(self, policy: RatePolicy) -> None:
        self._ceiling = make_limiter(policy.rate) if policy.rate > 0 else None
        self._resume_at = 0.0  # monotonic time before which nobody sends
        self.adapter: RateAdapter | None = RateAdapter(policy.rate) if policy.adaptive else None

    async def wait_turn(self) -> None:
        while (delay := self._resume_at - time.monotonic()) > 0:
            await asyncio.sleep(delay)
        if self.adapter is not None:
            await self.adapter.acquire()
        if self._ceiling is not None:
            await self._ceiling.acquire()

    def pause(self, seconds: float) -> None:
        """Hold every worker for `seconds` (the server asked the whole client to slow down)."""
        self._resume_at = max(self._resume_at, time.monotonic() + seconds)

    def on_answer(self, rate_limited: bool, retry_after: float | None) -> None:
        """Feed every answer (or failure to answer) to the adapter."""
        if self.adapter is None:
            return
        if self.adapter.record(rate_limited) and retry_after:
            self.pause(retry_after)


class RateAdapter:
    """Slows the pool when the server turns requests away with 429, and probes back up.

    State: `rate` is the adapted rate (None while at the ceiling: no cost until the server
    pushes back), `limit` the rate the server accepted when it last pushed back, and `noise`
    the share of 429s seen that slowing down did not cure. Each tick (a second, and at least
    MIN_ANSWERS answers) compares what was sent with what the server accepted:
    - a tick where more than `threshold` was refused may be the server's limit: the rate drops
      just under what the server accepted, and the next tick checks the cure;
    - if the next tick is refused as often, the 429s were not about our pace (a flaky gateway
      refusing a share whatever the rate): the cut is undone and that share becomes `noise`,
      which raises `threshold`, so random 429s cannot wear the rate down;
    - otherwise each tick steps the rate up: by 1% near `limit`, by 10% well under it or with no
      known limit; `limit` is forgotten once the rate passes it comfortably.
    """

    TICK = 1.0
    MIN_ANSWERS = 10
    BASE_THRESHOLD = 0.08  # share of 429s in a tick that may mean "over the limit"
    STOP_EVERYONE = 0.5  # a share this high pauses the whole pool for Retry-After
    BACKOFF = 0.9  # land this far under the accepted rate
    NEAR_STEP = 1.01
    FAR_STEP = 1.10

    def __init__(self, ceiling: float) -> None:
        self.ceiling = ceiling if ceiling > 0 else float("inf")
        self.rate: float | None = None
        self.limit: float | None = None
        self.noise = 0.0
        self._before_cut: tuple[float | None, float | None, float] | None = None
        self._limiter: AsyncLimiter | None = None
        self._tick_start = time.monotonic()
        self._sent = 0
        self._refused = 0
        self.lowest: float | None = None
        self.cuts = 0

    @property
    def threshold(self) -> float:
        return max(self.BASE_THRESHOLD, 2 * self.noise)

    async def acquire(self) -> None:
        # A new rate means a new limiter; a worker that was queued on the old one queues again
        # on the new one, so that the two never add up to more than the new rate.
        while (limiter := self._limiter) is not None:
            await limiter.acquire()
            if limiter is self._limiter:
                return

    def record(self, rate_limited: bool) -> bool:
        """Count one answer; returns True when the whole pool should pause for Retry-After."""
        self._sent += 1
        self._refused += rate_limited
        now = time.monotonic()
        elapsed = now - self._tick_start
        if elapsed < self.TICK or (self._sent < self.MIN_ANSWERS and elapsed < 5 * self.TICK):
            return False
        accepted_rate = (self._sent - self._refused) / elapsed
        share = self._refused / self._sent
        self._tick_start, self._sent, self._refused = now, 0, 0
        checking, self._before_cut = self._before_cut, None
        if checking is not None and share > max(checking[2] / 3, 0.02):
            # the cut did not cure the 429s: they are noise, not our pace
            self.rate, self.limit = checking[0], checking[1]
            self._set(self.rate if self.rate is not None else self.ceiling)
            self.noise = max(self.noise * 0.9, share)
            return False
        if share > self.threshold:
            self._before_cut = (self.rate, self.limit, share)
            self.limit = max(1.0, accepted_rate)
            self._set(self.limit * self.BACKOFF)
            self.cuts += 1
            return share > self.STOP_EVERYONE
        self.noise *= 0.99
        if self.rate is not None:
            if self.limit is not None and self.rate > self.limit * 1.1:
                self.limit = None
            near = self.limit is not None and self.rate >= self.limit * self.BACKOFF
            self._set(self.rate * (self.NEAR_STEP if near else self.FAR_STEP))
        return False

    def _set(self, rate: float) -> None:
        if rate >= self.ceiling:
            self.rate, self._limiter = None, None
            return
        self.rate = rate
        self._limiter = make_limiter(rate)
        self.lowest = rate if self.lowest is None else min(self.lowest, rate)


class Breaker:
    """Opens when more than `max_error_rate` of the last `window` rows failed for reasons that
    are not their own (retries exhausted on timeouts, 5xx, dropped connections)."""

    def __init__(self, max_error_rate: float, window: int) -> None:
        self.max_error_rate = max_error_rate
        self.window = max(1, window)
        self._recent: deque[bool] = deque(maxlen=self.window)
        self._bad = 0

    def record(self, foreign_failure: bool) -> str | None:
        """Count one finished row; returns why the breaker opened, or None."""
        if len(self._recent) == self._recent.maxlen:
            self._bad -= self._recent[0]
        self._recent.append(foreign_failure)
        self._bad += foreign_failure
        needed = min(self.window, 10)
        if len(self._recent) >= needed and self._bad / len(self._recent) > self.max_error_rate:
            return (f"{self._bad} of the last {len(self._recent)} rows failed for reasons that "
                    f"are not their own (more than {self.max_error_rate:.0%}: --max-error-rate)")
        return None
