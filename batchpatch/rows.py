"""Streaming reader of input files (CSV or JSONL, plain or gzip, or standard input; Parquet in
parquet_input.py) into Rows.

A file that cannot be used at all (missing, no header, no key column) raises UsageError before
anything is sent. A record that cannot be used becomes a Row with `problem` set, keeping its line
number and exact raw bytes; the reader then goes on with the next record. Memory stays flat: one
record is held at a time.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import sys
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import orjson

from .errors import InputBroken, UsageError
from .failures import FailuresFile, RawFailures
from .model import Row
from .plan import GUARD_SUFFIX, REPLACE_SUFFIX, collisions

__all__ = ["FORMATS", "InputFile", "detect_format", "open_input"]

FORMATS = ("csv", "jsonl", "parquet")
_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
             ".parquet": "parquet"}
_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
#: what a file cut short or damaged raises while it is read
READ_ERRORS = (OSError, EOFError, zlib.error)


def detect_format(path: str, fmt: str | None) -> str:
    """The input format: the one asked for, else the file name's (`.csv`, `.jsonl`, `.parquet`;
    `.gz` too)."""
    if fmt:
        if fmt not in FORMATS:
            raise UsageError(f"unknown --format {fmt!r} (choose csv, jsonl or parquet)")
        return fmt
    if path == "-":
        raise UsageError("reading standard input needs --format csv or --format jsonl")
    name = path[:-3] if path.endswith(".gz") else path
    found = _SUFFIXES.get(Path(name).suffix.lower())
    if found is None:
        raise UsageError(f"{path}: cannot tell the format from the name; give --format "
                         "csv|jsonl|parquet")
    return found


def _open_binary(path: str) -> BinaryIO:
    if path == "-":
        stream: BinaryIO = sys.stdin.buffer
    else:
        try:
            stream = open(path, "rb")  # noqa: SIM115 - closed by InputFile.close
        except FileNotFoundError:
            raise UsageError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise UsageError(f"{path}: is a directory, not a file") from None
        except OSError as exc:
            raise UsageError(f"{path}: cannot open: {exc.strerror}") from None
    buffered = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)
    if buffered.peek(2)[:2] == _GZIP_MAGIC:
        return gzip.GzipFile(fileobj=buffered, mode="rb")  # type: ignore[return-value]
    return buffered


@dataclass
class InputFile:
    """An opened input: its format, key column, header (CSV) and an iterator of Rows."""

    path: str
    format: str
    key_column: str
    stream: BinaryIO
    #: CSV: the column names, and the header line exactly as read (written atop the failures file)
    columns: list[str] | None = None
    header_raw: bytes = b""
    delimiter: str = ","
    #: rows (by number) the reader need not give at all (--resume: already recorded), and how
    #: many it left out so
    skip: Callable[[int], bool] | None = None
    skipped: int = 0
    _rows: Iterator[Row] | None = None

    def __iter__(self) -> Iterator[Row]:
        assert self._rows is not None
        return self._rows

    def failures_file(self, path: Path) -> FailuresFile:
        """Where this input's failed rows go: the same format, so the file can be fed back."""
        return RawFailures(path, self.header_raw)

    def close(self) -> None:
        if self.path != "-":
            self.stream.close()


def open_input(path: str, fmt: str | None = None, key_column: str = "PKey",
               delimiter: str = ",") -> InputFile:
    """Open an input file and check it can be used; raises UsageError (exit 2) if not."""
    fmt = detect_format(path, fmt)
    if fmt == "parquet":
        from .parquet_input import open_parquet

        return open_parquet(path, key_column)
    if len(delimiter) != 1:
        raise UsageError(f"--delimiter must be one character (got {delimiter!r})")
    stream = _open_binary(path)
    source = InputFile(path, fmt, key_column, stream, delimiter=delimiter)
    try:
        source._rows = _open_csv(source) if fmt == "csv" else _open_jsonl(source)
    except UsageError:
        source.close()
        raise
    except (*READ_ERRORS, InputBroken) as exc:
        source.close()
        raise UsageError(f"{path}: cannot read: {exc}") from None
    return source


class _LineCounter:
    """Feeds decoded lines to csv.reader, keeping each record's raw bytes and line number."""

    def __init__(self, stream: BinaryIO, path: str) -> None:
        self.path = path
        self._lines = iter(stream)
        self.line = 0  # lines consumed so far
        self.raw: list[bytes] = []
        self.bad_encoding = False

    def __iter__(self) -> _LineCounter:
        return self

    def __next__(self) -> str:
        try:
            raw = next(self._lines)
        except READ_ERRORS as exc:
            raise InputBroken(_broken(self.path, self.line + 1, exc)) from None
        self.line += 1
        self.raw.append(raw)
        if self.line == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM) :]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            self.bad_encoding = True
            return raw.decode("utf-8", errors="replace")

    def take(self) -> tuple[bytes, bool]:
        raw, bad = b"".join(self.raw), self.bad_encoding
        self.raw, self.bad_encoding = [], False
        return raw, bad


def _open_csv(source: InputFile) -> Iterator[Row]:
    lines = _LineCounter(source.stream, source.path)
    reader = csv.reader(lines, delimiter=source.delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise UsageError(f"{source.path}: the file is empty (no header line)") from None
    except csv.Error as exc:
        raise UsageError(f"{source.path}: line 1: unreadable header: {exc}") from None
    source.header_raw, bad = lines.take()
    if bad:
        raise UsageError(f"{source.path}: line 1: the header is not valid UTF-8")
    header = [name.strip() for name in header]
    if source.key_column not in header:
        other = next((d for d in ",;\t|" if d != source.delimiter and d in header[0]), None)
        if len(header) == 1 and other:
            raise UsageError(f"{source.path}: line 1: no key column {source.key_column!r}; "
                             f"the header looks {other!r}-separated: try --delimiter "
                             f"{other!r}")
        raise UsageError(
            f"{source.path}: line 1: no key column {source.key_column!r} "
            f"(columns: {', '.join(header)}); set --key-column"
        )
    seen: set[str] = set()
    for name in header:
        if not name:
            raise UsageError(f"{source.path}: line 1: a column has no name")
        if name in seen:
            raise UsageError(f"{source.path}: line 1: column {name!r} appears twice")
        seen.add(name)
    _check_columns(source.path, [n for n in header if n != source.key_column])
    source.columns = header
    return _csv_rows(source, reader, lines, header)


def _check_columns(path: str, columns: list[str], where: str = "line 1: ") -> None:
    """Two columns that set the same field (`location` and `location.city`) are refused."""
    for suffix in (GUARD_SUFFIX, ""):
        group = [c[: -len(suffix)] if suffix else c for c in columns
                 if (c.endswith(suffix) if suffix else not c.endswith(GUARD_SUFFIX))]
        group = [c[: -len(REPLACE_SUFFIX)] if c.endswith(REPLACE_SUFFIX) else c for c in group]
        seen: set[str] = set()
        for name in group:
            if name in seen:
                raise UsageError(f"{path}: {where}two columns set the field {name!r}; "
                                 "keep one")
            seen.add(name)
        pairs = collisions(group)
        if pairs:
            a, b = pairs[0]
            raise UsageError(f"{path}: {where}columns {a + suffix!r} and {b + suffix!r} "
                             f"both set {a!r}; keep one")


def _broken(path: str, line: int, exc: BaseException) -> str:
    why = str(exc) or type(exc).__name__
    return f"{path}: line {line}: cannot read further ({why}); the rows before it were read"


def _csv_rows(
    source: InputFile, reader: Iterator[list[str]], lines: _LineCounter, header: list[str]
) -> Iterator[Row]:
    key_index = header.index(source.key_column)
    width = len(header)
    while True:
        start = lines.line + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raw, _ = lines.take()
            yield Row(start, None, {}, raw, problem=f"unreadable CSV: {exc}")
            continue
        raw, bad = lines.take()
        if not cells:  # a blank line is not a record
            continue
        if source.skip is not None and source.skip(start):
            source.skipped += 1
            continue
        if bad:
            yield Row(start, None, {}, raw, problem="the line is not valid UTF-8")
        elif len(cells) != width:
            key = cells[key_index].strip() if key_index < len(cells) else ""
            yield Row(start, key or None, {}, raw,
                      problem=f"expected {width} cells, found {len(cells)}")
        else:
            key = cells[key_index].strip()
            values = {name: cell for name, cell in zip(header, cells, strict=True)}
            del values[source.key_column]
            problem = None if key else f"empty key column {source.key_column!r}"
            yield Row(start, key or None, values, raw, problem=problem)


def _open_jsonl(source: InputFile) -> Iterator[Row]:
    # Peek until the first keyed record, so that a file with no key at all is a usage error
    # rather than N invalid rows. At most _PEEK records are held.
    rows = _jsonl_rows(source)
    first: list[Row] = []
    keyless: Row | None = None
    for row in rows:
        first.append(row)
        if row.problem is None:
            break
        if row.problem.startswith("missing key"):
            keyless = keyless or row
        if len(first) >= _PEEK:
            break
    if keyless is not None and all(row.problem is not None for row in first):
        raise UsageError(
            f"{source.path}: line {keyless.line}: no key {source.key_column!r} "
            f"(keys: {', '.join(list(keyless.values)[:10])}); set --key-column"
        )
    return _chain(first, rows)


_PEEK = 100


def _chain(first: list[Row], rest: Iterator[Row]) -> Iterator[Row]:
    yield from first
    yield from rest


def _lines(source: InputFile) -> Iterator[tuple[int, bytes]]:
    """(line number, bytes) of a JSONL input, a BOM on line 1 dropped."""
    number = 0
    lines = iter(source.stream)
    while True:
        try:
            raw = next(lines)
        except StopIteration:
            return
        except READ_ERRORS as exc:
            raise InputBroken(_broken(source.path, number + 1, exc)) from None
        number += 1
        if number == 1 and raw.startswith(_BOM):
            raw = raw[len(_BOM):]
        yield number, raw


def _jsonl_rows(source: InputFile) -> Iterator[Row]:
    key_column = source.key_column
    first = True
    for number, raw in _lines(source):
        text = raw
        if not text.strip():
            continue
        if source.skip is not None and source.skip(number):
            source.skipped += 1
            continue
        if first:
            first = False
            head = text.strip()
            if head.startswith(b"[") or head == b"{":
                raise UsageError(
                    f"{source.path}: line {number}: this is a JSON document (an array or an "
                    "object over several lines), not JSON Lines; write one object per line "
                    "(e.g. jq -c '.[]' FILE > FILE.jsonl)")
        try:
            obj = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            yield Row(number, None, {}, raw, typed=True, problem=f"broken JSON: {exc}")
            continue
        if isinstance(obj, dict) and _inexact(obj):
            obj = json.loads(text)  # orjson turns integers beyond 64 bits into floats
        if not isinstance(obj, dict):
            kind = type(obj).__name__.replace("NoneType", "null")
            yield Row(number, None, {}, raw, typed=True, problem=f"not a JSON object ({kind})")
            continue
        key = obj.pop(key_column, None)
        if isinstance(key, int) and not isinstance(key, bool):
            key = str(key)
        if not isinstance(key, str) or not key.strip():
            problem = f"missing key {key_column!r}" if key is None else f"bad key {key!r}"
            yield Row(number, None, obj, raw, typed=True, problem=problem)
            continue
        yield Row(number, key.strip(), obj, raw, typed=True)


def _inexact(value: object) -> bool:
    """True if a parsed value holds a float that may be an integer beyond 64 bits."""
    if isinstance(value, float):
        return value.is_integer() and abs(value) >= 2**63
    if isinstance(value, dict):
        return any(_inexact(v) for v in value.values())
    if isinstance(value, list):
        return any(_inexact(v) for v in value)
    return False
