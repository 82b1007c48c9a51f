"""`batchpatch undo`: from a results file, an input file that puts every changed field back.

Each changed field gets its old value, and a `field@expected` guard holding the value the run
wrote, so an undo never overwrites a change made since (that row comes out `conflict`). When a
key was changed by several rows, the oldest value is restored and the newest is expected.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import orjson

from .errors import UsageError
from .model import Status
from .plan import GUARD_SUFFIX
from .resume import read_records

__all__ = ["DEFAULT_NULL_TOKEN", "collect_changes", "write_undo"]

DEFAULT_NULL_TOKEN = "#NULL"
_APPLIED = {Status.UPDATED.value, Status.VERIFY_MISMATCH.value}


def collect_changes(results: Path) -> dict[str, dict[str, list[Any]]]:
    """{pkey: {field: [oldest before, newest after]}} over the applied rows, in input order."""
    if not results.exists():
        raise UsageError(f"{results}: no such results file")
    records = [r for r in read_records(results)
               if r["status"] in _APPLIED and r.get("changed") and r.get("pkey")]
    changes: dict[str, dict[str, list[Any]]] = {}
    for record in sorted(records, key=lambda r: r["row"]):
        fields = changes.setdefault(record["pkey"], {})
        for name, (before, after) in record["changed"].items():
            if name in fields:
                fields[name][1] = after
            else:
                fields[name] = [before, after]
    return changes


def _cell(value: Any, null_token: str) -> str:
    if value is None:
        return null_token
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def write_undo(changes: dict[str, dict[str, list[Any]]], out: Path, key_column: str = "PKey",
               null_token: str = DEFAULT_NULL_TOKEN) -> list[str]:
    """Write the undo file (CSV or JSONL by `out`'s name); returns warnings for the user."""
    warnings: list[str] = []
    name = out.name[:-3] if out.name.endswith(".gz") else out.name
    out.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith((".jsonl", ".ndjson", ".json")):
        with open(out, "wb") as fh:
            for pkey, fields in changes.items():
                record: dict[str, Any] = {key_column: pkey}
                for field, (before, after) in fields.items():
                    record[field] = before
                    record[field + GUARD_SUFFIX] = after
                fh.write(orjson.dumps(record) + b"\n")
        return warnings
    if not name.endswith(".csv"):
        raise UsageError(f"{out}: name the undo file .csv or .jsonl")
    columns = sorted({field for fields in changes.values() for field in fields})
    header = [key_column] + [c for field in columns for c in (field, field + GUARD_SUFFIX)]
    with open(out, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(header)
        for pkey, fields in changes.items():
            row = [pkey]
            for field in columns:
                if field not in fields:
                    row += ["", ""]
                    continue
                before, after = fields[field]
                if before == "" or after == "":
                    warnings.append(f"{pkey}: {field} held an empty string, which a CSV cell "
                                    "cannot restore (empty = leave as is); use a .jsonl undo")
                row += [_cell(before, null_token), _cell(after, null_token)]
            writer.writerow(row)
    return warnings
