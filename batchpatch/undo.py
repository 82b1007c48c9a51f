"""`batchpatch undo`: from a results file, an input file that puts every changed field back, and
a list of the profiles the run created (for `batchpatch delete`).

Each changed field gets its old value, and a `field@expected` guard holding the value the run
wrote, so an undo never overwrites a change made since (that row comes out `conflict`); a row
that already holds its old value comes out `unchanged`. A field whose old value was an object
is restored whole (`field@replace`), not merged leaf by leaf. When a key was changed by several
rows, the oldest value is restored and the newest is expected. Rows recorded `failed` after
their PATCH was sent are included: the write may have landed. Created profiles (`created`,
even with no field set, and a create the API answered whose read-back differed) go to
`OUT-stem.delete.csv` (PKey,href); nothing is deleted but by `batchpatch delete`.

Nothing the user gave is overwritten: neither OUT nor the delete list may be the results file,
the run's summary, manifest or input (links resolved), and a delete list already there is
replaced only when it is empty or holds exactly what this undo writes (the user did not name
it: it may be another undo's list). Both are checked before anything is written.
"""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path
from typing import IO, Any

import orjson

from .errors import UsageError
from .model import Status
from .plan import GUARD_SUFFIX, REPLACE_SUFFIX
from .report_sources import refuse_overwrite
from .resume import read_records

__all__ = ["DEFAULT_NULL_TOKEN", "Changes", "collect_changes", "delete_list_path", "write_undo"]

DEFAULT_NULL_TOKEN = "#NULL"
#: records whose write reached (or may have reached) the API
_APPLIED = {Status.UPDATED.value, Status.VERIFY_MISMATCH.value, Status.FAILED.value}
_CREATED = {Status.CREATED.value}


class Changes:
    """What a run changed: {pkey: {field: [oldest before, newest after]}}, and the profiles it
    created [(pkey, href)]; `results` is the file they were read from."""

    def __init__(self, results: Path | None = None) -> None:
        self.results = results
        self.fields: dict[str, dict[str, list[Any]]] = {}
        self.created: list[tuple[str, str]] = []


def collect_changes(results: Path) -> Changes:
    """The changes of the applied rows, in input order."""
    changes = Changes(results)
    created_keys: set[str] = set()
    records = [r for r in read_records(results) if r.get("pkey") and (
        _created_here(r) or (r["status"] in _APPLIED and r.get("changed")))]
    for record in sorted(records, key=lambda r: r["row"]):
        if record["status"] in _CREATED or record.get("action") == "create":
            if _created_here(record) and record["pkey"] not in created_keys:
                created_keys.add(record["pkey"])
                changes.created.append((record["pkey"], record.get("href") or ""))
            continue
        if record["pkey"] in created_keys:
            continue  # a profile the run created: deleting it undoes its later changes too
        if not isinstance(record["changed"], dict):
            raise UsageError(f"{results}: row {record['row']}: `changed` is not an object")
        fields = changes.fields.setdefault(record["pkey"], {})
        for name, pair in record["changed"].items():
            if not isinstance(pair, list) or len(pair) != 2:
                raise UsageError(f"{results}: row {record['row']}: `changed.{name}` is not "
                                 "[before, after]")
            before, after = pair
            if name in fields:
                fields[name][1] = after
            else:
                fields[name] = [before, after]
    return changes


def _created_here(record: dict[str, Any]) -> bool:
    """Whether the record is of a profile this run created: `created` (with or without fields
    set), or a create the API answered whose read-back then differed. Its PKey is the one the
    API gave, never the row's own key."""
    if record["status"] in _CREATED:
        return True
    return (record["status"] == Status.VERIFY_MISMATCH.value
            and record.get("action") == "create" and bool(record.get("href")))


def delete_list_path(out: Path) -> Path:
    """`undo.jsonl` -> `undo.delete.csv` (beside it)."""
    name = out.name[:-3] if out.name.endswith(".gz") else out.name
    return out.with_name(Path(name).stem + ".delete.csv")


def _delete_list(created: list[tuple[str, str]]) -> bytes:
    """The delete list's CSV: PKey,href."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(["PKey", "href"])
    writer.writerows(created)
    return text.getvalue().encode("utf-8")


def _check_delete_list(listed: Path, content: bytes) -> None:
    """UsageError if a file already at `listed` is neither empty nor exactly `content`: the user
    named only -o, and that file may be another undo's list of profiles to delete."""
    try:
        there = listed.read_bytes()
    except FileNotFoundError:
        return
    except IsADirectoryError:
        raise UsageError(f"{listed}: is a directory, where this undo writes its list of created "
                         "profiles; choose another -o") from None
    except OSError as exc:
        raise UsageError(f"{listed}: cannot read it: {exc.strerror}") from None
    if there and there != content:
        raise UsageError(f"{listed} already exists and is not the list of created profiles "
                         "this undo writes; remove it or choose another -o")


def _open(out: Path) -> IO[bytes]:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        raw = open(out, "wb")  # noqa: SIM115 - closed by the caller
    except IsADirectoryError:
        raise UsageError(f"-o {out}: is a directory; give a file name") from None
    except OSError as exc:
        raise UsageError(f"-o {out}: cannot write: {exc.strerror}") from None
    if out.name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="wb")  # type: ignore[return-value]
    return raw


def _cell(value: Any, null_token: str) -> str:
    if value is None:
        return null_token
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def _column(field: str, before: Any) -> str:
    return field + REPLACE_SUFFIX if isinstance(before, dict) else field


def write_undo(changes: Changes, out: Path, key_column: str = "PKey",
               null_token: str = DEFAULT_NULL_TOKEN) -> list[str]:
    """Write the undo file (CSV or JSONL by `out`'s name, gzip with .gz) and the delete list;
    returns warnings for the user."""
    name = out.name[:-3] if out.name.endswith(".gz") else out.name
    if not name.endswith((".jsonl", ".ndjson", ".json", ".csv")):
        raise UsageError(f"-o {out}: name the undo file .csv or .jsonl (.gz for gzip)")
    listed = delete_list_path(out) if changes.created else None
    listing = _delete_list(changes.created) if changes.created else b""
    if changes.results is not None:
        named = {"-o": out} if listed is None else {
            "-o": out, "the list of created profiles": listed}
        refuse_overwrite(named, changes.results)
    if listed is not None:
        _check_delete_list(listed, listing)
    warnings: list[str] = []
    with _open(out) as fh:
        if name.endswith(".csv"):
            _write_csv(changes, fh, key_column, null_token, warnings)
        else:
            for pkey, fields in changes.fields.items():
                record: dict[str, Any] = {key_column: pkey}
                for field, (before, after) in fields.items():
                    record[_column(field, before)] = before
                    record[field + GUARD_SUFFIX] = after
                fh.write(orjson.dumps(record) + b"\n")
    if listed is not None:
        with _open(listed) as fh:
            fh.write(listing)
    return warnings


def _write_csv(changes: Changes, fh: IO[bytes], key_column: str, null_token: str,
               warnings: list[str]) -> None:
    columns: dict[str, str] = {}
    for fields in changes.fields.values():
        for field, (before, _) in fields.items():
            if columns.get(field, "").endswith(REPLACE_SUFFIX):
                continue
            columns[field] = _column(field, before)
    order = sorted(columns)
    header = [key_column] + [c for field in order for c in (columns[field],
                                                             field + GUARD_SUFFIX)]
    text = io.TextIOWrapper(fh, encoding="utf-8", newline="")
    writer = csv.writer(text)
    writer.writerow(header)
    for pkey, fields in changes.fields.items():
        row = [pkey]
        for field in order:
            if field not in fields:
                row += ["", ""]
                continue
            before, after = fields[field]
            for value in (before, after):
                if value == "":
                    warnings.append(f"{pkey}: {field} held an empty string, which a CSV cell "
                                    "cannot restore (empty = leave as is); use a .jsonl undo")
                elif value == null_token:
                    warnings.append(f"{pkey}: {field} held the text {null_token!r}, which is "
                                    "also the null token: a CSV undo would set null; use a "
                                    ".jsonl undo or another --null-token")
            if columns[field].endswith(REPLACE_SUFFIX) and before is not None:
                row += [orjson.dumps(before).decode(), _cell(after, null_token)]
            else:
                row += [_cell(before, null_token), _cell(after, null_token)]
        writer.writerow(row)
    text.flush()
    text.detach()
