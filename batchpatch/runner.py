"""One whole run: check the outputs, open the input, take the lock, check or write the manifest,
wire transport → auth → client → row protocol → engine → writer, run, finish the files, and
return the summary (the same dict written to --summary).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import signal
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from . import signals
from .api import ApiClient
from .assembly import create_url, make_auth, manifest_content, settings_shown
from .columns import check_names
from .counters import Counters
from .delete import DeleteProtocol
from .engine import Engine, Schedule
from .errors import (
    EXIT_ABORTED,
    AbortRun,
    MaxChangesReached,
    UsageError,
    WriteFailed,
)
from .finish import (
    early_summary,
    metrics_overwrites,
    metrics_to_blame,
    rebuild_failures,
    tell_end,
    tell_refused,
    tidy,
)
from .metadata import check_fields, input_columns, load_schema, preflight
from .metrics import MetricsFile
from .model import Outcome, Row
from .network import register_env_proxy_secrets
from .outputs import check_outputs, write_json_atomic
from .pacing import OutageGate, Pacer
from .policy import Breaker
from .progress import Progress, count_rows
from .protocol import BeforeWrite, RowMode, RowProtocol
from .resume import Journal, Manifest, PriorResults, RunLock
from .rows import InputFile, detect_format, open_input
from .settings import Settings
from .summary import RunEnd, Summary
from .transport import AiohttpTransport, Transport
from .writer import ResultsWriter

__all__ = ["execute", "initial_workers", "quiet_leftovers", "workers_for"]

AUTOSIZE_EVERY = 1.0
#: workers beyond rate x latency: latency varies, and a row's requests do not follow at once
HEADROOM = 1.25


def workers_for(rate: float, latency: float, cap: int) -> int:
    """Workers enough for `rate` requests a second when one takes `latency` seconds."""
    if latency <= 0:
        return max(4, min(cap, 8))
    return max(4, min(cap, math.ceil(rate * latency * HEADROOM) + 2))


def initial_workers(settings: Settings) -> int:
    """--concurrency auto before any latency is known: 32 with no rate, else what a 50 ms
    answer would need (the first second measures the real one)."""
    pacing = settings.pacing
    if not pacing.rate.rate:
        return min(32, pacing.max_concurrency)
    return workers_for(pacing.rate.rate, 0.05, pacing.max_concurrency)

log = logging.getLogger("batchpatch")


async def execute(
    settings: Settings,
    handle_signals: bool = False,
    on_engine: Callable[[Engine], None] | None = None,
    run_id: str | None = None,
    transport: Transport | None = None,
    command: str = "run",
) -> dict[str, Any]:
    """Run the job (`run`, or `delete`); returns the summary. Raises UsageError before
    anything is sent."""
    run_id = run_id or uuid.uuid4().hex[:12]
    register_env_proxy_secrets()
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    loop.set_exception_handler(quiet_leftovers)
    try:
        return await _execute(settings, handle_signals, on_engine, run_id, transport, command)
    finally:
        loop.set_exception_handler(previous)


def quiet_leftovers(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
    """What the event loop reports about tasks cancelled by an abort (a TLS handshake that
    failed after its worker was stopped): one debug line, never a traceback on stderr."""
    exc = context.get("exception")
    log.debug("left over after the run: %s%s", context.get("message", ""),
              f": {type(exc).__name__}: {exc}" if exc else "")


async def _execute(settings: Settings, handle_signals: bool,
                   on_engine: Callable[[Engine], None] | None, run_id: str,
                   transport: Transport | None, command: str) -> dict[str, Any]:
    assert settings.outputs is not None
    spec, outputs = settings.input, settings.outputs
    started, started_at = time.monotonic(), time.time()
    try:
        check_outputs(spec.path, outputs)
    except UsageError as exc:
        if not metrics_to_blame(settings):
            await tell_refused(settings, exc, run_id, time.monotonic() - started,
                               started_at, Counters(),
                               with_metrics=not metrics_overwrites(settings))
        raise
    run: _Run | None = None
    with contextlib.ExitStack() as stack:
        try:
            source = stack.enter_context(contextlib.closing(
                open_input(spec.path, spec.format, spec.key_column, spec.delimiter)))
            stack.enter_context(RunLock(outputs.results))
            manifest = Manifest(outputs.results)
            content = manifest_content(settings)
            prior = None
            if settings.mode.resume and outputs.results.exists():
                manifest.check(content)
                prior = PriorResults.load(outputs.results)
            else:
                manifest.write(content)
            run = _Run(settings, source, prior, run_id, transport, command)
            summary = await run.go(handle_signals, on_engine)
        except UsageError as exc:  # refused before anything was sent: exit 2, told all the same
            await tell_refused(settings, exc, run_id, time.monotonic() - started,
                               started_at, run.counters if run is not None else Counters())
            raise
        record = summary.record()
        try:
            write_json_atomic(outputs.summary, orjson.dumps(
                record, option=orjson.OPT_INDENT_2) + b"\n")
        except OSError as exc:
            # the summary is what a cron script reads: a run without one did not end well
            why = exc.strerror or str(exc)
            log.error("%s: cannot write the summary: %s; run again with --resume to write it",
                      outputs.summary, why)
            record["exit_code"] = EXIT_ABORTED
            record["summary"] = f"{outputs.summary} (not written: {why})"
        await tell_end(settings, record, run.counters, run.metrics)
        return record


class _Run:
    """The objects of one run and the order they are started and finished in."""

    def __init__(self, settings: Settings, source: InputFile, prior: PriorResults | None,
                 run_id: str, transport: Transport | None, command: str = "run") -> None:
        self.command = command
        self.settings = settings
        self.source = source
        self.prior = prior
        self.run_id = run_id
        self.counters = Counters()
        if prior is not None:
            self.counters.statuses.update(prior.totals())
        self.transport = transport
        self.received: list[signal.Signals] = []
        self.engine: Engine | None = None
        outputs = settings.outputs
        self.metrics = (MetricsFile(outputs.metrics, outputs.metrics_job)
                        if outputs is not None and outputs.metrics is not None else None)

    async def go(self, handle_signals: bool,
                 on_engine: Callable[[Engine], None] | None) -> Summary:
        s = self.settings
        transport = self.transport or AiohttpTransport(s.network)
        try:
            return await self._go(transport, handle_signals, on_engine)
        finally:
            if self.transport is None:
                await transport.close()

    async def _go(self, transport: Transport, handle_signals: bool,
                  on_engine: Callable[[Engine], None] | None) -> Summary:
        s, outputs = self.settings, self.settings.outputs
        assert outputs is not None
        started, self.started_at = time.monotonic(), time.time()
        self.gate = OutageGate(s.pacing.max_outage)
        pacer = Pacer(s.pacing.rate, self.counters, s.pacing.retry, gate=self.gate)
        auth = make_auth(s, transport, self.counters)
        client = ApiClient(transport, auth, pacer, s.pacing.retry, self.counters,
                           timeout=None)
        schema = None
        if self.command == "run":
            columns = input_columns(s.input, self.source)
            check_names(columns, s.input.path)
            if s.mode.fields is not None:
                check_fields(s.mode.fields, columns, s.input.path)
            try:
                schema = await load_schema(s, client)
            except AbortRun as exc:  # e.g. the credentials refused: no row has started
                total = count_rows(s.input.path, detect_format(s.input.path, s.input.format))
                return early_summary(s, self.counters, self.run_id,
                                     time.monotonic() - started, self.started_at, abort=exc,
                                     rows_without_record=total)
            if schema is not None:
                preflight(schema, columns, s.input.path)
        journal = Journal(outputs.results)
        if self.prior is None:
            journal.remove()  # a fresh run: an older run's entries are not this one's
        intents = journal.load() if self.prior is not None else {}
        outputs.results.parent.mkdir(parents=True, exist_ok=True)
        outputs.failures.parent.mkdir(parents=True, exist_ok=True)
        failures = self.source.failures_file(outputs.failures)
        writer = ResultsWriter(outputs.results, failures, self.counters,
                               append=self.prior is not None, on_error=self._write_failed,
                               journal=None if s.mode.dry_run else journal)
        protocol: RowProtocol | DeleteProtocol
        if self.command == "delete":
            protocol = DeleteProtocol(client, s.target, s.mode.no_verify,
                                      self._before_write(writer))
        else:
            mode = RowMode(s.mode.dry_run, s.mode.no_verify, s.input.null_token,
                           s.mode.on_missing, create_url(s), s.target.lookup_field,
                           frozenset(s.mode.fields) if s.mode.fields else None)
            protocol = RowProtocol(client, s.target, mode, self._before_write(writer),
                                   intents=intents, schema=schema)
        engine = self.engine = Engine(
            protocol,
            writer.put if self.prior is None else lambda outcome: self._emit(writer, outcome),
            Schedule(concurrency=s.pacing.concurrency or initial_workers(s),
                     max_concurrency=s.pacing.concurrency or s.pacing.max_concurrency,
                     limit=s.mode.limit, canary=s.mode.canary,
                     log_rows=s.reporting.log_rows),
            Breaker(s.pacing.breaker), self.counters, self.prior, writer.keep_prior)
        if on_engine:
            on_engine(engine)
        if handle_signals:
            signals.install(engine, s.pacing.grace, self.received)
        if self.prior is not None:  # rows already recorded are left out by the reader itself
            prior = self.prior
            self.source.skip = lambda line: prior.get(line) is not None
        writer_task = asyncio.create_task(writer.run())
        watchers = [task for task in (self._start_progress(), self._start_metrics(started),
                                      self._start_autosize(engine, pacer))
                    if task is not None]
        try:
            await engine.run(iter(self.source))
        finally:
            writer.finish()
            await writer_task
            for task in watchers:
                task.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            if handle_signals:
                signals.remove()
        self.counters.rows_read += self.source.skipped
        self.counters.rows_resumed += self.source.skipped
        if self.prior is not None and writer.broken is None:
            rebuild_failures(s, self.prior)
        finished = engine.input_finished and engine.abort is None and not self.received
        if finished and writer.broken is None:
            tidy(s, journal, self.counters.retried_from_earlier > 0,
                 self.counters.retryable_writes > 0)
        return Summary(self.counters, self._end(engine, time.monotonic() - started),
                       s.mode.dry_run, self.run_id, outputs.results, outputs.failures,
                       outputs.summary, settings_shown(s))

    def _before_write(self, writer: ResultsWriter) -> BeforeWrite:
        """Before each write: --max-changes, then the journal entry (both may stop the run)."""
        limit = self.settings.mode.max_changes

        def before(row: Row, pkey: str | None, changed: dict[str, list[Any]],
                   action: str) -> None:
            if limit is not None and self.counters.writes >= limit:
                spec = self.settings.input
                total = count_rows(spec.path, detect_format(spec.path, spec.format))
                of = f" of ~{total:,}" if total else ""
                raise MaxChangesReached(
                    f"max-changes {limit} reached after {self.counters.writes}{of} rows; rerun "
                    "with --resume and a larger --max-changes if the file is right")
            writer.intend(row.line, pkey, changed, action)
            self.counters.writes += 1

        return before

    def _emit(self, writer: ResultsWriter, outcome: Outcome) -> None:
        prior = self.prior
        if prior is not None:
            if (old := prior.status(outcome.row)) is not None:
                writer.replaces(old)  # a retryable failure of an earlier run, tried again
                self.counters.retried_from_earlier += 1
            prior.add(outcome.row, outcome.status, outcome.retryable,  # the row's final word
                      outcome.status.is_failure and not outcome.resend)
        writer.put(outcome)

    def _write_failed(self, exc: WriteFailed) -> None:
        log.debug("%s", exc)  # the run stops at once; the summary's `aborted:` line says it
        if self.engine is not None:
            self.engine.fail(exc)

    def _end(self, engine: Engine, elapsed: float) -> RunEnd:
        c = self.counters
        if engine.input_finished:
            left: int | None = c.unfinished
        else:  # stopped early: how many rows still have no record
            spec = self.settings.input
            total = count_rows(spec.path, detect_format(spec.path, spec.format))
            left = None if total is None else max(0, total - c.records)
        return RunEnd(elapsed, engine.input_finished, engine.limited, engine.abort,
                      self.received[0] if self.received else None, left, self.started_at,
                      tuple(self.gate.periods))

    def _start_autosize(self, engine: Engine, pacer: Pacer) -> asyncio.Task[None] | None:
        """--concurrency auto: every second, as many workers as the rate and the latency
        observed call for."""
        if self.settings.pacing.concurrency is not None or not self.settings.pacing.rate.rate:
            return None
        pacing, counters = self.settings.pacing, self.counters

        async def loop() -> None:
            requests, backoff = counters.requests_total, counters.backoff_s
            while True:
                await asyncio.sleep(AUTOSIZE_EVERY)
                adapted = pacer.adapter.rate if pacer.adapter is not None else None
                # a worker holds a row for its requests' latency and for any retry's wait
                # (429s, 5xx): the pool covers both, per request, over the last interval
                sent = counters.requests_total - requests
                waited = (counters.backoff_s - backoff) / sent if sent else 0.0
                requests, backoff = counters.requests_total, counters.backoff_s
                engine.resize(workers_for(adapted or pacing.rate.rate,
                                          counters.latency + waited, pacing.max_concurrency))

        return asyncio.create_task(loop())

    def _start_metrics(self, started: float) -> asyncio.Task[None] | None:
        """The metrics file, rewritten every --progress-every seconds while the run goes."""
        metrics = self.metrics
        if metrics is None:
            return None
        every = self.settings.reporting.progress_every

        async def loop() -> None:
            while True:
                metrics.write(self.counters, time.monotonic() - started)
                await asyncio.sleep(every)

        return asyncio.create_task(loop())

    def _start_progress(self) -> asyncio.Task[None] | None:
        s = self.settings
        mode = s.reporting.progress
        if mode == "off" or (mode == "auto" and s.reporting.quiet):
            return None
        tty = mode == "bar" or (mode == "auto" and sys.stderr.isatty())
        total = count_rows(s.input.path, detect_format(s.input.path, s.input.format))
        counters = self.counters
        progress = Progress(lambda: {k.value: v for k, v in counters.statuses.items() if v},
                            total, tty, s.reporting.progress_every,
                            done_before=self.prior.count if self.prior else 0)
        return asyncio.create_task(progress.run())

