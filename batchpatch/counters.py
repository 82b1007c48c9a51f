"""The run's counters: one object that the client (requests, retries, 429s, tokens), the pacer
(rate cuts), the engine (rows read, rows kept from an earlier run) and the writer (records by
status, fields changed) feed. The summary is built from it and from nothing else's internals.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from .model import Status

__all__ = ["Counters"]


@dataclass
class Counters:
    """Counts for one run. Each field has one writer; everyone else reads."""

    #: (method, status code or "timeout"/"error") -> requests; fed by the client
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    retries: int = 0
    rate_limited: int = 0
    token_requests: int = 0
    #: fed by the rate adapter
    rate_cuts: int = 0
    rate_lowest: float | None = None
    #: fed by the engine: rows taken from the input, and those an earlier run recorded
    rows_read: int = 0
    rows_resumed: int = 0
    #: rows an earlier run recorded as retryable failures, tried again by this one
    retried_from_earlier: int = 0
    #: fed by the writer: records in the results file, by status (earlier runs' included)
    statuses: Counter[Status] = field(default_factory=Counter)
    #: records written by this run
    recorded: int = 0
    #: writes (PATCH or create) this run sent, counted before each goes out
    writes: int = 0
    #: failures of this run that a later --resume will try again and whose write may have
    #: landed (their journal entries must stay)
    retryable_writes: int = 0
    changed_fields: Counter[str] = field(default_factory=Counter)
    #: the failures file could not be written (it is rebuilt by --resume)
    failures_unwritable: bool = False

    #: a moving average of one request's duration, in seconds (0: none yet); fed by the client
    latency: float = 0.0
    #: seconds workers spent waiting out retry backoffs (fed by the client)
    backoff_s: float = 0.0

    def observe(self, seconds: float) -> None:
        self.latency = seconds if not self.latency else self.latency * 0.9 + seconds * 0.1

    def request(self, method: str, label: str) -> None:
        self.requests[(method, label)] += 1

    @property
    def requests_total(self) -> int:
        return sum(self.requests.values())

    def requests_by_method(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for (method, label), count in sorted(self.requests.items()):
            out.setdefault(method, {})[label] = count
        return out

    @property
    def failed(self) -> int:
        return sum(n for status, n in self.statuses.items() if status.is_failure)

    @property
    def records(self) -> int:
        return sum(self.statuses.values())

    @property
    def unfinished(self) -> int:
        """Rows read from the input in this run that have no record."""
        return self.rows_read - self.rows_resumed - self.recorded
