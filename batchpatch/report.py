"""`batchpatch report`: a readable report (HTML or Markdown) from a results file, with pandas:
counts per status, top errors with example rows, fields changed, latency percentiles, and
retries and 429s over time. The summary JSON stays the machine-readable one."""

from __future__ import annotations

import html
import re
from pathlib import Path
from typing import Any

from .errors import UsageError
from .model import Status
from .resume import repair_tail

__all__ = ["build_report", "render"]


def build_report(results: Path) -> dict[str, Any]:
    """The report's numbers, from the results file."""
    import pandas as pd

    if not results.exists():
        raise UsageError(f"{results}: no such results file")
    repair_tail(results)
    try:
        frame = pd.read_json(results, lines=True, dtype=False)
    except ValueError as exc:
        raise UsageError(f"{results}: not a results file: {exc}") from None
    if frame.empty:
        frame = pd.DataFrame(columns=["row", "status", "error", "changed", "elapsed_ms",
                                      "attempts", "rate_limited", "ts"])
    for name in ("rate_limited", "retries", "ts", "attempts", "elapsed_ms"):
        if name not in frame:
            frame[name] = 0
    counts = {s.value: int((frame["status"] == s.value).sum()) for s in Status}
    failed = frame[frame["status"].isin([s.value for s in Status if s.is_failure])]
    errors = []
    if not failed.empty:
        messages = failed["error"].fillna("(none)").astype(str).str[:300]
        grouped = failed.assign(error=messages, kind=messages.map(_error_kind))
        for _, group in grouped.groupby(["status", "kind"], sort=False):
            errors.append({"error": group["error"].iloc[0], "rows": len(group),
                           "status": group["status"].iloc[0],
                           "examples": [int(r) for r in group["row"].head(5)]})
        errors.sort(key=lambda e: -e["rows"])
    fields: dict[str, int] = {}
    applied = frame[frame["status"].isin(["updated", "dry_run"])]
    for changed in applied["changed"].dropna():
        for name in changed:
            fields[name] = fields.get(name, 0) + 1
    networked = frame[frame["attempts"] > 0]["elapsed_ms"]
    latency = {f"p{q}": round(float(networked.quantile(q / 100)), 1) if len(networked) else None
               for q in (50, 90, 99)}
    latency["max"] = round(float(networked.max()), 1) if len(networked) else None
    timeline: list[dict[str, Any]] = []
    stamped = frame[frame["ts"] > 0]
    if not stamped.empty:
        start = float(stamped["ts"].min())
        span = max(1.0, float(stamped["ts"].max()) - start)
        width = max(1.0, span / 30)  # about 30 buckets
        bucket = ((stamped["ts"] - start) // width).astype(int)
        retries = stamped["retries"]
        grouped = pd.DataFrame({"bucket": bucket, "rows": 1, "retries": retries,
                                "rate_limited": stamped["rate_limited"]}).groupby("bucket").sum()
        timeline = [{"t": round(int(b) * width, 1), "width": round(width, 1),
                     "rows": int(r.rows),
                     "retries": int(r.retries), "rate_limited": int(r.rate_limited)}
                    for b, r in grouped.iterrows()]
    return {"results": str(results), "rows": len(frame), "counts": counts,
            "failed": len(failed), "errors": errors[:20], "fields": dict(
                sorted(fields.items(), key=lambda kv: -kv[1])), "latency_ms": latency,
            "retries": int(frame["retries"].sum()),
            "rate_limited": int(frame["rate_limited"].sum()), "timeline": timeline}


_SPECIFIC = re.compile(r"'[^']*'|\"[^\"]*\"|@[\w\-.]+|\b\d+(?:\.\d+)?\b")


def _error_kind(message: str) -> str:
    """A message with its row-specific parts (keys, quoted values, numbers) blanked, so that
    the same error on many rows is counted once."""
    return _SPECIFIC.sub("…", message)


def _markdown(data: dict[str, Any]) -> str:
    out = [f"# batchpatch report: {data['results']}", "",
           f"{data['rows']} rows, {data['failed']} failed; {data['retries']} retries, "
           f"{data['rate_limited']} answers 429.", "", "## Rows per status", "",
           "| status | rows |", "|---|---:|"]
    out += [f"| {s} | {n} |" for s, n in data["counts"].items() if n]
    out += ["", "## Top errors", ""]
    if data["errors"]:
        out += ["| rows | status | error | example rows |", "|---:|---|---|---|"]
        out += [f"| {e['rows']} | {e['status']} | {e['error'].replace('|', '/')} | "
                f"{', '.join(map(str, e['examples']))} |" for e in data["errors"]]
    else:
        out.append("None.")
    out += ["", "## Fields changed", "", "| field | rows |", "|---|---:|"]
    out += [f"| {f} | {n} |" for f, n in data["fields"].items()] or ["| (none) | 0 |"]
    lat = data["latency_ms"]
    out += ["", "## Latency per row (ms)", "", "| p50 | p90 | p99 | max |", "|---:|---:|---:|---:|",
            f"| {lat['p50']} | {lat['p90']} | {lat['p99']} | {lat['max']} |", "",
            "## Retries and 429s over time", "", "| t (s) | rows | retries | 429s |",
            "|---:|---:|---:|---:|"]
    out += [f"| {b['t']} | {b['rows']} | {b['retries']} | {b['rate_limited']} |"
            for b in data["timeline"]]
    return "\n".join(out) + "\n"


def _svg(timeline: list[dict[str, Any]]) -> str:
    if not timeline:
        return "<p>No timed rows.</p>"
    top = max(1, *(max(b["retries"], b["rate_limited"]) for b in timeline))
    width, height, bar = 600, 120, 600 / len(timeline)
    parts = [f'<svg width="{width}" height="{height + 20}" role="img" '
             'aria-label="retries and 429s over time">']
    for i, b in enumerate(timeline):
        x = i * bar
        h_retry = height * b["retries"] / top
        h_429 = height * b["rate_limited"] / top
        parts.append(f'<rect x="{x:.1f}" y="{height - h_retry:.1f}" width="{bar * 0.9:.1f}" '
                     f'height="{h_retry:.1f}" fill="#4a7bd0"><title>{b["t"]} s: '
                     f'{b["retries"]} retries</title></rect>')
        parts.append(f'<rect x="{x:.1f}" y="{height - h_429:.1f}" width="{bar * 0.9:.1f}" '
                     f'height="{h_429:.1f}" fill="#d0644a"><title>{b["t"]} s: '
                     f'{b["rate_limited"]} 429s</title></rect>')
    parts.append(f'<line x1="0" y1="{height}" x2="{width}" y2="{height}" stroke="#888"/>'
                 f'<text x="0" y="{height + 15}" font-size="11">retries (blue) and 429s (red) per '
                 f'{timeline[0]["width"]} s, over '
                 f'{timeline[-1]["t"]} s; tallest bar {top}</text></svg>')
    return "".join(parts)


def _html(data: dict[str, Any]) -> str:
    def table(head: list[str], rows: list[list[Any]]) -> str:
        th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in r) + "</tr>"
                       for r in rows)
        return f"<table><tr>{th}</tr>{body}</table>"

    lat = data["latency_ms"]
    sections = [
        f"<h1>batchpatch report</h1><p>{html.escape(data['results'])}: {data['rows']} rows, "
        f"{data['failed']} failed; {data['retries']} retries, {data['rate_limited']} 429s.</p>",
        "<h2>Rows per status</h2>" + table(["status", "rows"],
                                            [[s, n] for s, n in data["counts"].items() if n]),
        "<h2>Top errors</h2>" + (table(["rows", "status", "error", "example rows"],
                                       [[e["rows"], e["status"], e["error"],
                                         ", ".join(map(str, e["examples"]))]
                                        for e in data["errors"]]) if data["errors"]
                                 else "<p>None.</p>"),
        "<h2>Fields changed</h2>" + table(["field", "rows"],
                                           [[f, n] for f, n in data["fields"].items()]),
        "<h2>Latency per row (ms)</h2>" + table(["p50", "p90", "p99", "max"],
                                                 [[lat["p50"], lat["p90"], lat["p99"],
                                                   lat["max"]]]),
        "<h2>Retries and 429s over time</h2>" + _svg(data["timeline"]),
    ]
    style = ("body{font-family:sans-serif;max-width:60em;margin:2em auto}table{border-collapse:"
             "collapse}td,th{border:1px solid #ccc;padding:.2em .6em;text-align:left}")
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>batchpatch report</title>"
            f"<style>{style}</style></head><body>{''.join(sections)}</body></html>\n")


def render(data: dict[str, Any], out: Path | None) -> str:
    """The report as HTML (out ends .html) or Markdown (anything else, or no out)."""
    if out is not None and out.suffix.lower() in (".html", ".htm"):
        return _html(data)
    return _markdown(data)
