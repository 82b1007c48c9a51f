"""The report as one self-contained HTML page: inline CSS, the charts as inline SVG, no script,
and a Content-Security-Policy that lets the page load nothing at all, so that it reads the same
offline, attached to a mail or opened years later."""

from __future__ import annotations

import html
import time

from . import __version__
from .report import TOP_ERRORS
from .report_charts import Chart, charts
from .report_data import Report
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
    when,
)

__all__ = ["html_page"]

_STYLE = """
body{font-family:system-ui,sans-serif;max-width:64em;margin:2em auto;padding:0 1em;color:#212121}
h1{font-size:1.5em;margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ddd}
.path{color:#616161;margin-top:0;word-break:break-all}
.verdict{font-size:1.25em;padding:.6em .9em;border-radius:.3em;border-left:.4em solid}
.verdict.ok{background:#e8f5e9;border-color:#2e7d32}
.verdict.failed{background:#fff3e0;border-color:#ef6c00}
.verdict.aborted,.verdict.interrupted{background:#ffebee;border-color:#c62828}
.verdict.running{background:#e3f2fd;border-color:#1565c0}
.warning{background:#fffde7;padding:.5em .9em;border-left:.4em solid #f9a825}
table{border-collapse:collapse;margin:.5em 0}
td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f5f5f5}td:last-child{overflow-wrap:anywhere}
table.numbers td:nth-child(n+2){text-align:right}
figure{margin:1em 0}figcaption{color:#616161;font-size:.9em}
figure svg{max-width:100%;height:auto}
footer{margin-top:3em;color:#9e9e9e;font-size:.85em}
"""
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


def _e(text: object) -> str:
    return html.escape(str(text))


def _table(head: list[str], rows: list[list[str]], numbers: bool = False) -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    css = ' class="numbers"' if numbers else ""
    return f"<table{css}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _figure(chart: Chart) -> str:
    body = chart.svg if chart.svg is not None else f'<p class="empty">{_e(chart.caption)}</p>'
    caption = "" if chart.svg is None else f"<figcaption>{_e(chart.caption)}</figcaption>"
    return (f'<figure class="chart" id="chart-{chart.name}"><h3>{_e(chart.title)}</h3>'
            f"{body}{caption}</figure>")


def _section(name: str, title: str, *parts: str) -> str:
    return f'<section id="{name}"><h2>{_e(title)}</h2>{"".join(parts)}</section>'


def html_page(report: Report) -> str:
    said = verdict(report)
    drawn = {chart.name: _figure(chart) for chart in charts(report)}
    header = (f"<header><h1>batchpatch report</h1><p class='path'>{_e(report.results)}</p>"
              f'<p id="verdict" class="verdict {said.kind}"><strong>{_e(said.headline)}.'
              f"</strong> {_e(said.detail)}</p>"
              + (f'<p class="warning">{_e(said.warning)}</p>' if said.warning else "")
              + f'<p id="totals">{_e(totals_line(report))}</p></header>')
    settings = settings_rows(report)
    run = _table(["setting", "value"], [list(r) for r in settings]) if settings is not None \
        else f"<p>The run's settings are unknown: {_e(report.summary_note)}.</p>"
    errors = error_rows(report, TOP_ERRORS)
    error_parts = [
        _table(["#", "rows", "status", "retryable", "error", "example rows"], errors),
        f"<h3>Example rows</h3><p>{_e(report.input_note)}</p>",
        _table(["#", "row", "key", "input cells"], example_rows(report, TOP_ERRORS)),
    ] if errors else ["<p>None.</p>"]
    fields = field_rows(report)
    outages = outage_rows(report)
    outage_part = ("<p>Outages unknown: no summary.</p>" if outages is None
                   else _table(["started", "s after the start", "lasted (s)", "probes"],
                               outages) if outages else "<p>No outage.</p>")
    sections = [
        header,
        _section("run", "The run", run),
        _section("statuses", "Rows per status",
                 _table(["status", "rows", "share", "counts as"], status_rows(report),
                        numbers=True), drawn["statuses"]),
        _section("errors", "Top errors", *error_parts),
        _section("fields", "Fields changed",
                 _table(["field", "rows", "sample before → after"], fields) if fields
                 else "<p>None.</p>"),
        _section("pace", "Pace", drawn["throughput"], drawn["retries"]),
        _section("latency", "Latency per row",
                 _table(["p50 ms", "p90 ms", "p99 ms", "max ms", "rows measured"],
                        [latency_row(report)], numbers=True), drawn["latency"]),
        _section("outages", "Outages and earlier runs", outage_part,
                 *(f"<p>{_e(line)}</p>" for line in earlier_runs(report))),
        f"<footer>batchpatch {_e(__version__)}, {_e(when(time.time()))}</footer>",
    ]
    title = f"batchpatch report: {report.results.name}"
    return (f"<!doctype html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<meta name='viewport' content='width=device-width, initial-scale=1'>"
            f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
            f"<link rel='icon' href='data:,'><title>{_e(title)}</title>"
            f"<style>{_STYLE}</style></head><body>{''.join(sections)}</body></html>\n")
