"""The short human summary printed on stderr at the end of a run."""

from __future__ import annotations

from typing import Any

__all__ = ["human_summary"]


def human_summary(summary: dict[str, Any]) -> str:
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
    if summary.get("unfinished") or summary.get("aborted") or summary.get("interrupted"):
        left = summary.get("rows_without_record")
        left_text = f"~{left} rows have no record yet" if left is not None else (
            f"{summary['unfinished']} rows read but not finished, the rest of the input unread")
        lines.append(f"stopped early: {left_text}; run again with --resume to complete")
    if summary.get("limited"):
        lines.append("stopped at --limit: the rest of the file was not read; --resume "
                     "(without --limit) does the rest")
    lines.append(f"results: {summary['results']}")
    if summary["failed"]:
        lines.append(f"failures ({summary['failed']} rows, ready to re-run): {summary['failures']}")
    lines.append(f"summary: {summary['summary']}  exit {summary['exit_code']}")
    return "\n".join(lines)
