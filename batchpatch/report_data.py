"""The report's numbers from a results file, in one streaming pass (two more when a row has
several records, as after an interrupted resume: then each row's last record counts, as in the
summary).

Memory stays bounded whatever the file's length: per row only its latency is kept (4 bytes, for
exact percentiles); the rest are tallies: counts per status, error kinds with a few example
rows, fields with a few sample values, and time slots (report_timeline.py).
"""

from __future__ import annotations

import array
import itertools
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .model import WRITE_STATUSES, Status
from .report_timeline import STATUSES, Timeline, TimeSlots
from .resume import read_records
from .secret import redact

__all__ = [
    "ErrorGroup",
    "Example",
    "FieldChange",
    "Latency",
    "Records",
    "Report",
    "collect",
    "error_kind",
]

#: statuses whose `changed` was sent (or would be, in a dry run): the summary counts these
CHANGE_STATUSES = WRITE_STATUSES | {Status.DRY_RUN}
EXAMPLES_PER_ERROR = 3
SAMPLES_PER_FIELD = 3
MAX_ERROR_KINDS = 10_000
_OTHER = "other errors (too many different ones to list apart)"
_SPECIFIC = re.compile(r"'[^']*'|\"[^\"]*\"|@[\w\-.]+|\b\d+(?:\.\d+)?\b")


def error_kind(message: str) -> str:
    """A message with its row-specific parts (keys, quoted values, numbers) blanked, so that
    the same error on many rows is counted once."""
    return _SPECIFIC.sub("…", message)


def _number(value: Any) -> float:
    """A record's numeric field, 0 when absent or not a number (an older or edited file)."""
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return value
    return 0


@dataclass
class Example:
    """One row an error happened on; `cells` are filled from the input file, when it is read."""

    row: int
    pkey: str | None
    cells: dict[str, Any] | None = None
    #: why the cells are not shown for this row (the line now holds another key...)
    note: str | None = None


@dataclass
class ErrorGroup:
    """Failed rows whose error messages differ only in row-specific parts."""

    status: str
    error: str
    rows: int = 0
    retryable: int = 0
    examples: list[Example] = field(default_factory=list)


@dataclass
class FieldChange:
    """A field the run changed: on how many rows, and a few (before, after) pairs."""

    name: str
    rows: int = 0
    samples: list[tuple[Any, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class Latency:
    """elapsed_ms of the rows that sent a request: percentiles and a histogram."""

    rows: int
    percentiles: dict[str, float | None]
    #: histogram bin edges (ms, one more than counts) and rows per bin
    edges: list[float]
    counts: list[int]
    log_scale: bool


@dataclass
class Records:
    """Everything the report says that comes from the records."""

    rows: int
    counts: dict[str, int]
    retries: int
    requests: int
    rate_limited: int
    errors: list[ErrorGroup]
    fields: list[FieldChange]
    latency: Latency
    timeline: Timeline | None
    #: records left out because a later record of the same row replaced them
    replaced: int = 0

    @property
    def failed(self) -> int:
        return sum(n for s, n in self.counts.items() if Status(s).is_failure)


class _Duplicate(Exception):
    """A row has a second record: start over, keeping each row's last."""


class _Tally:
    """The running totals of one pass."""

    def __init__(self, unique: bool) -> None:
        self.unique = unique  # raise _Duplicate on a row seen twice
        self.seen = bytearray()
        self.counts = [0] * len(STATUSES)
        self.retries = self.requests = self.rate_limited = 0
        self.errors: dict[tuple[str, str], ErrorGroup] = {}
        self.fields: dict[str, FieldChange] = {}
        self.elapsed = array.array("f")
        self.slots = TimeSlots()

    def add(self, record: dict[str, Any]) -> None:
        row = record["row"]
        if self.unique:
            if row >= len(self.seen):
                self.seen.extend(bytes(row + 1 - len(self.seen) + 4096))
            if self.seen[row]:
                raise _Duplicate
            self.seen[row] = 1
        status = Status(record["status"])
        index = STATUSES.index(status)
        self.counts[index] += 1
        attempts, retries = int(_number(record.get("attempts"))), int(_number(
            record.get("retries")))
        rate_limited = int(_number(record.get("rate_limited")))
        self.requests += attempts
        self.retries += retries
        self.rate_limited += rate_limited
        if attempts > 0:
            self.elapsed.append(_number(record.get("elapsed_ms")))
        if (ts := _number(record.get("ts"))) > 0:
            self.slots.add(ts, index, attempts, retries, rate_limited)
        if status.is_failure:
            self._error(record, status)
        if status in CHANGE_STATUSES:  # verify_mismatch too: a failure whose write was sent
            self._changes(record.get("changed"))

    def _error(self, record: dict[str, Any], status: Status) -> None:
        message = redact(str(record.get("error") or "(no message)"))[:300]
        key = (status.value, error_kind(message))
        group = self.errors.get(key)
        if group is None:
            if len(self.errors) >= MAX_ERROR_KINDS:
                key, message = (status.value, _OTHER), _OTHER
                group = self.errors.get(key)
            if group is None:
                group = self.errors[key] = ErrorGroup(status.value, message)
        group.rows += 1
        group.retryable += record.get("retryable") is True
        if len(group.examples) < EXAMPLES_PER_ERROR:
            pkey = record.get("pkey")
            group.examples.append(Example(record["row"], redact(pkey) if isinstance(
                pkey, str) else None))

    def _changes(self, changed: Any) -> None:
        if not isinstance(changed, dict):
            return
        for name, pair in changed.items():
            entry = self.fields.get(name)
            if entry is None:
                entry = self.fields[name] = FieldChange(redact(str(name)))
            entry.rows += 1
            if (isinstance(pair, list) and len(pair) == 2 and len(entry.samples)
                    < SAMPLES_PER_FIELD and tuple(pair) not in entry.samples):
                entry.samples.append((pair[0], pair[1]))

    def result(self, start: float | None, replaced: int) -> Records:
        rows = sum(self.counts)
        errors = sorted(self.errors.values(), key=lambda g: -g.rows)
        fields = sorted(self.fields.values(), key=lambda f: (-f.rows, f.name))
        return Records(rows, {s.value: n for s, n in zip(STATUSES, self.counts, strict=True)},
                       self.retries, self.requests, self.rate_limited, errors, fields,
                       _latency(self.elapsed), self.slots.timeline(start, rows), replaced)


def _latency(elapsed: array.array[float]) -> Latency:
    import numpy as np

    values = np.frombuffer(elapsed, dtype=np.float32).astype(np.float64)
    names = ("p50", "p90", "p99")
    if not len(values):
        return Latency(0, dict.fromkeys((*names, "max")), [], [], False)
    points = np.percentile(values, [50, 90, 99])
    percentiles: dict[str, float | None] = {n: round(float(p), 1) for n, p in zip(
        names, points, strict=True)}
    percentiles["max"] = round(float(values.max()), 1)
    low, high = float(values.min()), float(values.max())
    log_scale = low > 0 and high / low > 50
    if high <= low:
        edges = np.array([low - 0.5, high + 0.5])
    elif log_scale:
        edges = np.geomspace(low, high, 41)
    else:
        edges = np.linspace(low, high, 41)
    counts, _ = np.histogram(values, bins=edges)
    return Latency(len(values), percentiles, [float(e) for e in edges],
                   [int(c) for c in counts], log_scale)


def _whole_lines(path: Path) -> int:
    with open(path, "rb") as fh:
        return sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))


def _read(path: Path, live: bool) -> Iterator[dict[str, Any]]:
    """The records. While a run is writing the file (`live`) it is not touched (no tail
    repair) and only the lines already whole are read: the last may be half-written."""
    if not live:
        yield from read_records(path)
        return
    try:
        whole = _whole_lines(path)
    except OSError:  # missing, a directory...: read_records says so in the user's words
        yield from read_records(path, repair=False)
        return
    yield from itertools.islice(read_records(path, repair=False), whole)


def _last_records(path: Path, live: bool) -> tuple[array.array[int], int]:
    """For each row, the index of its last record in the file; and how many records it has."""
    last = array.array("i")
    index = -1
    for index, record in enumerate(_read(path, live)):
        row = record["row"]
        if row >= len(last):
            last.extend([-1] * (row + 1 - len(last) + 4096))
        last[row] = index
    return last, index + 1


def _tally(records: Iterable[dict[str, Any]], unique: bool) -> _Tally:
    tally = _Tally(unique)
    for record in records:
        tally.add(record)
    return tally


def collect(path: Path, start: float | None = None, live: bool = False) -> Records:
    """The numbers of the results file at `path`; `start` (epoch s) is the run's start, for
    the time axis; `live`: a run is writing the file now. UsageError when the file is missing
    or not a results file."""
    try:
        return _tally(_read(path, live), unique=True).result(start, 0)
    except _Duplicate:
        pass
    last, total = _last_records(path, live=True)  # repaired already, if it is to be
    kept = (r for i, r in enumerate(_read(path, live=True)) if last[r["row"]] == i)
    tally = _tally(kept, unique=False)
    return tally.result(start, total - sum(tally.counts))

@dataclass
class Report:
    """What `batchpatch report` shows: the records' numbers and the files beside them."""

    results: Path
    records: Records
    #: the run's summary record; None when there is none (see `summary_note`)
    summary: dict[str, Any] | None
    summary_path: Path | None
    summary_note: str | None
    #: where the example rows' cells come from, or why they are not shown
    input_note: str
    #: a live run writing the results now (its pid), else None
    writer_pid: int | None = None
