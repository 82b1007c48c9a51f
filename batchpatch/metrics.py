"""The run's numbers as a Prometheus text file, for node_exporter's textfile collector.

`MetricsFile(path, job).write(counters, elapsed, exit_code=None)` writes every series from the
run's Counters (a fresh CollectorRegistry per MetricsFile, never the global one) through
prometheus_client.write_to_textfile, which writes a temp file beside `path` and renames it: the
collector never reads half a file. It can be called during the run (exit code not yet known)
and once at the end, whatever the end: a run refused with exit 2 before anything was sent (its
input, an output, the lock, the preflight) writes it too, no row recorded. Writing never
raises into the run: the first failure is logged (logger "batchpatch"), later ones are not,
and the run goes on.

Series, each with the label `job`:
  batchpatch_rows_total{status}            records per status (on --resume: earlier runs' too)
  batchpatch_requests_total{method,code}   requests by method and HTTP status or timeout/error
  batchpatch_rate_limited_total            answers 429
  batchpatch_retries_total                 further attempts after transient failures
  batchpatch_run_duration_seconds          seconds since the run started
  batchpatch_last_run_exit_code            the exit status (only once the run has ended; 2 too)
  batchpatch_last_run_timestamp_seconds    when the file was written (at the end: run's end)
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, write_to_textfile
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .counters import Counters
from .model import Status

__all__ = ["MetricsFile"]

log = logging.getLogger("batchpatch")


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """The numbers of one write, copied from the counters so a write shows one moment."""

    statuses: dict[str, int]
    requests: dict[tuple[str, str], int]
    rate_limited: int
    retries: int
    elapsed: float
    exit_code: int | None
    written_at: float


class _RunCollector(Collector):
    """Yields the series of the latest snapshot."""

    def __init__(self, job: str) -> None:
        self.job = job
        self.snapshot: _Snapshot | None = None

    def collect(self) -> Iterator[Metric]:
        s, job = self.snapshot, self.job
        if s is None:
            return
        rows = CounterMetricFamily("batchpatch_rows", "Result records per status.",
                                   labels=["job", "status"])
        for status, count in s.statuses.items():
            rows.add_metric([job, status], count)
        yield rows
        requests = CounterMetricFamily("batchpatch_requests",
                                       "Requests sent, by method and HTTP status.",
                                       labels=["job", "method", "code"])
        for (method, code), count in sorted(s.requests.items()):
            requests.add_metric([job, method, code], count)
        yield requests
        yield _one(CounterMetricFamily, "batchpatch_rate_limited", "Answers 429.", job,
                   s.rate_limited)
        yield _one(CounterMetricFamily, "batchpatch_retries",
                   "Further attempts after transient failures.", job, s.retries)
        yield _one(GaugeMetricFamily, "batchpatch_run_duration_seconds",
                   "Seconds since the run started.", job, s.elapsed)
        if s.exit_code is not None:
            yield _one(GaugeMetricFamily, "batchpatch_last_run_exit_code",
                       "Exit status of the last run (0 ok, 1 rows failed, 2 usage, "
                       "3 aborted, 130/143 interrupted).", job, s.exit_code)
        yield _one(GaugeMetricFamily, "batchpatch_last_run_timestamp_seconds",
                   "When the last run wrote this file (at its end: when it ended).", job,
                   s.written_at)


def _one(family: type[CounterMetricFamily] | type[GaugeMetricFamily], name: str, doc: str,
         job: str, value: float) -> Metric:
    metric = family(name, doc, labels=["job"])
    metric.add_metric([job], value)
    return metric


class MetricsFile:
    """A run's metrics file. State: `_failed` is set after the first failed write (logged)."""

    def __init__(self, path: str | os.PathLike[str], job: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = os.fspath(path)
        self.job = job
        self._clock = clock
        self._collector = _RunCollector(job)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self._collector)
        self._failed = False

    def write(self, counters: Counters, elapsed: float, exit_code: int | None = None) -> bool:
        """Write the file from `counters`; False (logged the first time) if it failed."""
        try:
            self._collector.snapshot = _Snapshot(
                statuses={status.value: counters.statuses.get(status, 0) for status in Status},
                requests=dict(counters.requests),
                rate_limited=counters.rate_limited,
                retries=counters.retries,
                elapsed=elapsed,
                exit_code=exit_code,
                written_at=self._clock(),
            )
            write_to_textfile(self.path, self.registry)
        except Exception as exc:  # metrics never stop a run
            if not self._failed:
                why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                log.warning("%s: cannot write the metrics file: %s (the run goes on)",
                            self.path, why)
            self._failed = True
            return False
        return True
