"""The Pacer: the one gate every request attempt passes, retries included.

  1. a global pause, set when the server said 429 with Retry-After and enough of the pool is
     being turned away that everyone should wait (see RateAdapter);
  2. the adapted rate, only once the server has pushed back (429s);
  3. aiolimiter at the user's --rate: the hard ceiling, never exceeded.

Everything that reads the time takes a `clock` (default time.monotonic), so tests drive it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiolimiter import AsyncLimiter

from .counters import Counters
from .policy import RatePolicy, RetryPolicy

__all__ = ["Clock", "Pacer", "RateAdapter", "make_limiter"]

Clock = Callable[[], float]


def make_limiter(rate: float) -> AsyncLimiter:
    """A leaky bucket holding ~50 ms of quota: reaches the rate without bursting past it.

    AsyncLimiter(rate, 1) bursts a whole second's quota at once; AsyncLimiter(1, 1/rate) falls
    short under load (a late wake-up is lost). See reference/python-libraries.md.
    """
    size = max(1.0, rate * 0.05)
    return AsyncLimiter(size, size / rate)


class Pacer:
    """The gate before every request attempt: global pause, adapted rate, then the ceiling.

    State: `_resume_at` is the clock time before which nobody sends (0: no pause)."""

    def __init__(self, policy: RatePolicy, counters: Counters | None = None,
                 retry: RetryPolicy | None = None, clock: Clock = time.monotonic) -> None:
        self._ceiling = make_limiter(policy.rate) if policy.rate > 0 else None
        self._clock = clock
        self._resume_at = 0.0
        self._max_pause = (retry or RetryPolicy()).max_retry_after
        self.adapter: RateAdapter | None = (
            RateAdapter(policy.rate, counters, clock) if policy.adaptive else None)

    @property
    def paused_until(self) -> float:
        """The clock time before which no request is sent (0: no pause set)."""
        return self._resume_at

    async def wait_turn(self) -> None:
        while (delay := self._resume_at - self._clock()) > 0:
            await asyncio.sleep(delay)
        if self.adapter is not None:
            await self.adapter.acquire()
        if self._ceiling is not None:
            await self._ceiling.acquire()

    def pause(self, seconds: float) -> None:
        """Hold every worker for `seconds` (capped like a Retry-After: the server asked the
        whole client to slow down, not to stop for a day)."""
        seconds = min(max(0.0, seconds), self._max_pause)
        self._resume_at = max(self._resume_at, self._clock() + seconds)

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

    def __init__(self, ceiling: float, counters: Counters | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.ceiling = ceiling if ceiling > 0 else float("inf")
        self.rate: float | None = None
        self.limit: float | None = None
        self.noise = 0.0
        self._counters = counters or Counters()
        self._clock = clock
        self._before_cut: tuple[float | None, float | None, float] | None = None
        self._limiter: AsyncLimiter | None = None
        self._tick_start = clock()
        self._sent = 0
        self._refused = 0

    @property
    def threshold(self) -> float:
        return max(self.BASE_THRESHOLD, 2 * self.noise)

    @property
    def cuts(self) -> int:
        return self._counters.rate_cuts

    @property
    def lowest(self) -> float | None:
        return self._counters.rate_lowest

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
        now = self._clock()
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
            self._counters.rate_cuts += 1
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
        low = self._counters.rate_lowest
        self._counters.rate_lowest = rate if low is None else min(low, rate)
