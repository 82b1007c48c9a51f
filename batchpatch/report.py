"""`batchpatch report`: a report people read, from a results file and the files beside it.

One HTML page that works offline (charts drawn by matplotlib as inline SVG, no script), or
Markdown with the same tables and no charts:

- the verdict (all good, N rows failed, aborted and why, interrupted), from the summary;
- the run's settings (target, rate, concurrency, input, duration, start), from the summary;
- rows per status, and statuses over time;
- the top errors with example rows, and those rows' cells read again from the input;
- the fields changed, with sample before → after values;
- rows and requests per second against the --rate ceiling, retries and 429s over time;
- latency percentiles and histogram; outages and rows re-tried from an earlier run.

The summary JSON stays the machine-readable record; without one the report works from the
records alone and says what it cannot know.
"""

from __future__ import annotations

from pathlib import Path

from .report_data import Report, collect
from .report_sources import fill_examples, load_summary, refuse_overwrite, writer_pid
from .report_text import (
    earlier_runs,
    error_rows,
    example_rows,
    field_rows,
    latency_row,
    outage_rows,
    settings_rows,
    status_rows,
    totals_line,
    verdict,
)

__all__ = ["TOP_ERRORS", "build_report", "markdown", "render"]

#: error kinds shown (with up to three example rows each)
TOP_ERRORS = 20


def build_report(results: Path, summary: Path | None = None) -> Report:
    """The report's content: the records of `results`, its summary (`summary`, else the one
    beside it) and the example rows' input cells. UsageError on a file it cannot use."""
    pid = writer_pid(results)
    if pid is None:
        found, path, note = load_summary(results, summary)
    else:  # the summary beside the results is an earlier run's, or none
        found, path, note = None, None, f"a run (pid {pid}) is writing the results now"
    start = found.get("started_at") if found else None
    records = collect(results, start if isinstance(start, int | float) else None,
                      live=pid is not None)
    examples = [e for group in records.errors[:TOP_ERRORS] for e in group.examples]
    input_note = fill_examples(results, examples)
    return Report(results, records, found, path, note, input_note, pid)


def render(report: Report, out: Path | None) -> str:
    """The report as HTML (out ends .html) or Markdown (anything else, or no out). UsageError
    when `out` is a file the report reads (the results, the summary, the manifest, the input)."""
    if out is not None:
        refuse_overwrite({"-o": out}, report.results, report.summary_path)
    if out is not None and out.suffix.lower() in (".html", ".htm"):
        from .report_html import html_page

        return html_page(report)
    return markdown(report)


def _md(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _table(head: list[str], rows: list[list[str]], right: int = 0) -> list[str]:
    """A Markdown table; the `right` columns after the first are numbers."""
    align = ["---"] + ["---:"] * right + ["---"] * (len(head) - 1 - right)
    return ["| " + " | ".join(head) + " |", "|" + "|".join(align[:len(head)]) + "|",
            *("| " + " | ".join(_md(c) for c in row) + " |" for row in rows)]


def markdown(report: Report) -> str:
    said = verdict(report)
    out = [f"# batchpatch report: {_md(str(report.results))}", "",
           f"**{_md(said.headline)}.** {_md(said.detail)}", ""]
    if said.warning:
        out += [f"> {_md(said.warning)}", ""]
    out += [totals_line(report), "", "## The run", ""]
    settings = settings_rows(report)
    if settings is None:
        out.append(f"The run's settings are unknown: {_md(report.summary_note or '')}.")
    else:
        out += _table(["setting", "value"], [list(row) for row in settings])
    out += ["", "## Rows per status", ""]
    statuses = status_rows(report)
    out += _table(["status", "rows", "share", "counts as"], statuses, right=2) if statuses \
        else ["No record."]
    out += ["", "## Top errors", ""]
    errors = error_rows(report, TOP_ERRORS)
    if errors:
        out += _table(["#", "rows", "status", "retryable", "error", "example rows"], errors,
                      right=1)
        out += ["", "### Example rows", "", _md(report.input_note), ""]
        out += _table(["#", "row", "key", "input cells"], example_rows(report, TOP_ERRORS))
    else:
        out.append("None.")
    out += ["", "## Fields changed", ""]
    fields = field_rows(report)
    out += _table(["field", "rows", "sample before → after"], fields, right=1) if fields \
        else ["None."]
    out += ["", "## Latency per row (ms)", ""]
    out += _table(["p50", "p90", "p99", "max", "rows measured"], [latency_row(report)])
    out += ["", "## Outages and earlier runs", ""]
    outages = outage_rows(report)
    if outages is None:
        out.append("Outages unknown: no summary.")
    elif outages:
        out += _table(["started", "s after the start", "lasted (s)", "probes"], outages)
    else:
        out.append("No outage.")
    runs = earlier_runs(report)
    if runs:
        out += ["", *map(_md, runs)]
    return "\n".join(out) + "\n"
