"""The report's time axis: counts per time slot while the records stream by, regrouped at the
end into about a hundred buckets for the charts.

Slots are aligned on the epoch and 2**exp seconds wide; whenever there are more than
`TimeSlots.LIMIT` of them the width doubles (two neighbours merge), so a night-long run of
millions of rows keeps a few thousand slots, and each chart bucket is a whole number of slots
(no row is split between buckets, none counted twice).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .model import Status

__all__ = ["STATUSES", "TimeSlots", "Timeline"]

STATUSES = list(Status)


@dataclass(frozen=True)
class Timeline:
    """Counts per time bucket. Bucket i covers seconds [offset + i*width, +width) after
    `origin` (epoch seconds): the run's start, or the first record when that is unknown."""

    origin: float
    origin_is_start: bool
    offset: float
    width: float
    rows: list[int]
    requests: list[int]
    retries: list[int]
    rate_limited: list[int]
    #: rows per bucket for each status that has any
    statuses: dict[str, list[int]]

    @property
    def span(self) -> float:
        return self.offset + self.width * len(self.rows)


class TimeSlots:
    """Counters per epoch-aligned slot of 2**exp seconds: [rows per status..., requests,
    retries, 429s]. Invariant: at most LIMIT slots; adding past it doubles the width."""

    LIMIT = 4096
    _FIRST_EXP = -7  # 1/128 s: finer than that, the 1 ms timestamps say little

    def __init__(self) -> None:
        self.exp = self._FIRST_EXP
        self.slots: dict[int, list[int]] = {}
        self.first = math.inf
        self.last = -math.inf

    @property
    def width(self) -> float:
        return 2.0 ** self.exp

    def add(self, ts: float, status: int, requests: int, retries: int, rate_limited: int) -> None:
        self.first, self.last = min(self.first, ts), max(self.last, ts)
        key = math.floor(ts / self.width)
        slot = self.slots.get(key)
        if slot is None:
            slot = self.slots[key] = [0] * (len(STATUSES) + 3)
            while len(self.slots) > self.LIMIT:
                self._coarsen()
                slot = self.slots[math.floor(ts / self.width)]
        slot[status] += 1
        slot[-3] += requests
        slot[-2] += retries
        slot[-1] += rate_limited

    def _coarsen(self) -> None:
        merged: dict[int, list[int]] = {}
        for key, slot in self.slots.items():
            into = merged.get(key >> 1)
            if into is None:
                merged[key >> 1] = slot
            else:
                for i, n in enumerate(slot):
                    into[i] += n
        self.slots, self.exp = merged, self.exp + 1

    def timeline(self, start: float | None, rows: int) -> Timeline | None:
        """About 100 buckets (fewer for a small file), each a whole number of slots."""
        if not self.slots:
            return None
        origin_is_start = start is not None and 0 < start <= self.first
        origin = start if start is not None and origin_is_start else self.first
        width = self.width
        first_key = math.floor(origin / width)
        span = math.floor(self.last / width) - first_key + 1
        per_bucket = max(1, math.ceil(span / min(100, max(12, rows // 20))))
        count = math.ceil(span / per_bucket)
        sums = [[0] * (len(STATUSES) + 3) for _ in range(count)]
        for key, slot in self.slots.items():
            into = sums[(key - first_key) // per_bucket]
            for i, n in enumerate(slot):
                into[i] += n
        statuses = {s.value: [b[i] for b in sums] for i, s in enumerate(STATUSES)
                    if any(b[i] for b in sums)}
        return Timeline(origin, origin_is_start, first_key * width - origin, per_bucket * width,
                        rows=[sum(b[:len(STATUSES)]) for b in sums],
                        requests=[b[-3] for b in sums], retries=[b[-2] for b in sums],
                        rate_limited=[b[-1] for b in sums], statuses=statuses)
