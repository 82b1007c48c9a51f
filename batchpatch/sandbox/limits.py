"""The sandbox's own request limit (`rate_limit` requests/s), in the shape `rate_limit_shape`
names. It counts API requests only; the server does not send /ims/ or /_sandbox/ here.

- `sliding` (the default): at most `rate_limit` accepted requests in any last second; a refused
  request gets `Retry-After` = the seconds until the oldest of them leaves the second.
- `bucket`: a token bucket like nginx `limit_req rate=R burst=B nodelay`: it holds up to
  `rate_limit_burst` tokens, starts full, and refills at `rate_limit` tokens per second; each
  accepted request takes one; a request that finds less than one is refused, no Retry-After.
- `window`: fixed windows of `rate_limit_window` seconds, the first starting at the first
  request and each next one on the boundary after it (not at the next request); at most
  `rate_limit * rate_limit_window` requests in a window; refused ones get no Retry-After.
Refused requests spend nothing.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from .config import SandboxConfig

__all__ = ["RateGate", "Refusal"]


@dataclass(frozen=True)
class Refusal:
    """A request over the limit: answer 429, with this Retry-After header if not None."""

    retry_after: str | None


class RateGate:
    """Decides, request by request, whether the server's limit lets it through.

    State between calls, one part per shape (a shape changed at run time starts from its own
    part as it was): `sliding` holds the times of the requests accepted in the last second;
    `bucket` holds its tokens and when they were counted (None before the first request);
    `window` holds when the first window started, which window is current and its count.
    """

    def __init__(self) -> None:
        self.accepted: deque[float] = deque()
        self.clear()

    def clear(self) -> None:
        self.accepted.clear()
        self.tokens = 0.0
        self.counted_at: float | None = None
        self.origin: float | None = None
        self.current = 0
        self.in_window = 0

    def admit(self, config: SandboxConfig, now: float) -> Refusal | None:
        """None if the request at `now` (monotonic seconds) may go on, else why not."""
        if config.rate_limit <= 0:
            return None
        if config.rate_limit_shape == "bucket":
            return self._bucket(config.rate_limit, float(config.rate_limit_burst), now)
        if config.rate_limit_shape == "window":
            return self._window(config.rate_limit * config.rate_limit_window,
                                config.rate_limit_window, now)
        return self._sliding(config.rate_limit, now)

    def _sliding(self, rate: float, now: float) -> Refusal | None:
        accepted = self.accepted
        while accepted and accepted[0] <= now - 1.0:
            accepted.popleft()
        if len(accepted) >= rate:
            wait = max(0.001, accepted[0] + 1.0 - now)
            return Refusal(str(math.ceil(wait)))
        accepted.append(now)
        return None

    def _bucket(self, rate: float, capacity: float, now: float) -> Refusal | None:
        if self.counted_at is None:
            self.tokens = capacity
        else:
            self.tokens = min(capacity, self.tokens + (now - self.counted_at) * rate)
        self.counted_at = now
        if self.tokens < 1.0:
            return Refusal(None)
        self.tokens -= 1.0
        return None

    def _window(self, allowed: float, seconds: float, now: float) -> Refusal | None:
        if self.origin is None:
            self.origin = now
        index = int((now - self.origin) // seconds) if seconds > 0 else 0
        if index != self.current:
            self.current, self.in_window = index, 0
        if self.in_window >= allowed:
            return Refusal(None)
        self.in_window += 1
        return None
