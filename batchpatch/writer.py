"""The one task that writes output files: a results record per row, and the failures file.

Records are written whole (one `write` of a complete line) and flushed to the OS as soon as the
queue runs dry, so a killed process loses nothing already finished; fsync runs at least once a
second and at close, so a crashed machine loses at most that second.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import BinaryIO

import orjson

from .model import Outcome, Status

__all__ = ["ResultsWriter"]

FSYNC_EVERY = 1.0


class ResultsWriter:
    """Appends records to the results file and failed rows' raw bytes to the failures file."""

    def __init__(self, results: Path, failures: Path, header: bytes, append: bool) -> None:
        for path in (results, failures):
            path.parent.mkdir(parents=True, exist_ok=True)
        self.results_path = results
        self.failures_path = failures
        self._results: BinaryIO = open(results, "ab" if append else "wb")  # noqa: SIM115
        self._failures: BinaryIO = open(failures, "wb")  # noqa: SIM115
        if header:
            self._failures.write(header if header.endswith(b"\n") else header + b"\n")
        self._queue: asyncio.Queue[Outcome | None] = asyncio.Queue()
        self._last_sync = time.monotonic()
        self._dirty = False
        self.counts: dict[str, int] = {}
        self.failed_rows = 0
        self.changed_fields: dict[str, int] = {}

    def put(self, outcome: Outcome) -> None:
        """Queue a row's outcome for writing (never blocks)."""
        self._queue.put_nowait(outcome)

    def keep_prior(self, status: Status, raw: bytes) -> None:
        """Account for a record written by an earlier run (--resume); re-list it if it failed."""
        self._count(status)
        if status.is_failure:
            self._write_failure(raw)

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
            lines = []
            while outcome is not None:
                lines.append(self._take(outcome))
                if self._queue.empty():
                    break
                outcome = self._queue.get_nowait()
            if lines:
                self._results.write(b"".join(lines))
                self._results.flush()
                self._failures.flush()
                self._dirty = True
                if time.monotonic() - self._last_sync >= FSYNC_EVERY:
                    self._sync()
            if outcome is None:
                self._sync()
                self._results.close()
                self._failures.close()
                return

    def finish(self) -> None:
        """Ask the writer to write what is queued, fsync, close both files and return."""
        self._queue.put_nowait(None)

    def _take(self, outcome: Outcome) -> bytes:
        status = outcome.status
        self._count(status)
        if status.is_failure:
            self._write_failure(outcome.raw)
        if outcome.changed and status in (Status.UPDATED, Status.DRY_RUN):
            for name in outcome.changed:
                self.changed_fields[name] = self.changed_fields.get(name, 0) + 1
        return orjson.dumps(outcome.record(), option=orjson.OPT_NON_STR_KEYS) + b"\n"

    def _count(self, status: Status) -> None:
        self.counts[status.value] = self.counts.get(status.value, 0) + 1

    def _write_failure(self, raw: bytes) -> None:
        self.failed_rows += 1
        self._failures.write(raw if raw.endswith(b"\n") else raw + b"\n")

    def _sync(self) -> None:
        self._failures.flush()
        os.fsync(self._results.fileno())
        os.fsync(self._failures.fileno())
        self._last_sync = time.monotonic()
        self._dirty = False
