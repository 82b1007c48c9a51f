"""The one task that writes a run's records: a results line per row, and the failed rows' raw
bytes to the failures file; the journal of writes about to be sent is written through it too.

Records are written whole (one `write` of complete lines) and flushed to the OS as soon as the
queue runs dry, so a killed process loses nothing already finished; fsync runs at least once a
second and at close, so a crashed machine loses at most that second. When a file cannot be
written (disk full, file-size limit), the writer says so once through `on_error` (the engine
stops sending at once), writes nothing more, and what it wrote stays readable.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from .counters import Counters
from .errors import WriteFailed
from .failures import FailuresFile
from .model import WRITE_STATUSES, Outcome, Status
from .resume import Journal

__all__ = ["ResultsWriter"]

FSYNC_EVERY = 1.0


def _why(exc: OSError) -> str:
    name = errno.errorcode.get(exc.errno or 0, "")
    text = exc.strerror or str(exc) or type(exc).__name__
    return f"{text} ({name})" if name else text


class ResultsWriter:
    """Appends records to the results file and failed rows to the failures file.

    State: `_broken` is set once a write failed; from then on nothing is written (a record
    half-written by a full disk is dropped by --resume's tail repair)."""

    def __init__(self, results: Path, failures: FailuresFile, counters: Counters,
                 append: bool, on_error: Callable[[WriteFailed], None],
                 journal: Journal | None = None) -> None:
        self.results_path = results
        # unbuffered: each batch of whole lines is one write, and a write the disk refuses can
        # be cut back to the last whole line
        self._results: BinaryIO = open(results, "ab" if append else "wb", buffering=0)  # noqa: SIM115
        self._size = os.fstat(self._results.fileno()).st_size
        self._failures = failures
        self._counters = counters
        self._on_error = on_error
        self._journal = journal
        self._queue: asyncio.Queue[Outcome | None] = asyncio.Queue()
        self._last_sync = time.monotonic()
        self._dirty = False
        self._broken: WriteFailed | None = None

    @property
    def broken(self) -> WriteFailed | None:
        return self._broken

    def put(self, outcome: Outcome) -> None:
        """Queue a row's outcome for writing (never blocks)."""
        self._queue.put_nowait(outcome)

    def replaces(self, status: Status) -> None:
        """A row recorded `status` by an earlier run gets a new record now (a retry)."""
        self._counters.statuses[status] -= 1

    def keep_prior(self, listed: bool, raw: bytes) -> None:
        """A row an earlier run recorded (--resume): list it again if it failed (and may be
        sent again: PriorResults.listed)."""
        if listed and self._broken is None:
            self._safe_failure(raw)

    def intend(self, row: int, pkey: str | None, changed: dict[str, list[Any]],
               action: str = "patch") -> None:
        """Put a write's intended change on disk before it is sent; raises WriteFailed."""
        if self._broken is not None:
            raise self._broken
        if self._journal is not None:
            try:
                self._journal.write(row, pkey, changed, action)
            except WriteFailed as exc:
                self._fail(exc)
                raise

    async def run(self) -> None:
        """Write outcomes until `finish()` is queued."""
        while True:
            if self._dirty:
                wait = max(0.0, self._last_sync + FSYNC_EVERY - time.monotonic())
                try:
                    outcome = await asyncio.wait_for(self._queue.get(), wait)
                except TimeoutError:
                    self._sync()
                    continue
            else:
                outcome = await self._queue.get()
            batch = []
            while outcome is not None:
                batch.append(outcome)
                if self._queue.empty():
                    break
                outcome = self._queue.get_nowait()
            if batch and self._broken is None \
                    and self._write(b"".join(self._line(o) for o in batch)):
                self._written(batch)
            if outcome is None:
                self._sync()
                self._close()
                return

    def finish(self) -> None:
        """Ask the writer to write what is queued, fsync, close the files and return."""
        self._queue.put_nowait(None)

    @staticmethod
    def _line(outcome: Outcome) -> bytes:
        record = outcome.record()
        if outcome.status.is_failure:
            record["retryable"] = outcome.retryable
        return orjson.dumps(record, option=orjson.OPT_NON_STR_KEYS) + b"\n"

    def _written(self, batch: list[Outcome]) -> None:
        """Count records on disk (only those: the summary agrees with the file) and list the
        failed rows in the failures file (only rows with a record)."""
        counters = self._counters
        for outcome in batch:
            status = outcome.status
            counters.statuses[status] += 1
            counters.recorded += 1
            if outcome.changed and (status in WRITE_STATUSES or status is Status.DRY_RUN):
                counters.changed_fields.update(outcome.changed.keys())
            if status.is_failure:
                if outcome.retryable and outcome.changed:
                    counters.retryable_writes += 1
                if outcome.resend:  # a create that landed (or may have) would land twice
                    self._safe_failure(outcome.raw)
        if self._broken is None:
            try:
                self._failures.flush()
            except OSError as exc:
                self._failures_failed(exc)

    def _write(self, data: bytes) -> bool:
        """Append whole records to the results; False (and the run stopped) if they cannot."""
        try:
            view = memoryview(data)
            while view:
                written = self._results.write(view) or 0
                if written <= 0:
                    raise OSError(errno.ENOSPC, "No space left on device (short write)")
                view = view[written:]
            self._size += len(data)
        except OSError as exc:
            self._cut_back()
            self._fail(WriteFailed(f"{self.results_path}: cannot write the results: "
                                   f"{_why(exc)}; nothing more is sent"))
            return False
        self._dirty = True
        if time.monotonic() - self._last_sync >= FSYNC_EVERY:
            self._sync()
        return True

    def _cut_back(self) -> None:
        """Drop a record half-written by a refused write: the file ends with a whole line."""
        with contextlib.suppress(OSError):  # if this fails too, --resume repairs the tail
            os.ftruncate(self._results.fileno(), self._size)

    def _safe_failure(self, raw: bytes) -> None:
        if self._broken is not None:
            return
        try:
            self._failures.write(raw)
        except OSError as exc:
            self._failures_failed(exc)

    def _failures_failed(self, exc: OSError) -> None:
        self._counters.failures_unwritable = True
        self._fail(WriteFailed(f"{self._failures.path}: cannot write the failed rows: "
                               f"{_why(exc)}; nothing more is sent (the results are whole: "
                               "--resume rebuilds this file)"))

    def _sync(self) -> None:
        if self._broken is None:
            try:
                self._failures.sync()
            except OSError as exc:
                self._failures_failed(exc)
        if self._broken is None:
            try:
                os.fsync(self._results.fileno())
            except OSError as exc:
                self._fail(WriteFailed(f"{self.results_path}: cannot write the results: "
                                       f"{_why(exc)}; nothing more is sent"))
        if self._journal is not None:
            self._journal.sync()
        self._last_sync = time.monotonic()
        self._dirty = False

    def _fail(self, exc: WriteFailed) -> None:
        if self._broken is None:
            self._broken = exc
            self._on_error(exc)

    def _close(self) -> None:
        for path, close in ((self.results_path, self._results.close),
                            (self._failures.path, self._failures.close)):
            try:
                close()
            except OSError as exc:
                if close == self._failures.close:
                    self._counters.failures_unwritable = True
                self._fail(WriteFailed(f"{path}: cannot close: {_why(exc)}"))
        if self._journal is not None:
            self._journal.close()

