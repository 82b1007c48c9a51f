"""The Pacer: the one gate every request attempt passes, retries included.

  1. a global pause, set when the server said 429 with Retry-After and enough of the pool is
     being turned away that everyone should wait (see RateAdapter);
  2. the adapted rate, only once the server has pushed back (429s);
  3. aiolimiter at the user's --rate: the hard ceiling, never exceeded.

Everything that reads the time takes a `clock` (default time.monotonic), so tests drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Callable

from aiolimiter import AsyncLimiter

from .counters import Counters
from .policy import RatePolicy, RetryPolicy

__all__ = ["Clock", "OutageGate", "Pacer", "RateAdapter", "make_limiter"]

log = logging.getLogger("batchpatch")

Clock = Callable[[], float]


def make_limiter(rate: float) -> AsyncLimiter:
    """A leaky bucket holding ~50 ms of quota: reaches the rate without bursting past it.

    AsyncLimiter(rate, 1) bursts a whole second's quota at once; AsyncLimiter(1, 1/rate) falls
    short under load (a late wake-up is lost). See reference/python-libraries.md.
    """
    size = max(1.0, rate * 0.05)
    return AsyncLimiter(size, size / rate)


_NOT_ANSWERING = frozenset({502, 503, 504})


class Pacer:
    """The gate before every request attempt: global pause, adapted rate, then the ceiling.

    State: `_resume_at` is the clock time before which nobody sends (0: no pause);
    `_next_probe` when the next probe may go while the adapter holds the pool."""

    HOLD_PROBE = 0.5

    def __init__(self, policy: RatePolicy, counters: Counters | None = None,
                 retry: RetryPolicy | None = None, clock: Clock = time.monotonic,
                 gate: OutageGate | None = None) -> None:
        self.gate = gate or OutageGate(float("inf"), clock)
        self._ceiling = make_limiter(policy.rate) if policy.rate > 0 else None
        self._clock = clock
        self._resume_at = 0.0
        self._max_pause = (retry or RetryPolicy()).max_retry_after
        self.adapter: RateAdapter | None = (
            RateAdapter(policy.rate, counters, clock) if policy.adaptive else None)
        self._next_probe = 0.0

    @property
    def paused_until(self) -> float:
        """The clock time before which no request is sent (0: no pause set)."""
        return self._resume_at

    @property
    def free(self) -> bool:
        """True when nothing may hold a request back (no ceiling, no adapted rate, no pause,
        no outage): the caller may skip wait_turn."""
        adapter = self.adapter
        return (self._ceiling is None and self._resume_at == 0.0
                and self.gate.down_since is None
                and (adapter is None or (adapter._limiter is None and not adapter.held)))

    async def wait_turn(self) -> None:
        if self.gate.down_since is not None:
            await self.gate.wait()
        while self.adapter is not None and self.adapter.held:
            if await self._probe_turn():
                break  # this request is the probe
        if self._resume_at and (delay := self._resume_at - self._clock()) <= 0:
            self._resume_at = 0.0
        while (delay := self._resume_at - self._clock()) > 0:
            await asyncio.sleep(delay)
        if self.adapter is not None:
            await self.adapter.acquire()
        if self._ceiling is not None:
            await self._ceiling.acquire()

    async def _probe_turn(self) -> bool:
        """While the server refuses nearly everything (a spent window): one request at a time,
        HOLD_PROBE seconds apart, until one is accepted. True: the caller is the probe."""
        now = self._clock()
        if now >= self._next_probe:
            self._next_probe = now + self.HOLD_PROBE
            return True
        await asyncio.sleep(self._next_probe - now)
        return False

    def pause(self, seconds: float) -> None:
        """Hold every worker for `seconds` (capped like a Retry-After: the server asked the
        whole client to slow down, not to stop for a day)."""
        seconds = min(max(0.0, seconds), self._max_pause)
        until = self._clock() + seconds
        if until > self._resume_at:
            if self.adapter is not None:
                self.adapter.paused(until - max(self._resume_at, self._clock()))
            self._resume_at = until

    def on_answer(self, status: int, retry_after: float | None) -> None:
        """Feed every HTTP answer to the adapter and the outage gate."""
        gate = self.gate
        if status in _NOT_ANSWERING:
            gate.unreachable(f"HTTP {status}")
        elif gate.down_since is not None or gate._streak:
            gate.answered()
        if self.adapter is not None and self.adapter.record(status == 429) and retry_after:
            self.pause(retry_after)

    def on_unreachable(self, error: str) -> None:
        """A request got no HTTP answer at all."""
        self.gate.unreachable(error)
        if self.adapter is not None:
            self.adapter.record(False)


class RateAdapter:
    """Slows the pool when the server turns requests away with 429, and probes back up.

    State: `rate` is the adapted rate (None while at the ceiling: no cost until the server
    pushes back), `limit` the rate the server accepted when it last pushed back, and `noise`
    the share of 429s seen that slowing down did not cure. Each tick (a second, and at least
    MIN_ANSWERS answers) compares what was sent with what the server accepted:
    - a tick where more than `threshold` was refused may be the server's limit: the rate drops
      just under what the server accepted in that tick (a sliding window's limit, a token
      bucket's refill rate), and the next tick checks the cure;
    - if the next tick is refused as often, the 429s were not about our pace (a flaky gateway
      refusing a share whatever the rate): the cut is undone and that share becomes `noise`,
      which raises `threshold`, so random 429s cannot wear the rate down;
    - a tick refused almost whole (BLACKOUT) is a fixed window spent: the pool is held to one
      probe at a time (`held`) until the server accepts again, and then runs at what it
      accepted over that whole cycle (`_cycle_start`, `_cycle_accepted`), less LAND;
    - otherwise the rate steps up: by 1% every NEAR_EVERY ticks near `limit` (where the
      threshold is NEAR_THRESHOLD: a bucket refuses late and little), by 10% a tick well under
      it or with no known limit; `limit` is forgotten once the rate passes it comfortably.
    """

    TICK = 1.0
    MIN_ANSWERS = 40  # a tick judged on fewer answers mistakes chance for a limit
    BASE_THRESHOLD = 0.08  # share of 429s in a tick that may mean "over the limit"
    NEAR_THRESHOLD = 0.02  # the same, near a limit found before
    BLACKOUT = 0.5  # a share this high holds the pool to one probe at a time
    SHORT_BLACKOUT = 2.5  # seconds: a hold shorter than this was not a fixed window
    BLACKOUT_ANSWERS = 8  # refusals in a row enough to call a blackout before a tick ends
    WINDOW_LAND = 0.98  # under a fixed window's measured rate
    WINDOW_PROBE_EVERY = 5  # clean ticks between 1% steps under a fixed window (a window
    # spent early costs only the probes of the hold that follows)
    LAND = 0.98  # land this far under the accepted rate
    FLOOR_CAP = 0.15  # the most one tick adds to `floor`
    NEAR_STEP = 1.01
    NEAR_EVERY = 2
    FAR_STEP = 1.10

    def __init__(self, ceiling: float, counters: Counters | None = None,
                 clock: Clock = time.monotonic) -> None:
        self.ceiling = ceiling if ceiling > 0 else float("inf")
        self.rate: float | None = None
        self.limit: float | None = None
        self.noise = 0.0
        #: the share of 429s per tick (a moving average over about ten ticks): random 429s
        #: keep it near their share, a limit we keep under lets it fall to ~0
        self.floor = 0.0
        self.held = False
        self._counters = counters or Counters()
        self._clock = clock
        #: (rate, limit) before a cut, and (share, sent/s, accepted/s) of the tick it was made
        #: on, and whether it was the second cut in a row
        self._before_cut: tuple[float | None, float | None, float, float, float,
                                bool] | None = None
        self._tick_sent = 0
        self._limiter: AsyncLimiter | None = None
        self._tick_start = clock()
        self._sent = 0
        self._refused = 0
        self._clean_ticks = 0
        self._cycle_start = self._tick_start
        self._cycle_accepted = 0
        self._held_since = 0.0
        self._held_rate = 0.0
        self.windowed = False
        self._paused = 0.0
        self._started = False
        self._last_sent_rate = 0.0

    @property
    def threshold(self) -> float:
        return max(self.NEAR_THRESHOLD if self._near_limit() else self.BASE_THRESHOLD,
                   2 * self.noise,
                   2 * self.floor)

    def _near_limit(self) -> bool:
        return (self.limit is not None and self.rate is not None
                and self.rate >= self.limit * self.LAND * 0.99)

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
        if not self._started:  # the first tick starts with the first answer, not at set-up
            self._started = True
            self._tick_start = self._cycle_start = self._clock()
        self._sent += 1
        if rate_limited:
            self._refused += 1
        else:
            self._cycle_accepted += 1
            if self.held:
                self._release()
        now = self._clock()
        elapsed = now - self._tick_start
        blackout = (self._refused >= self.BLACKOUT_ANSWERS and not self.held
                    and self._refused >= self._sent * 0.9
                    and elapsed >= self.TICK)  # judged on a whole tick, however few answers
        if not blackout and (elapsed < self.TICK
                             or (self._sent < self.MIN_ANSWERS and elapsed < 5 * self.TICK)):
            return False
        # a pool-wide pause (Retry-After) inside the tick sent nothing: it is not the
        # server's pace, so it does not count in the rate it accepted
        active = max(elapsed - self._paused, elapsed * 0.25)
        self._paused = 0.0
        accepted_rate = (self._sent - self._refused) / active
        share = self._refused / self._sent
        refused = self._refused
        self._tick_sent = self._sent
        self._tick_start, self._sent, self._refused = now, 0, 0
        checking, self._before_cut = self._before_cut, None
        if share >= self.BLACKOUT:
            if not self.held:
                self.held = True  # until an answer is accepted (see _release)
                self._held_since = now
                self._held_rate = max(accepted_rate, self._last_sent_rate * 0.5)
                self._counters.rate_cuts += 1
            return True
        sent_rate = (self._tick_sent) / elapsed
        if share < self.BLACKOUT:
            self._last_sent_rate = sent_rate
        # the floor and threshold as they were before this tick: it is judged against them
        floor, threshold = self.floor, self.threshold
        if checking is not None and share > max(checking[2] / 3, 0.02) and refused >= 2:
            before_share, before_sent, before_accepted = checking[2], checking[3], checking[4]
            limit_like = (accepted_rate / before_accepted > sent_rate / before_sent + 0.1
                          or share > before_share * 1.2)
            if share <= max(before_share / 3, self.NEAR_THRESHOLD) and not limit_like:
                # the cut is working: under a limit the refusals all but stop (a bucket that
                # refills slowly still lets most through); random 429s go on near their share
                return False
            if not checking[5]:
                # the first cut was not enough (its tick's count held a burst), or the server
                # accepted nearly as much although we sent less: a limit still below us; cut
                # again to what it accepts, once, before calling the 429s noise
                self._before_cut = (*checking[:2], share, sent_rate, accepted_rate, True)
                self.limit = max(1.0, accepted_rate, sent_rate * 0.5)
                self._set(self.limit * self.LAND)
                self._counters.rate_cuts += 1
                return False
            # two cuts did not cure the 429s: they are noise, not our pace
            self.rate, self.limit = checking[0], checking[1]
            self._set(self.rate if self.rate is not None else self.ceiling)
            self.noise = max(self.noise * 0.9, share)
            return False
        if self.windowed:
            return self._windowed_tick(share, refused)
        # over the threshold, and by more refusals than chance gives at the usual share (a
        # flaky gateway refusing 3% shows 2 of 40 a third of the time)
        expected = floor * self._tick_sent
        spread = 1.0 if self._near_limit() else 2.0
        significant = max(2, math.ceil(expected + spread * math.sqrt(expected) + 1))
        if share > threshold and refused >= significant \
                and self._tick_sent >= self.MIN_ANSWERS:
            self._before_cut = (self.rate, self.limit, share, sent_rate,
                                max(accepted_rate, 1e-9), False)
            # never below half of what we sent: a tick thinned by retries waiting out their
            # backoff says little about the server's limit
            self.limit = max(1.0, accepted_rate, sent_rate * 0.5)
            self._set(self.limit * self.LAND)
            self._counters.rate_cuts += 1
            self._clean_ticks = 0
            return False
        self.noise *= 0.99
        # a tick that cut nothing: what the server refuses at a pace it takes (a limit we are
        # under refuses ~nothing; random 429s go on); one tick adds at most FLOOR_CAP
        self.floor = floor * 0.9 + min(share, self.FLOOR_CAP) * 0.1
        self._clean_ticks += 1
        if self.rate is not None:
            if self.limit is not None and self.rate > self.limit * 1.1:
                self.limit = None
            near = self._near_limit()
            if not near or self.floor >= self.NEAR_THRESHOLD:
                # far from a limit, or 429s that go on at a pace the server takes (noise): a
                # "limit" found in noise is no reason to creep back 1% at a time
                self._set(self.rate * self.FAR_STEP)
            elif self._clean_ticks % self.NEAR_EVERY == 0:
                # the longer the server takes our pace, the bolder the next step (1%, 2%, 4%,
                # up to 8%) while under the known limit: a limit measured low is found again
                # in a few steps
                steps = self._clean_ticks // self.NEAR_EVERY
                grow = (self.NEAR_STEP - 1) * 2 ** min(steps - 1, 3)
                if self.limit is not None and self.rate >= self.limit:
                    grow = self.NEAR_STEP - 1  # past the known limit: a bucket refuses late
                self._set(self.rate * (1 + grow))
        return False

    def paused(self, seconds: float) -> None:
        """The pacer held the pool this long (Retry-After) during the current tick."""
        self._paused += seconds

    def _windowed_tick(self, share: float, refused: int) -> bool:
        """Under a fixed window: hold the measured cycle rate; a few refusals at a window's end
        lower it a little; a long clean spell raises it by 1%."""
        if refused >= 2 and share > self.NEAR_THRESHOLD and self.rate is not None:
            self._set(self.rate * 0.99)
            self._clean_ticks = 0
            return False
        self._clean_ticks += 1
        if self._clean_ticks % self.WINDOW_PROBE_EVERY == 0 and self.rate is not None:
            self._set(self.rate * self.NEAR_STEP)
        return False

    def _release(self) -> None:
        """The server accepts again after a blackout. A short one (a sliding window, a token
        bucket refilling) means its limit is what it accepted while refusing; a long one is a
        fixed window spent: from then on the limit is what it accepted over whole cycles
        (`windowed`), and the rate stays just under it."""
        self.held = False
        now = self._clock()
        span = now - self._cycle_start
        was_windowed = self.windowed
        if now - self._held_since > self.SHORT_BLACKOUT:
            self.windowed = True
        if self.windowed and span >= self.TICK:
            # cycles since the last release that did not spend the window count too: the
            # estimate never drops below the highest measured
            measured = self._cycle_accepted / span
            self.limit = max(1.0, measured, self.limit if was_windowed and self.limit else 0)
            self._set(self.limit * self.WINDOW_LAND)
        elif not self.windowed:
            self.limit = max(1.0, self._held_rate)
            self._set(min(self.rate or self.ceiling, self.limit * self.LAND))
        self._cycle_start, self._cycle_accepted = now, 1
        self._tick_start, self._sent, self._refused = now, 0, 0
        self._clean_ticks = 0

    def _set(self, rate: float) -> None:
        if rate >= self.ceiling:
            self.rate, self._limiter = None, None
            return
        self.rate = rate
        self._limiter = make_limiter(rate)
        low = self._counters.rate_lowest
        self._counters.rate_lowest = rate if low is None else min(low, rate)


class OutageGate:
    """Pauses the pool as a whole while the target does not answer, instead of letting every
    row burn its retries: one probe at a time, spaced from PROBE_FIRST up to PROBE_MAX seconds;
    full pace again as soon as anything answers. Past `max_outage` seconds every waiting
    request raises OutageTooLong (the run aborts; --resume finishes it).

    "Not answering" is: no HTTP answer (refused, reset, timed out, not HTTP) or 502/503/504.
    A 500 is an answer (the breaker judges a storm of those). The gate closes after STREAK
    such failures in a row across the pool, spanning at least QUIET seconds with no answer.

    State: `down_since` is None while open, else the clock time the outage began; `epoch`
    counts outages begun; `_probing` is True while the one probe is out; `_next_probe` is the
    clock time the next probe may go; `periods` lists the outages, for the summary.
    """

    STREAK = 3
    QUIET = 1.0
    PROBE_FIRST = 1.0
    PROBE_GROWTH = 1.5
    PROBE_MAX = 30.0

    def __init__(self, max_outage: float = 900.0, clock: Clock = time.monotonic,
                 wall: Clock = time.time) -> None:
        self.max_outage = max_outage
        self._clock = clock
        self._wall = wall
        self.down_since: float | None = None
        self.epoch = 0
        self.periods: list[dict[str, float]] = []
        self._streak = 0
        self._streak_start = 0.0
        self._probing = False
        self._spacing = self.PROBE_FIRST
        self._next_probe = 0.0
        self._probes = 0
        self._changed = asyncio.Event()
        self.last_error = ""

    @property
    def down(self) -> bool:
        return self.down_since is not None

    async def wait(self) -> None:
        """Return when a request may go: at once while open; during an outage, when this
        caller is the next probe or the target answers again."""
        from .errors import OutageTooLong

        while self.down_since is not None:
            now = self._clock()
            if now - self.down_since > self.max_outage:
                raise OutageTooLong(
                    f"the target has not answered for {now - self.down_since:.0f} s "
                    f"(--max-outage {self.max_outage:g}; last error: {self.last_error}); rows "
                    "not decided have no record: run again with --resume when it is back")
            if not self._probing and now >= self._next_probe:
                self._probing = True
                self._probes += 1
                return
            changed = self._changed
            delay = self._next_probe - now if not self._probing else self.PROBE_MAX
            delay = min(max(delay, 0.01), self.max_outage - (now - self.down_since) + 0.01)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(changed.wait(), delay)

    def answered(self) -> None:
        """Something answered (any HTTP status but 502/503/504)."""
        self._streak = 0
        if self.down_since is not None:
            seconds = self._clock() - self.down_since
            self.periods.append({"start": round(self._wall() - seconds, 3),
                                 "seconds": round(seconds, 3), "probes": self._probes})
            log.warning("the target answers again after %.1f s of outage (%d probes); full "
                        "pace again", seconds, self._probes)
            self.down_since = None
            self._probing = False
            self._wake()

    def unreachable(self, error: str) -> None:
        """A request got no answer (or a 502/503/504)."""
        self.last_error = error
        self._streak += 1
        now = self._clock()
        if self._streak == 1:
            self._streak_start = now
        if self.down_since is None:
            if self._streak >= self.STREAK and now - self._streak_start >= self.QUIET:
                self.down_since = now
                self.epoch += 1
                self._probes = 0
                self._spacing = self.PROBE_FIRST
                self._next_probe = now + self._spacing
                self._probing = False
                log.warning("the target stopped answering (%s); pausing every row: one probe "
                            "at a time, for up to --max-outage %g s", error, self.max_outage)
                self._wake()
            return
        if self._probing:  # the probe failed: wait longer before the next
            self._probing = False
            self._spacing = min(self._spacing * self.PROBE_GROWTH, self.PROBE_MAX)
            self._next_probe = now + self._spacing
            self._wake()

    def release(self) -> None:
        """The probe ended without an answer either way (cancelled): let another go."""
        if self._probing:
            self._probing = False
            self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()
