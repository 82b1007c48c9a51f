"""The report's charts, drawn by matplotlib as SVG to inline in the HTML page (no script, no
network): rows and requests per second against the --rate ceiling, statuses over time
(stacked), retries and 429s over time, and the latency histogram.

Each chart draws the report's buckets (about a hundred, whatever the run's length), so its size
does not grow with the results file. The ids inside each SVG are prefixed with the chart's name:
several SVGs share one HTML document, and ids must stay unique in it.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .report_data import Report
from .report_text import when
from .report_timeline import Timeline

__all__ = ["Chart", "charts"]

#: success in greens and blues, failures in warm colours
COLOURS = {"updated": "#2e7d32", "unchanged": "#9ccc65", "dry_run": "#1e88e5",
           "not_found": "#fb8c00", "invalid": "#8e24aa", "failed": "#d32f2f",
           "verify_mismatch": "#6d4c41", "conflict": "#f06292", "created": "#00897b",
           "skipped": "#b0bec5", "deleted": "#546e7a"}
_RC: Any = {"svg.fonttype": "none", "font.size": 9, "axes.spines.top": False,
       "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3}
_REF = re.compile(r'(\bid="|href="#|url\(#)')


@dataclass(frozen=True)
class Chart:
    """One chart: `svg` is None when there is nothing to draw (then `caption` says why)."""

    name: str
    title: str
    svg: str | None
    caption: str


def _svg(name: str, title: str, draw: Callable[[Any], None]) -> str:
    with matplotlib.rc_context({**_RC, "svg.hashsalt": name}):
        figure = Figure(figsize=(8.5, 3.2), layout="constrained")
        draw(figure.subplots())
        out = io.StringIO()
        figure.savefig(out, format="svg", metadata={"Date": None})
    text = out.getvalue()
    text = text[text.index("<svg"):]
    text = _REF.sub(lambda m: f"{m.group(1)}{name}-", text)
    label = title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    return text.replace("<svg ", f'<svg role="img" aria-label="{label}" ', 1)


def _bucket(width: float) -> str:
    """A bucket's width, short enough for an axis label."""
    if width < 1:
        return f"{width * 1000:.0f} ms"
    return f"{width:.3g} s" if width < 120 else f"{width / 60:.3g} min"


def _time_axis(timeline: Timeline) -> tuple[float, str]:
    """(seconds per unit, axis label) for the run's length."""
    span = timeline.span
    scale, unit = (3600, "hours") if span > 7200 else (60, "minutes") if span > 180 else (
        1, "seconds")
    since = (f"the run's start ({when(timeline.origin)})" if timeline.origin_is_start
             else f"the first record ({when(timeline.origin)})")
    return scale, f"{unit} since {since}"


def _edges(timeline: Timeline, scale: float) -> list[float]:
    return [(timeline.offset + i * timeline.width) / scale for i in range(len(timeline.rows) + 1)]


def _shade_outages(ax: Any, report: Report, scale: float, timeline: Timeline) -> None:
    outages = (report.summary or {}).get("outages") or []
    for i, outage in enumerate(o for o in outages if isinstance(o, dict)):
        start, seconds = outage.get("start"), outage.get("seconds")
        if isinstance(start, int | float) and isinstance(seconds, int | float):
            left = (start - timeline.origin) / scale
            ax.axvspan(left, left + seconds / scale, color="#9e9e9e", alpha=0.25,
                       label="outage" if i == 0 else None)


def _throughput(report: Report, timeline: Timeline, rate: float | None) -> Chart:
    scale, xlabel = _time_axis(timeline)
    edges = _edges(timeline, scale)
    width = timeline.width

    def draw(ax: Any) -> None:
        ax.stairs([n / width for n in timeline.requests], edges, color="#1e88e5",
                  linewidth=1.5, label="requests/s (from each row's attempts)")
        ax.stairs([n / width for n in timeline.rows], edges, color="#2e7d32", linewidth=1.5,
                  label="rows/s")
        if rate:
            ax.axhline(rate, color="#d32f2f", linestyle="--", linewidth=1.2,
                       label=f"--rate ceiling: {rate:g} requests/s")
        _shade_outages(ax, report, scale, timeline)
        ax.set(xlabel=xlabel, ylabel="per second", ylim=(0, None))
        ax.legend(loc="lower right", fontsize=8)

    ceiling = (f"the dashed line is the --rate ceiling of {rate:g} requests/s" if rate
               else "no --rate ceiling (unlimited)" if rate == 0
               else "the --rate ceiling is unknown (not in a summary)")
    title = "Rows and requests per second over time"
    return Chart("throughput", title, _svg("throughput", title, draw),
                 f"Per bucket of {_bucket(width)}; requests counted from each row's attempts "
                 f"at the time it finished; {ceiling}.")


def _statuses(timeline: Timeline) -> Chart:
    scale, xlabel = _time_axis(timeline)
    lefts = _edges(timeline, scale)[:-1]
    bar = timeline.width / scale

    def draw(ax: Any) -> None:
        bottom = [0] * len(lefts)
        for status, counts in timeline.statuses.items():
            ax.bar(lefts, counts, width=bar, bottom=bottom, align="edge", label=status,
                   color=COLOURS.get(status), linewidth=0)
            bottom = [b + n for b, n in zip(bottom, counts, strict=True)]
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel=xlabel, ylabel=f"rows per {_bucket(timeline.width)}")
        ax.legend(loc="upper right", fontsize=8, ncols=min(4, len(timeline.statuses)))

    title = "Statuses over time"
    return Chart("statuses", title, _svg("statuses", title, draw),
                 f"Rows finished per bucket of {_bucket(timeline.width)}, stacked by status.")


def _retries(report: Report, timeline: Timeline) -> Chart:
    scale, xlabel = _time_axis(timeline)
    lefts = _edges(timeline, scale)[:-1]
    bar = timeline.width / scale / 2

    def draw(ax: Any) -> None:
        ax.bar(lefts, timeline.retries, width=bar, align="edge", color="#1e88e5",
               label="retries", linewidth=0)
        ax.bar([x + bar for x in lefts], timeline.rate_limited, width=bar, align="edge",
               color="#d32f2f", label="429 answers", linewidth=0)
        _shade_outages(ax, report, scale, timeline)
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel=xlabel, ylabel=f"per {_bucket(timeline.width)}", ylim=(0, None))
        ax.legend(loc="upper right", fontsize=8)

    total = sum(timeline.retries), sum(timeline.rate_limited)
    title = "Retries and 429s over time"
    return Chart("retries", title, _svg("retries", title, draw),
                 f"Per bucket of {_bucket(timeline.width)}, counted at the time each row "
                 f"finished: {total[0]} retries, {total[1]} answers 429 in all.")


def _latency(report: Report) -> Chart:
    lat = report.records.latency
    title = "Latency histogram"
    if not lat.rows:
        return Chart("latency", title, None, "No row sent a request: no latency to show.")

    def draw(ax: Any) -> None:
        edges = lat.edges
        ax.bar(edges[:-1], lat.counts, width=[b - a for a, b in itertools.pairwise(edges)],
               align="edge", color="#5c6bc0", linewidth=0, label="rows")
        for name, style in (("p50", ":"), ("p90", "--"), ("p99", "-.")):
            value = lat.percentiles[name]
            if value is not None:
                ax.axvline(value, color="#424242", linestyle=style, linewidth=1,
                           label=f"{name} {value:g} ms")
        if lat.log_scale:
            ax.set_xscale("log")
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set(xlabel="elapsed per row, ms" + (" (log scale)" if lat.log_scale else ""),
               ylabel="rows")
        ax.legend(loc="upper right", fontsize=8)

    return Chart("latency", title, _svg("latency", title, draw),
                 f"Time each row took, from its start to its outcome, for the {lat.rows} rows "
                 "that sent a request (every request, retry and wait for the rate limit "
                 "included).")


def charts(report: Report) -> list[Chart]:
    """The four charts, in the page's order."""
    timeline = report.records.timeline
    settings = (report.summary or {}).get("settings") or {}
    rate = settings.get("rate") if isinstance(settings.get("rate"), int | float) else None
    if timeline is None:
        none = "No record carries a time: nothing to draw over time."
        timed = [Chart("throughput", "Rows and requests per second over time", None, none),
                 Chart("statuses", "Statuses over time", None, none),
                 Chart("retries", "Retries and 429s over time", None, none)]
    else:
        timed = [_throughput(report, timeline, rate), _statuses(timeline),
                 _retries(report, timeline)]
    return [*timed, _latency(report)]
