"""The report's words: the verdict, the settings, and each table's rows as plain strings, shared
by the Markdown and the HTML layouts so that both say the same thing. Text that comes from a
file (errors, keys, cells, values, paths) is redacted here, once."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from .model import Status
from .report_data import Report
from .secret import redact

__all__ = ["Verdict", "duration", "earlier_runs", "error_rows", "example_rows", "field_rows",
           "latency_row", "outage_rows", "plural", "settings_rows", "show_value", "status_rows",
           "totals_line", "verdict", "when"]


def plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def show_value(value: Any, limit: int = 60) -> str:
    """A field value as JSON (so that null, "" and "007" read apart), redacted, cut to `limit`."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    text = redact(text)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def when(epoch: float) -> str:
    """A clock time, in UTC so that every reader sees the same."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return (f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s") + \
        f" ({seconds:.0f} s)"


@dataclass(frozen=True)
class Verdict:
    """The report's first line. kind: ok, failed, aborted, interrupted or running."""

    kind: str
    headline: str
    detail: str
    #: the summary and the records disagree (the summary may be another run's)
    warning: str | None = None

    @property
    def text(self) -> str:
        return f"{self.headline}. {self.detail}"


def verdict(report: Report) -> Verdict:
    records, summary = report.records, report.summary
    if report.writer_pid is not None:
        return Verdict("running", "Still running",
                       f"A run (pid {report.writer_pid}) is writing these results now: "
                       f"{plural(records.rows, 'row')} recorded so far, {records.failed} "
                       "failed. Report again when it has finished for the final word.")
    if summary is None:
        kind, headline, detail = _by_failures(records.failed, records.rows - records.failed,
                                              records.rows)
        return Verdict(kind, headline, detail + " From the records alone: with no summary, "
                       "whether the run finished, was aborted or interrupted is unknown.")
    disagreement = _disagreement(report)
    if disagreement is not None:
        return _from_records(report, disagreement)
    rows, failed = summary["rows"], summary["failed"]
    done = f"{plural(rows, 'row')} recorded, {failed} failed"
    left = summary.get("rows_without_record")
    left_text = (f"{plural(left, 'row')} of the input have no record yet" if isinstance(left, int)
                 else "the rest of the input has no record yet")
    again = f"{left_text}: run the same command with --resume to finish."
    if summary.get("aborted"):
        kind, headline = "aborted", f"Aborted: {redact(summary['aborted'])}"
        detail = f"{done}; {again}"
    elif summary.get("interrupted"):
        kind, headline = "interrupted", f"Interrupted by {redact(summary['interrupted'])}"
        detail = f"{done}; {again}"
    elif summary.get("dry_run") and not failed:
        kind, headline = "ok", f"All good (dry run): {plural(rows, 'row')} checked"
        detail = f"{summary.get('would_change') or 0} would change; nothing was written."
    else:
        kind, headline, detail = _by_failures(failed, rows - failed, rows)
        if failed and summary.get("failures"):
            detail += f" The failed rows are in {redact(str(summary['failures']))}, ready to " \
                      "run again."
    if summary.get("limited"):
        detail += " Stopped at --limit: the rest of the input was not read (--resume without " \
                  "--limit does the rest)."
    detail += f" Exit status {summary['exit_code']}."
    return Verdict(kind, headline, detail)


def _from_records(report: Report, disagreement: str) -> Verdict:
    """The verdict when the summary disagrees with the records: the records are the truth (the
    summary may be another run's), so it is theirs, and it says the summary disagrees."""
    records, summary = report.records, report.summary
    assert summary is not None
    kind, headline, detail = _by_failures(records.failed, records.rows - records.failed,
                                          records.rows)
    detail += (f" From the records: the summary ({redact(str(report.summary_path))}) "
               f"disagrees with them ({plural(summary['rows'], 'row')}, {summary['failed']} "
               f"failed, exit status {summary['exit_code']}) and may be another run's; whether "
               "this run finished, was aborted or interrupted is unknown.")
    return Verdict(kind, headline, detail, disagreement)


def _by_failures(failed: int, succeeded: int, rows: int) -> tuple[str, str, str]:
    if not rows:
        return "ok", "Nothing recorded", "The results file holds no record."
    if failed:
        return "failed", f"{plural(failed, 'row')} failed", \
            f"{succeeded} of {plural(rows, 'row')} succeeded."
    return "ok", f"All good: {plural(rows, 'row')} succeeded", "No row failed."


def _disagreement(report: Report) -> str | None:
    assert report.summary is not None
    theirs = {s: n for s, n in report.summary["counts"].items() if n}
    ours = {s: n for s, n in report.records.counts.items() if n}
    if theirs == ours:
        return None
    differ = ", ".join(f"{s} {theirs.get(s, 0)} vs {ours.get(s, 0)}"
                       for s in sorted(theirs.keys() | ours.keys())
                       if theirs.get(s, 0) != ours.get(s, 0))
    return (f"The summary and the results file disagree (summary vs records: {differ}): the "
            "summary may be from another run. The tables below count the records.")


def totals_line(report: Report) -> str:
    r = report.records
    return (f"{plural(r.rows, 'row')}, {r.failed} failed; {r.requests} requests, {r.retries} "
            f"retries, {r.rate_limited} answers 429.")


def settings_rows(report: Report) -> list[tuple[str, str]] | None:
    """(setting, value) of the run, from the summary; None when they are unknown."""
    summary = report.summary
    if summary is None:
        return None
    settings = summary.get("settings") or {}

    def setting(name: str) -> str:
        value = settings.get(name)
        return "unknown (an older summary)" if value is None else redact(str(value))

    def number(name: str, unit: str) -> str:
        value = settings.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            return f"{value:g} {unit}"
        return setting(name)

    rows = [("target", setting("target"))]
    if settings.get("lookup"):
        rows.append(("lookup", setting("lookup")))
    rows += [
        ("input", setting("input")),
        ("rate", "unlimited (--rate 0)" if settings.get("rate") == 0
         else number("rate", "requests/s (--rate)")),
        ("concurrency", setting("concurrency")),
        ("retries", setting("retries")),
        ("timeout", number("timeout", "s")),
        ("mode", ", ".join(name for key, name in (("dry_run", "dry run"), ("no_verify",
                           "no verify"), ("resume", "resume")) if settings.get(key))
         or "apply and verify"),
        ("started at", when(summary["started_at"]) if summary.get("started_at") else "unknown"),
        ("duration", duration(summary["elapsed_s"]) if "elapsed_s" in summary else "unknown"),
    ]
    if isinstance(summary.get("requests_total"), int):
        rows.append(("requests", f"{summary['requests_total']}, "
                                 f"{summary.get('rate_reached', 0):g} requests/s on average"))
    if isinstance(summary.get("rows_per_s"), int | float):
        rows.append(("rows per second", f"{summary['rows_per_s']:g} on average"))
    rows.append(("run id", redact(str(summary.get("run_id", "unknown")))))
    rows.append(("summary", redact(str(report.summary_path))))
    return rows


def status_rows(report: Report) -> list[list[str]]:
    r = report.records
    return [[s, str(n), f"{100 * n / r.rows:.1f}%", "failure" if Status(s).is_failure
             else "success"] for s, n in r.counts.items() if n]


def error_rows(report: Report, top: int = 20) -> list[list[str]]:
    """#, rows, status, of which retryable, the error, example rows (row and key)."""
    return [[str(i), str(g.rows), g.status, str(g.retryable), g.error,
             ", ".join(f"{e.row} ({e.pkey})" if e.pkey else str(e.row) for e in g.examples)]
            for i, g in enumerate(report.records.errors[:top], start=1)]


def example_rows(report: Report, top: int = 20) -> list[list[str]]:
    """#, row, key, its cells in the input (or why they are not shown)."""
    out = []
    for i, group in enumerate(report.records.errors[:top], start=1):
        for e in group.examples:
            cells = ("; ".join(f"{k} = {v}" for k, v in e.cells.items()) or "(no cells)") \
                if e.cells is not None else f"({e.note or 'not read'})"
            out.append([str(i), str(e.row), e.pkey or "", cells])
    return out


def field_rows(report: Report) -> list[list[str]]:
    """field, rows, sample before → after values."""
    return [[f.name, str(f.rows), "; ".join(f"{show_value(b)} → {show_value(a)}"
                                            for b, a in f.samples)]
            for f in report.records.fields]


def latency_row(report: Report) -> list[str]:
    lat = report.records.latency
    return [*("-" if lat.percentiles[k] is None else f"{lat.percentiles[k]:g}"
              for k in ("p50", "p90", "p99", "max")), str(lat.rows)]


def outage_rows(report: Report) -> list[list[str]] | None:
    """started, seconds after the start, lasted, probes; None when unknown (no summary)."""
    summary = report.summary
    if summary is None:
        return None
    start = summary.get("started_at") or 0
    out = []
    for outage in summary.get("outages") or []:
        if not isinstance(outage, dict):
            continue
        at, seconds = outage.get("start"), outage.get("seconds")
        started, after = "?", "?"
        if isinstance(at, int | float):
            started, after = when(at), f"{at - start:.1f}" if start else "?"
        lasted = f"{seconds:.1f}" if isinstance(seconds, int | float) else "?"
        out.append([started, after, lasted, str(outage.get("probes", "?"))])
    return out


def earlier_runs(report: Report) -> list[str]:
    """Sentences on rows an earlier run of this file recorded (kept, or tried again)."""
    summary = report.summary or {}
    out = []
    if summary.get("resumed_rows"):
        out.append(f"{plural(summary['resumed_rows'], 'row')} kept from an earlier run "
                   "(--resume): their records were not made by this run.")
    if summary.get("retried_from_earlier"):
        out.append(f"{plural(summary['retried_from_earlier'], 'row')} re-tried from an earlier "
                   "run: it had failed them for reasons not their own (retryable).")
    if report.records.replaced:
        out.append(f"{plural(report.records.replaced, 'record')} replaced by a later record of "
                   "the same row are not counted.")
    return out
