"""The worker pool: feeds rows through a bounded queue to N workers, each running the row
protocol, and their outcomes to the writer. Scheduling only: what a row does is protocol.py.

State and invariants:
- `_active` maps a key to the rows with that key waiting behind the one in flight. A key is in
  `_active` exactly while one worker owns it; that worker runs the waiting rows in input order
  after its own, so rows with the same key are never concurrent and the last one wins.
- Once `_stopping` is set (signal, abort, canary, limit) no new row starts; rows already
  started finish (unless cancelled) and get their record. A row that never started gets no
  record, so that `--resume` processes it later.
- The canary is the first `canary` rows this run starts (rows kept from an earlier run aside);
  `_canary_left` counts those not finished yet, `_canary_failed` those that failed.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .counters import Counters
from .errors import AbortRun, BreakerOpen, CanaryFailed, InputBroken, MaxChangesReached
from .model import Outcome, Row
from .policy import Breaker
from .protocol import RowProtocol

if TYPE_CHECKING:
    from .delete import DeleteProtocol
from .resume import PriorResults

__all__ = ["Engine", "Schedule"]

log = logging.getLogger("batchpatch")

_BATCH = 256


@dataclass(frozen=True, slots=True)
class Schedule:
    """What the engine is asked to do with the input."""

    concurrency: int = 8  # workers at the start (resize() changes it)
    max_concurrency: int = 0  # the most resize() may ask for (0: concurrency)
    limit: int | None = None  # start at most this many rows
    canary: int | None = None  # stop (exit 3) if any of the first N rows fails
    log_rows: bool = False  # a log line per row at info level (-v)


class Engine:
    """Runs every row of an input through the row protocol, `concurrency` at a time."""

    def __init__(
        self,
        protocol: RowProtocol | DeleteProtocol,
        emit: Callable[[Outcome], None],
        schedule: Schedule,
        breaker: Breaker,
        counters: Counters,
        prior: PriorResults | None = None,
        keep_prior: Callable[[bool, bytes], None] | None = None,
    ) -> None:
        self._protocol = protocol
        self._emit = emit
        self._schedule = schedule
        self._breaker = breaker
        self._counters = counters
        self._prior = prior
        self._keep_prior = keep_prior
        self._queue: asyncio.Queue[tuple[Row, int] | None] = asyncio.Queue(
            maxsize=max(schedule.concurrency, schedule.max_concurrency) * 2)
        self._target = schedule.concurrency  # workers wanted; extra ones leave between rows
        self._live = 0
        self._active: dict[str, deque[tuple[Row, int]]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._stopping = False
        self._started = 0  # rows started by this run, in input order
        self._canary_left = schedule.canary or 0
        self._canary_failed: list[str] = []
        self._canary_done = asyncio.Event()
        self.abort: AbortRun | None = None
        self.input_finished = False
        self.limited = False
        self._row_level = logging.INFO if schedule.log_rows else logging.DEBUG

    async def run(self, rows: Iterator[Row]) -> None:
        self._spawn(self._schedule.concurrency)
        feeder = asyncio.create_task(self._feed(rows))
        feeder.add_done_callback(self._feeder_done)
        try:
            while pending := [task for task in self._workers if not task.done()]:
                await asyncio.wait(pending)  # workers added meanwhile are waited for next
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)

    @property
    def workers(self) -> int:
        """Workers running now."""
        return self._live

    def resize(self, workers: int) -> None:
        """Run `workers` rows at a time from now on (--concurrency auto)."""
        cap = self._schedule.max_concurrency or self._schedule.concurrency
        self._target = max(1, min(workers, cap))
        # Rows still queued once the input is read (a small file is read at once) need the
        # workers too; only the end-of-input mark left means there is nothing to grow for.
        work_left = not self.input_finished or self._queue.qsize() > 1
        if not self._stopping and work_left and self._live < self._target:
            self._spawn(self._target - self._live)

    def _spawn(self, n: int) -> None:
        for _ in range(n):
            self._live += 1
            self._workers.append(asyncio.create_task(self._work()))

    def stop(self) -> None:
        """Start no new row; let rows in flight finish."""
        self._stopping = True
        self._canary_done.set()

    def cancel(self) -> None:
        """Stop now: cancel rows in flight too (they get no record)."""
        self.stop()
        for task in self._workers:
            task.cancel()

    def fail(self, exc: AbortRun) -> None:
        """Abort the run from outside a worker (the writer, the outage gate)."""
        self._abort(exc)

    def _feeder_done(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._abort(exc if isinstance(exc, AbortRun) else AbortRun(
                f"cannot go on reading the input: {type(exc).__name__}: {exc}"))

    async def _feed(self, rows: Iterator[Row]) -> None:
        limit, canary = self._schedule.limit, self._schedule.canary
        broken: InputBroken | None = None
        while not self._stopping and not self.limited and broken is None:
            batch, broken = await asyncio.to_thread(_take, rows, _BATCH)
            if not batch and broken is None:
                self.input_finished = True
                break
            for row in batch:
                if self._stopping:
                    break
                if limit is not None and self._started >= limit and not self._is_prior(row):
                    self.limited = True  # rows already started (or queued) still finish
                    break
                if canary is not None and self._started == canary and not self._is_prior(row):
                    await self._check_canary(canary)
                    if self._stopping:
                        break
                await self._dispatch(row)
        if broken is not None and self.abort is None:
            self.abort = broken  # the rows read before the break still run to their record
        # One end-of-input mark; each worker that takes it puts it back for the next. Not in a
        # `finally`: when the feeder is cancelled the workers are already gone, and a put on a
        # full queue would wait forever.
        await self._queue.put(None)

    def _is_prior(self, row: Row) -> bool:
        return self._prior is not None and self._prior.get(row.line) is not None

    async def _check_canary(self, n: int) -> None:
        """Wait for the first `n` rows to finish; abort the run if any of them failed."""
        if self._canary_left:
            await self._canary_done.wait()
        if self._canary_failed and not self._stopping:
            self._abort(CanaryFailed(
                f"canary: {len(self._canary_failed)} of the first {n} rows failed (first: "
                f"{self._canary_failed[0]}); the rest of the file was not sent (--canary)"))

    async def _dispatch(self, row: Row) -> None:
        self._counters.rows_read += 1
        if self._prior is not None and self._prior.get(row.line) is not None:
            self._counters.rows_resumed += 1
            if self._keep_prior is not None:
                self._keep_prior(self._prior.listed(row.line), row.raw)
            return
        seq = self._started
        self._started += 1
        if row.problem is not None or row.key is None:
            self._finish(self._protocol.reject(row), seq)
            return
        waiting = self._active.get(row.key)
        if waiting is not None:
            waiting.append((row, seq))
            return
        self._active[row.key] = deque()
        await self._queue.put((row, seq))

    async def _work(self) -> None:
        try:
            await self._work_rows()
        finally:
            self._live -= 1

    async def _work_rows(self) -> None:
        while self._live <= self._target or self._stopping:
            item = await self._queue.get()
            if item is None:
                self._queue.put_nowait(None)  # the end of the input, for the next worker
                return
            row, seq = item
            key = row.key
            assert key is not None
            try:
                while item is not None and not self._stopping:
                    row, seq = item
                    self._finish(await self._protocol.process(row), seq)
                    waiting = self._active[key]
                    item = waiting.popleft() if waiting else None
            except AbortRun as exc:
                self._abort(exc)
                return
            finally:
                self._active.pop(key, None)

    def _finish(self, outcome: Outcome, seq: int) -> None:
        failed = outcome.status.is_failure
        if log.isEnabledFor(self._row_level):
            log.log(self._row_level, "row %d %s %s%s", outcome.row, outcome.pkey,
                    outcome.status.value, f": {outcome.error}" if outcome.error else "",
                    extra={"event": "row", "row": outcome.row, "pkey": outcome.pkey,
                           "status": outcome.status.value, "attempt": outcome.attempts,
                           "http_status": outcome.http_status})
        self._emit(outcome)
        if seq < (self._schedule.canary or 0):
            if failed:
                self._canary_failed.append(
                    f"row {outcome.row} {outcome.status.value}: {outcome.error}")
            self._canary_left -= 1
            if self._canary_left == 0:
                self._canary_done.set()
        if (why := self._breaker.record(outcome.retryable)) is not None:
            self._abort(BreakerOpen(f"breaker open: {why}; last error: {outcome.error}"))

    def _abort(self, exc: AbortRun) -> None:
        if self.abort is None:
            self.abort = exc
        current = asyncio.current_task()
        self.stop()
        if isinstance(exc, MaxChangesReached):
            return  # the brake: no new write; the rows in flight finish and get their record
        for task in self._workers:
            if task is not current:
                task.cancel()


def _take(rows: Iterator[Row], n: int) -> tuple[list[Row], InputBroken | None]:
    """Up to `n` rows, and the error that stopped the reader early, if any (the rows read
    before it are kept)."""
    batch: list[Row] = []
    try:
        for row in rows:
            batch.append(row)
            if len(batch) >= n:
                break
    except InputBroken as exc:
        return batch, exc
    return batch, None
