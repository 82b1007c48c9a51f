"""The run's summary: built once from the counters and how the run ended; `record()` is the JSON
written to --summary (and returned by the Python API), `text()` the human lines on stderr.
The exit status is decided here, in `exit_code`, and nowhere else."""

from __future__ import annotations

import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .counters import Counters
from .errors import EXIT_ABORTED, EXIT_FAILURES, EXIT_OK, SIGNAL_EXIT, AbortRun
from .model import Status
from .secret import redact

__all__ = ["RunEnd", "Summary", "exit_code"]


def exit_code(abort: AbortRun | None, interrupted: signal.Signals | None, failed: int) -> int:
    """The contract's exit status: 3 aborted, 130/143 interrupted, 1 some rows failed, else 0."""
    if abort is not None:
        return EXIT_ABORTED
    if interrupted is not None:
        return SIGNAL_EXIT[interrupted]
    return EXIT_FAILURES if failed else EXIT_OK


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How the run ended, as the engine and the runner saw it."""

    elapsed: float
    input_finished: bool
    limited: bool = False
    abort: AbortRun | None = None
    interrupted: signal.Signals | None = None
    #: rows of the input with no record yet (None: the input cannot be counted cheaply)
    rows_without_record: int | None = 0
    #: when the run started (seconds since the epoch)
    started_at: float = 0.0
    #: periods the target did not answer: {"start": epoch s, "seconds": s, "probes": n}
    outages: tuple[dict[str, float], ...] = ()


@dataclass(frozen=True, slots=True)
class Summary:
    """What a run did, in numbers."""

    counters: Counters
    end: RunEnd
    dry_run: bool
    run_id: str
    results: Path
    failures: Path
    path: Path
    #: what the run was asked to do (target, input, pace), for the report
    settings: dict[str, Any] | None = None

    @property
    def failed(self) -> int:
        return self.counters.failed

    @property
    def exit_code(self) -> int:
        return exit_code(self.end.abort, self.end.interrupted, self.failed)

    def record(self) -> dict[str, Any]:
        c, end = self.counters, self.end
        counts = {status.value: c.statuses.get(status, 0) for status in Status}
        processed = c.recorded
        elapsed = end.elapsed
        return {
            "exit_code": self.exit_code,
            "rows": c.records,
            "succeeded": c.records - c.failed,
            "failed": c.failed,
            "counts": counts,
            "unfinished": c.unfinished,
            "input_finished": end.input_finished,
            "limited": end.limited,
            "resumed_rows": c.rows_resumed,
            "aborted": redact(str(end.abort)) if end.abort else None,
            "interrupted": end.interrupted.name if end.interrupted else None,
            "dry_run": self.dry_run,
            "would_change": counts[Status.DRY_RUN.value] if self.dry_run else None,
            "changed_fields": dict(sorted(c.changed_fields.items())),
            "requests": c.requests_by_method(),
            "requests_total": c.requests_total,
            "requests_per_row": round(c.requests_total / processed, 3) if processed else 0.0,
            "retries": c.retries,
            "rate_limited": c.rate_limited,
            "rate_reached": round(c.requests_total / elapsed, 2) if elapsed else 0.0,
            "rate_lowest_adapted": round(c.rate_lowest, 2) if c.rate_lowest else None,
            "rate_cuts": c.rate_cuts,
            "token_requests": c.token_requests,
            "elapsed_s": round(elapsed, 3),
            "rows_per_s": round(processed / elapsed, 2) if elapsed else 0.0,
            "rows_without_record": end.rows_without_record,
            "retried_from_earlier": c.retried_from_earlier,
            "outages": list(end.outages),
            "started_at": round(end.started_at, 3),
            "settings": self.settings or {},
            "max_changes": self._max_changes(counts),
            "run_id": self.run_id,
            "results": str(self.results),
            "failures": str(self.failures),
            "failures_complete": not c.failures_unwritable,
            "summary": str(self.path),
        }

    def _max_changes(self, counts: dict[str, int]) -> dict[str, Any] | None:
        limit = (self.settings or {}).get("max_changes")
        if limit is None:
            return None
        writes = counts[Status.DRY_RUN.value] if self.dry_run else self.counters.writes
        return {"limit": limit, "writes": writes, "dry_run": self.dry_run,
                "reached": writes > limit if self.dry_run else writes >= limit}

    def text(self) -> str:
        return summary_text(self.record())


def summary_text(summary: dict[str, Any]) -> str:
    """The human lines for a summary record."""
    counts = ", ".join(f"{n} {status}" for status, n in summary["counts"].items() if n)
    lines = [
        f"batchpatch: {summary['rows']} rows in {summary['elapsed_s']:.1f} s "
        f"({summary['rows_per_s']:.1f} rows/s): {counts or 'nothing to do'}",
    ]
    requests = "; ".join(
        f"{method} {sum(codes.values())} ("
        + ", ".join(f"{code}: {n}" for code, n in codes.items()) + ")"
        for method, codes in summary["requests"].items()
    )
    lines.append(f"requests: {requests or 'none'}; retries {summary['retries']}; "
                 f"429s {summary['rate_limited']}")
    if summary.get("resumed_rows"):
        lines.append(f"resumed: {summary['resumed_rows']} rows kept from the earlier run")
    if summary.get("retried_from_earlier"):
        lines.append(f"retried: {summary['retried_from_earlier']} rows that an earlier run could "
                     "not finish for reasons not their own")
    if summary.get("outages"):
        periods = ", ".join(f"{o['seconds']:.1f} s ({o['probes']} probes)"
                            for o in summary["outages"])
        lines.append(f"outages ridden out: {periods}")
    if summary.get("unfinished") or summary.get("aborted") or summary.get("interrupted"):
        left = summary.get("rows_without_record")
        left_text = f"~{left} rows have no record yet" if left is not None else (
            f"{summary['unfinished']} rows read but not finished, the rest of the input unread")
        lines.append(f"stopped early: {left_text}; run again with --resume to complete")
    limit = summary.get("max_changes")
    if limit and limit["dry_run"]:
        verdict = "would be reached" if limit["reached"] else "would not be reached"
        lines.append(f"--max-changes {limit['limit']} {verdict}: {limit['writes']} rows would "
                     "change")
    if summary.get("limited"):
        lines.append("stopped at --limit: the rest of the file was not read; --resume "
                     "(without --limit) does the rest")
    lines.append(f"results: {summary['results']}")
    if summary["failed"] and summary.get("failures_complete", True):
        lines.append(f"failures ({summary['failed']} rows, ready to re-run): {summary['failures']}")
    elif summary["failed"]:
        lines.append(f"failures: {summary['failures']} could not be written in full; "
                     "--resume rebuilds it")
    lines.append(f"summary: {summary['summary']}  exit {summary['exit_code']}")
    return "\n".join(lines)
