"""The worker pool: feeds rows through a bounded queue to N workers and their outcomes to the
writer. Only orchestration here: what to send is plan.py, how to send it is api.py.

State and invariants:
- `_active` maps a key to the rows with that key waiting behind the one in flight. A key is in
  `_active` exactly while one worker owns it; that worker runs the waiting rows in input order
  after its own, so rows with the same key are never concurrent and the last one wins.
- Once `_stopping` is set (signal, abort, canary) no new row starts; rows already started finish
  (unless cancelled) and get their record. A row that never started gets no record, so that
  `--resume` processes it later.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Iterator
from typing import Any

from .api import ApiClient, Attempts, Target
from .errors import AbortRun, BreakerOpen, NotFound, Rejected, RowError, TransientError
from .model import Outcome, Row, Status
from .plan import CellError, Conflict, check_readback, plan_patch
from .policy import Breaker
from .resume import PriorResults
from .writer import ResultsWriter

__all__ = ["CanaryFailed", "Engine", "Mode"]

log = logging.getLogger("batchpatch")


class CanaryFailed(AbortRun):
    """A row among the first --canary rows failed: the rest of the file is not sent."""

_BATCH = 256
_REREAD_DELAY = 0.5  # one more read-back after a mismatch, for servers slow to show a write


class Mode:
    """The per-row switches of a run."""

    __slots__ = ("canary", "dry_run", "limit", "log_rows", "no_verify", "null_token")

    def __init__(self, dry_run: bool = False, no_verify: bool = False,
                 null_token: str | None = None, limit: int | None = None,
                 canary: int | None = None, log_rows: bool = False) -> None:
        self.dry_run = dry_run
        self.no_verify = no_verify
        self.null_token = null_token
        self.limit = limit  # process at most this many rows
        self.canary = canary  # stop (exit 3) if any of the first N rows fails
        self.log_rows = log_rows  # a log line per row at info level (-v)


class Engine:
    """Runs every row of an input through fetch, plan, patch, verify."""

    def __init__(
        self,
        client: ApiClient,
        target: Target,
        writer: ResultsWriter,
        mode: Mode,
        concurrency: int,
        breaker: Breaker,
        prior: PriorResults | None = None,
    ) -> None:
        self._client = client
        self._target = target
        self._writer = writer
        self._mode = mode
        self._concurrency = concurrency
        self._breaker = breaker
        self._prior = prior
        self._queue: asyncio.Queue[Row | None] = asyncio.Queue(maxsize=concurrency * 2)
        self._active: dict[str, deque[Row]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._source_name = "the input"
        self._stopping = False
        self.abort: AbortRun | None = None
        self.rows_read = 0
        self.rows_done = 0
        self.rows_skipped = 0  # recorded by an earlier run (--resume)
        self.rows_failed = 0
        self.input_finished = False
        self.limited = False
        self._first_error: str | None = None
        self._row_level = logging.INFO if mode.log_rows else logging.DEBUG

    @property
    def unfinished(self) -> int:
        """Rows read from the input that got no record (stopped or aborted)."""
        return self.rows_read - self.rows_done - self.rows_skipped

    async def run(self, rows: Iterator[Row], source_name: str = "the input") -> None:
        self._source_name = source_name
        self._workers = [asyncio.create_task(self._work()) for _ in range(self._concurrency)]
        feeder = asyncio.create_task(self._feed(rows))
        try:
            await asyncio.gather(*self._workers, return_exceptions=True)
        finally:
            feeder.cancel()
            await asyncio.gather(feeder, return_exceptions=True)

    def stop(self) -> None:
        """Start no new row; let rows in flight finish."""
        self._stopping = True

    def cancel(self) -> None:
        """Stop now: cancel rows in flight too (they get no record)."""
        self._stopping = True
        for task in self._workers:
            task.cancel()

    async def _feed(self, rows: Iterator[Row]) -> None:
        limit, canary = self._mode.limit, self._mode.canary
        try:
            while not self._stopping and not self.limited:
                batch = await asyncio.to_thread(_take, rows, _BATCH)
                if not batch:
                    self.input_finished = True
                    break
                for row in batch:
                    if self._stopping:
                        break
                    started = self.rows_read - self.rows_skipped
                    if limit is not None and started >= limit:
                        self.limited = True  # rows already started still finish
                        break
                    if canary is not None and started == canary:
                        await self._check_canary(canary)
                        if self._stopping:
                            break
                    self.rows_read += 1
                    await self._dispatch(row)
            if canary is not None and self.input_finished and not self._stopping:
                await self._check_canary(self.rows_read - self.rows_skipped)
        except (OSError, EOFError, ValueError) as exc:  # e.g. a gzip file cut short
            self.abort = self.abort or AbortRun(
                f"{self._source_name}: cannot read past row {self.rows_read}: "
                f"{type(exc).__name__}: {exc}")
            self._stopping = True
        # One end-of-input mark per worker. Not in a `finally`: when the feeder is cancelled
        # the workers are already gone, and a put on a full queue would wait forever.
        for _ in range(self._concurrency):
            await self._queue.put(None)

    async def _check_canary(self, n: int) -> None:
        """Wait for the first `n` rows to finish; abort the run if any of them failed."""
        while self.rows_done < n and not self._stopping:
            await asyncio.sleep(0.02)
        if self.rows_failed and not self._stopping:
            self._abort(CanaryFailed(
                f"canary: {self.rows_failed} of the first {n} rows failed (first: "
                f"{self._first_error}); the rest of the file was not sent (--canary)"))

    async def _dispatch(self, row: Row) -> None:
        if self._prior is not None and (status := self._prior.get(row.line)) is not None:
            self.rows_skipped += 1
            self._writer.keep_prior(status, row.raw)
            return
        if row.problem is not None:
            self._finish(Outcome(row.line, row.key, Status.INVALID, error=row.problem,
                                 raw=row.raw, finished_at=time.time()))
            return
        assert row.key is not None
        waiting = self._active.get(row.key)
        if waiting is not None:
            waiting.append(row)
            return
        self._active[row.key] = deque()
        await self._queue.put(row)

    async def _work(self) -> None:
        while (row := await self._queue.get()) is not None:
            key = row.key
            assert key is not None
            try:
                while row is not None and not self._stopping:
                    self._finish(await self._process(row))
                    waiting = self._active[key]
                    row = waiting.popleft() if waiting else None
            except AbortRun as exc:
                self._abort(exc)
                return
            finally:
                self._active.pop(key, None)

    def _finish(self, outcome: Outcome) -> None:
        self.rows_done += 1
        if outcome.status.is_failure:
            self.rows_failed += 1
            if self._first_error is None:
                self._first_error = f"row {outcome.row} {outcome.status.value}: {outcome.error}"
        if log.isEnabledFor(self._row_level):
            log.log(self._row_level, "row %d %s %s%s", outcome.row, outcome.pkey,
                    outcome.status.value, f": {outcome.error}" if outcome.error else "",
                    extra={"event": "row", "row": outcome.row, "pkey": outcome.pkey,
                           "status": outcome.status.value, "attempt": outcome.attempts,
                           "http_status": outcome.http_status})
        self._writer.put(outcome)

    def _abort(self, exc: AbortRun) -> None:
        if self.abort is None:
            self.abort = exc
        current = asyncio.current_task()
        if current not in self._workers:
            current = None
        self._stopping = True
        for task in self._workers:
            if task is not current:
                task.cancel()

    async def _process(self, row: Row) -> Outcome:
        started = time.perf_counter()
        attempts = Attempts()
        outcome = Outcome(row.line, row.key, Status.FAILED, raw=row.raw)
        foreign = False
        try:
            await self._apply(row, attempts, outcome)
        except NotFound as exc:
            outcome.status, outcome.error = Status.NOT_FOUND, exc.message
        except CellError as exc:
            outcome.status, outcome.error = Status.INVALID, str(exc)
        except Conflict as exc:
            outcome.status, outcome.error = Status.CONFLICT, str(exc)
            outcome.mismatch = exc.mismatch
        except TransientError as exc:
            outcome.status = Status.FAILED
            outcome.error = f"{exc.message} (gave up after {attempts.count} attempts)"
            foreign = True
        except RowError as exc:
            outcome.status, outcome.error = Status.FAILED, exc.message
        outcome.attempts = attempts.count
        outcome.http_status = attempts.http_status
        outcome.elapsed_ms = (time.perf_counter() - started) * 1000
        outcome.rate_limited = attempts.rate_limited
        outcome.retries = attempts.retries
        outcome.finished_at = time.time()
        if (why := self._breaker.record(foreign)) is not None:
            self._finish(outcome)  # this row's own outcome is known; the abort is for the rest
            raise BreakerOpen(f"breaker open: {why}; last error: {outcome.error}")
        return outcome

    async def _apply(self, row: Row, attempts: Attempts, outcome: Outcome) -> None:
        assert row.key is not None
        if self._target.lookup_template is not None:
            url, profile = await self._look_up(row.key, attempts)
            outcome.pkey = profile.get("PKey", row.key)
        else:
            url = self._target.url_for(row.key)
            profile = await self._client.get(url, attempts)
        plan = plan_patch(profile, row.values, row.typed, self._mode.null_token)
        if not plan.changed:
            outcome.status = Status.UNCHANGED
            return
        outcome.changed = plan.changed
        if self._mode.dry_run:
            outcome.status = Status.DRY_RUN
            return
        answer = await self._client.patch(url, plan.body, attempts)
        if self._mode.no_verify:
            outcome.status = Status.UPDATED
            return
        readback_url = self._target.follow(answer.get("href"), url)
        mismatch: dict[str, list[object]] = {}
        for reread in (False, True):
            if reread:
                await asyncio.sleep(_REREAD_DELAY)
            try:
                mismatch = check_readback(plan, await self._client.get(readback_url, attempts))
            except NotFound as exc:
                outcome.status = Status.VERIFY_MISMATCH
                outcome.error = f"read-back of {readback_url} found nothing ({exc.message})"
                return
            if not mismatch:
                outcome.status = Status.UPDATED
                return
        outcome.status, outcome.mismatch = Status.VERIFY_MISMATCH, mismatch
        outcome.error = "read-back differs: " + "; ".join(
            f"{name}: sent {sent!r}, found {found!r}" for name, (sent, found) in mismatch.items()
        )


    async def _look_up(self, key: str, attempts: Attempts) -> tuple[str, dict[str, Any]]:
        """The profile a lookup (e.g. byEmail) finds for `key`, and the URL to patch it at."""
        found = await self._client.get_list(self._target.lookup_url(key), attempts)
        if not found:
            raise NotFound(f"no profile matches {key!r}", attempts.http_status)
        if len(found) > 1:
            raise Rejected(f"ambiguous: {len(found)} profiles match {key!r}",
                           attempts.http_status)
        profile = found[0]
        pkey = profile.get("PKey")
        if not isinstance(pkey, str) or not pkey:
            raise Rejected(f"the lookup for {key!r} answered a profile with no PKey")
        # Adobe: follow the href the API gave rather than building the URL by hand
        url = self._target.follow(profile.get("href"), self._target.url_for(pkey))
        return url, profile


def _take(rows: Iterator[Row], n: int) -> list[Row]:
    batch = []
    for row in rows:
        batch.append(row)
        if len(batch) >= n:
            break
    return batch
