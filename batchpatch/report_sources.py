"""The files a report reads besides the results: the summary (`--summary`, else
`<stem>.summary.json` beside `<stem>.results.jsonl`), the manifest `<results>.manifest.json`
(which input the run read, to show the example rows' cells), and the lock `<results>.lock`
(a run still writing the file). The same files, with the results, are what a report or an undo
must never write over (`refuse_overwrite`).

Only a summary the user cannot have meant is an error (named but missing, or damaged); anything
else missing makes the report say what it could not show, and why.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import orjson

from .errors import InputBroken, UsageError
from .outputs import _same as same_file
from .report_data import Example
from .rows import READ_ERRORS, open_input
from .secret import redact

__all__ = ["default_summary_path", "fill_examples", "load_summary", "refuse_overwrite",
           "run_files", "writer_pid"]

_RESULTS_SUFFIX = ".results.jsonl"
#: keys a summary must hold, and their types, for the report to trust it
_REQUIRED: dict[str, type | tuple[type, ...]] = {
    "rows": int, "failed": int, "counts": dict, "exit_code": int}
#: keys an older summary may lack; when present, of these types
_OPTIONAL: dict[str, type | tuple[type, ...]] = {
    "settings": dict, "outages": list, "started_at": (int, float), "elapsed_s": (int, float),
    "aborted": str, "interrupted": str, "retried_from_earlier": int, "resumed_rows": int,
    "rows_without_record": int, "requests_total": int, "rows_per_s": (int, float),
    "rate_reached": (int, float)}
_MAX_CELL = 80


def default_summary_path(results: Path) -> Path | None:
    """`<stem>.summary.json` for `<stem>.results.jsonl`, as runs name them by default."""
    if results.name.endswith(_RESULTS_SUFFIX) and len(results.name) > len(_RESULTS_SUFFIX):
        return results.with_name(results.name[:-len(_RESULTS_SUFFIX)] + ".summary.json")
    return None


def load_summary(results: Path, given: Path | None) -> tuple[dict[str, Any] | None, Path | None,
                                                          str | None]:
    """(summary, its path, None), or (None, None, why there is none). UsageError when the
    summary named by --summary is missing, or when the summary found is damaged."""
    path = given if given is not None else default_summary_path(results)
    if path is None:
        return None, None, (f"{results.name} is not named <stem>.results.jsonl, so no summary "
                            "is looked for beside it; give --summary PATH")
    if path.is_dir():
        raise UsageError(f"--summary {path}: is a directory, not a summary file")
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        if given is not None:
            raise UsageError(f"--summary {path}: no such summary file") from None
        return None, None, f"no summary found beside the results (looked for {path})"
    except OSError as exc:
        raise UsageError(f"{path}: cannot read the summary: {exc.strerror}") from None
    try:
        summary = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise UsageError(f"{path}: the summary is damaged (not JSON); give another with "
                         "--summary, or remove it to report from the records alone") from None
    bad = _problems(summary)
    if bad:
        raise UsageError(f"{path}: not a batchpatch summary (bad or missing: "
                         f"{', '.join(bad)}); give another with --summary")
    return summary, path, None


def _problems(summary: Any) -> list[str]:
    """What is wrong with a summary record: the keys missing or of the wrong type."""
    if not isinstance(summary, dict):
        return ["not a JSON object"]

    def wrong(value: Any, kind: type | tuple[type, ...]) -> bool:
        return not isinstance(value, kind) or isinstance(value, bool)

    bad = [key for key, kind in _REQUIRED.items() if wrong(summary.get(key), kind)]
    bad += [key for key, kind in _OPTIONAL.items()
            if summary.get(key) is not None and wrong(summary[key], kind)]
    counts = summary.get("counts")
    if isinstance(counts, dict) and any(wrong(n, int) for n in counts.values()):
        bad.append("counts")
    return bad


def run_files(results: Path, summary: Path | None = None) -> dict[str, Path]:
    """The files of the run that wrote `results`, by what the user knows them as: the results
    file, its summary (`summary`, else `<stem>.summary.json` beside it), its manifest and the
    input the manifest names."""
    files = {"the results file": results}
    summary = summary if summary is not None else default_summary_path(results)
    if summary is not None:
        files["the run's summary"] = summary
    files["the run's manifest"] = results.with_name(results.name + ".manifest.json")
    manifest, _ = _manifest(results)
    if manifest is not None and manifest["input"]["path"] != "-":
        files["the run's input"] = Path(manifest["input"]["path"])
    return files


def refuse_overwrite(outputs: Mapping[str, Path], results: Path,
                     summary: Path | None = None) -> None:
    """UsageError naming the first of `outputs` ({flag: path}) that is one of the files of the
    run that wrote `results` (links resolved): nothing the user gave is overwritten."""
    theirs = run_files(results, summary)
    for flag, out in outputs.items():
        for what, path in theirs.items():
            if same_file(out, path):
                raise UsageError(f"{flag} {out} is {what} ({path}); it would be overwritten: "
                                 "choose another -o")


def writer_pid(results: Path) -> int | None:
    """The pid of a live run holding `<results>.lock` (it is writing the file now), else None.
    Only read, never locked: a report must not stop a run from starting."""
    lock = results.with_name(results.name + ".lock")
    try:
        pid = int(lock.read_text(encoding="ascii").strip())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    if pid == os.getpid() or pid <= 0:
        return None
    try:
        os.kill(pid, 0)
    except PermissionError:
        return pid
    except OSError:
        return None
    return pid


def _manifest(results: Path) -> tuple[dict[str, Any] | None, str | None]:
    path = results.with_name(results.name + ".manifest.json")
    try:
        manifest = orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None, f"no manifest beside the results ({path.name}): which input the run read " \
                     "is unknown"
    except (OSError, orjson.JSONDecodeError):
        return None, f"the manifest {path.name} is damaged: which input the run read is unknown"
    if not isinstance(manifest, dict) or not isinstance(manifest.get("input"), dict) \
            or not isinstance(manifest["input"].get("path"), str):
        return None, f"the manifest {path.name} does not name the input"
    return manifest, None


def _cell(value: Any) -> str:
    if value == "":
        return "(empty)"
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    text = redact(text)
    return text if len(text) <= _MAX_CELL else text[:_MAX_CELL - 1] + "…"


def fill_examples(results: Path, examples: Iterable[Example]) -> str:
    """Fill each example's `cells` from the input the manifest names; returns a sentence
    saying where the cells come from, or why they are not shown."""
    wanted: dict[int, list[Example]] = {}
    for example in examples:
        wanted.setdefault(example.row, []).append(example)
    manifest, why = _manifest(results)
    if manifest is None:
        return f"Input cells not shown: {why}."
    spec = manifest["input"]
    path = spec["path"]
    shown = redact(path)
    if path == "-":
        return "Input cells not shown: the run read standard input, which cannot be read again."
    if not wanted:
        return f"Input: {shown}."
    if not os.path.isfile(path):
        return f"Input cells not shown: the input {shown} named in the manifest is no longer " \
               "there."
    note = f"Cells from the input {shown}, read again now."
    with contextlib.suppress(OSError):
        if isinstance(spec.get("size"), int) and os.path.getsize(path) != spec["size"]:
            note += " It changed since the run (its size differs): cells may not be the ones sent."
    try:
        source = open_input(path, manifest.get("format"), manifest.get("key_column") or "PKey",
                            manifest.get("delimiter") or ",")
    except UsageError as exc:
        return f"Input cells not shown: {redact(exc.message)}."
    try:
        for row in source:
            for example in wanted.pop(row.line, ()):
                if example.pkey is not None and row.key is not None and row.key != example.pkey:
                    example.note = f"line {row.line} now holds the key {_cell(row.key)}"
                elif row.values:
                    example.cells = {redact(str(k)): _cell(v) for k, v in row.values.items()}
                else:
                    example.cells = {"(raw line)": _cell(row.raw.decode("utf-8", "replace")
                                                         .rstrip("\r\n"))}
            if not wanted:
                break
    except (*READ_ERRORS, InputBroken) as exc:
        note += f" Reading it stopped early: {redact(str(exc))}."
    finally:
        source.close()
    for left in wanted.values():
        for example in left:
            example.note = "not in the input now"
    return note
