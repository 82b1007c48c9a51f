"""One whole run: open the input, take the lock, check or write the manifest, run the engine
with its client and writer, and return the summary (the same dict written to --summary).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import orjson

from .api import ApiClient, Stats
from .auth import Auth, ImsAuth, StaticAuth
from .config import Settings
from .engine import Engine, Mode
from .errors import EXIT_ABORTED, EXIT_FAILURES, EXIT_OK
from .model import FAILURE_STATUSES, Status
from .policy import Breaker, Pacer
from .progress import Progress, count_rows
from .resume import Manifest, PriorResults, RunLock, file_identity
from .rows import open_input
from .writer import ResultsWriter

__all__ = ["execute"]

log = logging.getLogger("batchpatch")

_SIGNAL_EXIT = {signal.SIGINT: 130, signal.SIGTERM: 143}


def _manifest_content(settings: Settings) -> dict[str, Any]:
    identity = {"path": "-"} if settings.input == "-" else file_identity(settings.input)
    return {
        "input": identity,
        "format": settings.input_format,
        "key_column": settings.key_column,
        "delimiter": settings.delimiter,
        "target": settings.target.template,
        "dry_run": settings.dry_run,
        "no_verify": settings.no_verify,
        "null_token": settings.null_token,
    }


def _make_auth(settings: Settings, session: aiohttp.ClientSession) -> Auth:
    if settings.client_id and settings.client_secret:
        return ImsAuth(session, settings.client_id, settings.client_secret, settings.scopes,
                       settings.ims_url, timeout=settings.timeout)
    return StaticAuth(settings.token, settings.api_key)


async def execute(
    settings: Settings,
    handle_signals: bool = False,
    on_engine: Callable[[Engine], None] | None = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Run the job; returns the summary. Raises UsageError before anything is sent."""
    run_id = run_id or uuid.uuid4().hex[:12]
    source = open_input(settings.input, settings.format, settings.key_column, settings.delimiter)
    results, failures, summary_path = settings.output_paths()
    try:
        with RunLock(results):
            manifest = Manifest(results)
            content = _manifest_content(settings)
            prior = None
            if settings.resume and results.exists():
                manifest.check(content)
                prior = PriorResults.load(results)
            else:
                manifest.write(content)
            writer = ResultsWriter(results, failures, source.header_raw, append=prior is not None)
            summary = await _run(settings, source, writer, prior, handle_signals, on_engine)
            summary.update(run_id=run_id, results=str(results), failures=str(failures),
                           summary=str(summary_path))
            _write_json(summary_path, summary)
            return summary
    finally:
        source.close()


async def _run(
    settings: Settings,
    source: Any,
    writer: ResultsWriter,
    prior: PriorResults | None,
    handle_signals: bool,
    on_engine: Callable[[Engine], None] | None,
) -> dict[str, Any]:
    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=settings.concurrency + 4, keepalive_timeout=10)
    stats = Stats()
    pacer = Pacer(settings.rate_policy)
    async with aiohttp.ClientSession(connector=connector, raise_for_status=False) as session:
        auth = _make_auth(settings, session)
        client = ApiClient(session, auth, pacer, settings.retry_policy, settings.timeouts, stats)
        engine = Engine(
            client, settings.target, writer,
            Mode(settings.dry_run, settings.no_verify, settings.null_token, settings.limit,
                 settings.canary, settings.log_rows),
            settings.concurrency, Breaker(settings.max_error_rate, settings.error_window), prior,
        )
        if on_engine:
            on_engine(engine)
        received: list[signal.Signals] = []
        if handle_signals:
            _install_signals(engine, received, settings.grace)
        writer_task = asyncio.create_task(writer.run())
        progress_task = _start_progress(settings, writer, prior)
        try:
            await engine.run(iter(source), settings.input)
        finally:
            writer.finish()
            await writer_task
            if progress_task is not None:
                progress_task.cancel()
                await asyncio.gather(progress_task, return_exceptions=True)
            if handle_signals:
                _remove_signals()
    elapsed = time.monotonic() - started
    token_requests = getattr(auth, "token_requests", 0)
    summary = _summary(settings, engine, writer, stats, pacer, elapsed, received, token_requests)
    if not engine.input_finished:  # stopped early: how many rows still have no record
        total = count_rows(settings.input, settings.input_format)
        summary["rows_without_record"] = None if total is None else max(0, total - summary["rows"])
    else:
        summary["rows_without_record"] = engine.unfinished
    return summary


def _start_progress(settings: Settings, writer: ResultsWriter,
                    prior: PriorResults | None) -> asyncio.Task[None] | None:
    mode = settings.progress
    if mode == "off" or (mode == "auto" and settings.quiet):
        return None
    tty = mode == "bar" or (mode == "auto" and sys.stderr.isatty())
    total = count_rows(settings.input, settings.input_format)
    progress = Progress(lambda: writer.counts, total, tty, settings.progress_every,
                        done_before=prior.count if prior else 0)
    return asyncio.create_task(progress.run())


def _install_signals(engine: Engine, received: list[signal.Signals], grace: float) -> None:
    loop = asyncio.get_running_loop()

    def on_signal(sig: signal.Signals) -> None:
        received.append(sig)
        if len(received) == 1:
            log.warning("%s: finishing the rows in flight (up to %.0f s); again to stop now",
                        sig.name, grace)
            engine.stop()
            loop.call_later(grace, engine.cancel)
        else:
            log.warning("%s again: stopping now", sig.name)
            engine.cancel()

    for sig in _SIGNAL_EXIT:
        loop.add_signal_handler(sig, on_signal, sig)


def _remove_signals() -> None:
    loop = asyncio.get_running_loop()
    for sig in _SIGNAL_EXIT:
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(sig)


def _summary(
    settings: Settings,
    engine: Engine,
    writer: ResultsWriter,
    stats: Stats,
    pacer: Pacer,
    elapsed: float,
    received: list[signal.Signals],
    token_requests: int,
) -> dict[str, Any]:
    counts = {status.value: writer.counts.get(status.value, 0) for status in Status}
    failed = sum(counts[s.value] for s in FAILURE_STATUSES)
    recorded = sum(counts.values())
    if engine.abort is not None:
        exit_code = EXIT_ABORTED
    elif received:
        exit_code = _SIGNAL_EXIT[received[0]]
    else:
        exit_code = EXIT_FAILURES if failed else EXIT_OK
    adapter = pacer.adapter
    processed = engine.rows_done
    return {
        "exit_code": exit_code,
        "rows": recorded,
        "succeeded": recorded - failed,
        "failed": failed,
        "counts": counts,
        "unfinished": engine.unfinished,
        "input_finished": engine.input_finished,
        "limited": engine.limited,
        "resumed_rows": engine.rows_skipped,
        "aborted": str(engine.abort) if engine.abort else None,
        "interrupted": received[0].name if received else None,
        "dry_run": settings.dry_run,
        "would_change": counts[Status.DRY_RUN.value] if settings.dry_run else None,
        "changed_fields": dict(sorted(writer.changed_fields.items())),
        "requests": stats.by_method(),
        "requests_total": stats.total,
        "requests_per_row": round(stats.total / processed, 3) if processed else 0.0,
        "retries": stats.retries,
        "rate_limited": stats.rate_limited,
        "rate_reached": round(stats.total / elapsed, 2) if elapsed else 0.0,
        "rate_lowest_adapted": round(adapter.lowest, 2) if adapter and adapter.lowest else None,
        "rate_cuts": adapter.cuts if adapter else 0,
        "token_requests": token_requests,
        "elapsed_s": round(elapsed, 3),
        "rows_per_s": round(processed / elapsed, 2) if elapsed else 0.0,
    }


def _write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2) + b"\n")
    os.replace(tmp, path)
