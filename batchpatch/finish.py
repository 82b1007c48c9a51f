"""After a run: the failures file rebuilt from every record (after a resume), a finished
run's results compacted to one record per row with its journal removed, and every end told
to the metrics file and to --notify: a run refused with exit 2 (its input, an output, the lock,
the preflight) as well as one that finished, aborted or was interrupted."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from pathlib import Path
from typing import Any

from .assembly import settings_shown
from .counters import Counters
from .errors import EXIT_USAGE, AbortRun, InputBroken, UsageError
from .metrics import MetricsFile
from .notify import notify
from .outputs import check_outputs
from .resume import Journal, PriorResults, compact
from .rows import open_input
from .secret import redact
from .settings import Settings
from .summary import RunEnd, Summary

__all__ = ["early_summary", "metrics_overwrites", "metrics_to_blame", "rebuild_failures",
           "tell_end", "tell_refused", "tidy"]

log = logging.getLogger("batchpatch")


def rebuild_failures(settings: Settings, final: PriorResults) -> None:
    """After a resume, the failures file lists the failed rows of every record, whether or not
    this run got as far as them: one more pass over the input, written atomically."""
    assert settings.outputs is not None
    path = settings.outputs.failures
    tmp = path.with_name(path.name + ".tmp")
    spec = settings.input
    try:
        source = open_input(spec.path, spec.format, spec.key_column, spec.delimiter)
    except UsageError:
        return
    try:
        out = source.failures_file(tmp)
        try:
            with contextlib.suppress(InputBroken):
                for row in source:
                    if final.listed(row.line):
                        out.write(row.raw)
            out.sync()
        finally:
            out.close()
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        log.warning("%s: could not list every failed row: %s", path, exc.strerror or exc)
    finally:
        source.close()


def tidy(settings: Settings, journal: Journal, resumed: bool, keep_journal: bool) -> None:
    """A finished run: one record per row (the last), and no journal left to replay, unless
    a failure that --resume will retry may have written (its entry gives the before-values)."""
    assert settings.outputs is not None
    results = settings.outputs.results
    try:
        if resumed:
            compact(results)
        if keep_journal:
            journal.close()
        else:
            journal.remove()
    except OSError as exc:
        log.warning("%s: could not tidy the results: %s", results, exc.strerror or exc)


async def tell_end(settings: Settings, record: dict[str, Any], counters: Counters,
                   metrics: MetricsFile | None) -> None:
    """A run's end, told to the metrics file and to --notify; neither changes its exit status."""
    if metrics is not None:
        metrics.write(counters, record["elapsed_s"], record["exit_code"])
    if settings.notify:
        await notify(settings.notify, record, settings.network)


async def tell_refused(settings: Settings, error: UsageError, run_id: str, elapsed: float,
                       started_at: float, counters: Counters,
                       with_metrics: bool = True) -> None:
    """A run refused with exit 2 (its input, its outputs, the lock, the preflight) is told like
    any other end: the summary of a run that ended before its first row, with exit_code 2 and
    the error. The caller raises the error after: the command line prints it and exits 2."""
    assert settings.outputs is not None
    outputs = settings.outputs
    record = {**early_summary(settings, counters, run_id, elapsed, started_at).record(),
              # Summary decides 0/1/3/130/143; a refusal is the one end it never sees
              "exit_code": EXIT_USAGE, "error": redact(error.message)}
    metrics = (MetricsFile(outputs.metrics, outputs.metrics_job)
               if with_metrics and outputs.metrics is not None else None)
    try:
        await tell_end(settings, record, counters, metrics)
    except Exception as exc:  # telling it never replaces the refusal itself
        log.warning("could not report the refused run: %s", redact(f"{type(exc).__name__}: "
                                                                   f"{exc}"))


def early_summary(settings: Settings, counters: Counters, run_id: str, elapsed: float,
                  started_at: float, abort: AbortRun | None = None,
                  rows_without_record: int | None = None) -> Summary:
    """The summary of a run that ended before its first row: aborted while it set up (exit 3)
    or refused (exit 2, see tell_refused)."""
    assert settings.outputs is not None
    outputs = settings.outputs
    return Summary(counters, RunEnd(elapsed, False, abort=abort,
                                    rows_without_record=rows_without_record,
                                    started_at=started_at),
                   settings.mode.dry_run, run_id, outputs.results, outputs.failures,
                   outputs.summary, settings_shown(settings))


def metrics_to_blame(settings: Settings) -> bool:
    """After check_outputs refused the outputs: whether --metrics-file is the one at fault (the
    others pass without it). A bad option: the refusal is told neither there nor to --notify."""
    assert settings.outputs is not None
    if settings.outputs.metrics is None:
        return False
    try:
        check_outputs(settings.input.path, dataclasses.replace(settings.outputs, metrics=None))
    except UsageError:
        return False
    return True


def metrics_overwrites(settings: Settings) -> bool:
    """Whether the metrics file is the input or another output (links resolved): when another
    output is at fault, check_outputs may not have got as far as comparing them."""
    assert settings.outputs is not None
    metrics = settings.outputs.metrics
    if metrics is None:
        return False
    others = [path for flag, path in settings.outputs.all().items() if flag != "--metrics-file"]
    if settings.input.path != "-":
        others.append(Path(settings.input.path))
    try:
        return any(metrics.resolve() == other.resolve() for other in others)
    except (OSError, RuntimeError):
        return True
