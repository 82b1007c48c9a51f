"""Policies as data: how patient, how fast, how long, when to give up. Frozen value objects whose
defaults are the tool's defaults (the option table and the help text read them from here).

Applying them is elsewhere: pacing.py (rate, pauses, outages), api.py (retries, timeouts),
engine.py (the breaker).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

__all__ = ["Breaker", "BreakerPolicy", "RatePolicy", "RetryPolicy", "Timeouts"]


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how patiently a transient failure is tried again."""

    retries: int = 5  # further attempts after the first
    server_error_retries: int = 2  # for a plain 500, which is often the request's own fault
    initial_backoff: float = 0.5
    max_backoff: float = 30.0
    max_retry_after: float = 120.0  # a longer Retry-After is capped to this

    def limit_for(self, http_status: int | None) -> int:
        """Further attempts allowed after a failure with this status."""
        if http_status == 500:
            return min(self.retries, self.server_error_retries)
        return self.retries


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """The request rate across all workers; 0 means unlimited."""

    rate: float = 10.0
    adaptive: bool = True


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-request time limits, in seconds; connecting never takes longer than the request."""

    request: float = 30.0
    connect_limit: float = 10.0

    @property
    def connect(self) -> float:
        return min(self.connect_limit, self.request)


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When the run stops because most rows fail for reasons that are not their own."""

    max_error_rate: float = 0.5
    window: int = 50


class Breaker:
    """Opens when more than `max_error_rate` of the last `window` rows failed for reasons that
    are not their own (retries exhausted on timeouts, 5xx, dropped connections).

    State: `_recent` holds one flag per finished row (True: a foreign failure), newest last;
    `_bad` is the number of True flags in it."""

    def __init__(self, policy: BreakerPolicy) -> None:
        self.max_error_rate = policy.max_error_rate
        self.window = max(1, policy.window)
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
