"""Parquet input: read with pyarrow in record batches (memory stays flat), one typed Row per
row, and the failures file written back as Parquet with the input's own schema.

- A row's `line` is its index in the file, 1-based (a Parquet file has no header line); its
  values keep their Arrow types as JSON values (arrowvalues.py); a value with no exact JSON form
  makes the row `invalid`, the problem naming the column.
- A null cell is a JSON null: it sets the field to null, as `null` does in JSONL. A Parquet
  file cannot leave a cell out, so a row that should leave a field as it is must not carry that
  column (`batchpatch validate` shows how many nulls each column holds).
- The key column must exist (else UsageError); a null or empty key makes the row invalid.
- `Row.raw` is the row's 0-based index as ASCII digits: ParquetFailures collects the indices
  and, at close, reads the input once more and writes those rows (in input order) with the
  input's schema, through a temp file and a rename. Until then the failures file on disk is
  a valid, empty Parquet file; a run killed outright leaves it so, and --resume rebuilds it.
"""

from __future__ import annotations

import array
import bisect
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .arrowvalues import Converter, Unsendable, converter
from .errors import InputBroken, UsageError
from .failures import FailuresFile
from .model import Row
from .plan import GUARD_SUFFIX, REPLACE_SUFFIX
from .rows import InputFile, _broken, _check_columns

__all__ = ["ParquetFailures", "ParquetInput", "count_parquet_rows", "open_parquet"]

#: rows decoded at a time when reading
BATCH_ROWS = 1024
#: rows read at a time when the failures file is written
_COPY_ROWS = 65536


def _pyarrow() -> tuple[Any, Any]:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise UsageError("reading Parquet needs pyarrow: pip install pyarrow") from None
    return pa, pq


@dataclass
class ParquetInput(InputFile):
    """An opened Parquet input; `parquet` is its pyarrow ParquetFile."""

    parquet: Any = None

    def failures_file(self, path: Path) -> FailuresFile:
        return ParquetFailures(path, self.path, self.parquet.schema_arrow)


def open_parquet(path: str, key_column: str) -> ParquetInput:
    """Open a Parquet file and check it can be used; raises UsageError (exit 2) if not."""
    pa, pq = _pyarrow()
    if path == "-":
        raise UsageError("Parquet cannot be read from standard input; give the file's path")
    try:
        stream = open(path, "rb")  # noqa: SIM115 - closed by InputFile.close
    except FileNotFoundError:
        raise UsageError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"{path}: is a directory, not a file") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot open: {exc.strerror}") from None
    source = ParquetInput(path, "parquet", key_column, stream)
    try:
        source.parquet = pq.ParquetFile(stream)
        schema = source.parquet.schema_arrow
    except (pa.ArrowException, OSError) as exc:
        source.close()
        raise UsageError(f"{path}: cannot read as Parquet: {exc}") from None
    try:
        _check_schema(path, schema, key_column)
    except UsageError:
        source.close()
        raise
    source._rows = _rows(source, schema)
    return source


def _check_schema(path: str, schema: Any, key_column: str) -> None:
    names = list(schema.names)
    if key_column not in names:
        raise UsageError(f"{path}: no key column {key_column!r} (columns: {', '.join(names)}); "
                         "set --key-column")
    seen: set[str] = set()
    for name in names:
        if not name:
            raise UsageError(f"{path}: a column has no name")
        if name in seen:
            raise UsageError(f"{path}: column {name!r} appears twice")
        seen.add(name)
    leaves = [leaf for f in schema if f.name != key_column for leaf in _leaves(f.name, f.type)]
    _check_columns(path, leaves, where="")


def _leaves(name: str, arrow_type: Any) -> list[str]:
    """The field paths a column sets: a struct's leaves, as plan.flatten reads them."""
    import pyarrow as pa

    if (pa.types.is_struct(arrow_type) and arrow_type.num_fields
            and not name.endswith((GUARD_SUFFIX, REPLACE_SUFFIX))):
        return [leaf for f in arrow_type for leaf in _leaves(f"{name}.{f.name}", f.type)]
    return [name]


class _Bad:
    """A cell that cannot be sent, in place of its value."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem


def _rows(source: ParquetInput, schema: Any) -> Iterator[Row]:
    pa, _ = _pyarrow()
    key_column = source.key_column
    names = list(schema.names)
    converters = {f.name: converter(f.type, f.name) for f in schema if f.name != key_column}
    batches = source.parquet.iter_batches(batch_size=BATCH_ROWS)
    index = 0
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise InputBroken(_broken(source.path, index + 1, exc)) from None
        keys = _values(pa, batch.column(names.index(key_column)), None, key_column)
        columns = {name: _values(pa, batch.column(i), converters[name], name)
                   for i, name in enumerate(names) if name != key_column}
        for i in range(batch.num_rows):
            yield _row(index, keys[i], {name: cells[i] for name, cells in columns.items()},
                       key_column)
            index += 1


def _values(pa: Any, column: Any, convert: Converter, name: str) -> list[Any]:
    """A column of one batch as JSON values, a _Bad in place of each cell that cannot be sent."""
    try:
        values = column.to_pylist()
    except (pa.ArrowException, ValueError, OverflowError):
        values = [_scalar(pa, column, i, name) for i in range(len(column))]
    if convert is None:
        return values
    out: list[Any] = []
    for value in values:
        if isinstance(value, _Bad):
            out.append(value)
            continue
        try:
            out.append(convert(value))
        except Unsendable as exc:
            out.append(_Bad(str(exc)))
    return out


def _scalar(pa: Any, column: Any, i: int, name: str) -> Any:
    """One cell, when the column as a whole has one that Python cannot hold (year 10000...)."""
    try:
        return column[i].as_py()
    except (pa.ArrowException, ValueError, OverflowError) as exc:
        return _Bad(f"column {name!r}: cannot be read as a Python value ({exc})")


def _row(index: int, key: Any, values: dict[str, Any], key_column: str) -> Row:
    line, raw = index + 1, b"%d" % index
    if isinstance(key, int) and not isinstance(key, bool):
        key = str(key)
    text = key.strip() if isinstance(key, str) else None
    problem = next((v.problem for v in values.values() if isinstance(v, _Bad)), None)
    if key is None or text == "":
        return Row(line, None, {}, raw, typed=True, problem=f"empty key column {key_column!r}")
    if text is None:
        shown = key.problem if isinstance(key, _Bad) else f"bad key {key!r}"
        return Row(line, None, {}, raw, typed=True, problem=shown)
    if problem is not None:
        return Row(line, text, {}, raw, typed=True, problem=problem)
    return Row(line, text, values, raw, typed=True)


def count_parquet_rows(path: str) -> int | None:
    """Rows in a Parquet file, from its footer; None if it cannot be read."""
    try:
        _, pq = _pyarrow()
        return int(pq.ParquetFile(path).metadata.num_rows)
    except (UsageError, OSError, ValueError):  # pyarrow's errors are OSError or ValueError
        return None


class ParquetFailures(FailuresFile):
    """The failed rows of a Parquet input, written as Parquet with the input's schema.

    State: `_indices` holds the 0-based index of every failed row written so far (8 bytes
    each); the file on disk is empty (schema only) until `close()` writes them all."""

    def __init__(self, path: Path, source: str, schema: Any) -> None:
        self.path = path
        self._source = source
        self._schema = schema
        self._indices = array.array("q")
        self._closed = False
        self._write_rows([])  # a valid file from the start, and unwritable paths fail now

    def write(self, raw: bytes) -> None:
        self._indices.append(int(raw))

    def flush(self) -> None:
        """Nothing to flush: the rows are written whole at close."""

    def sync(self) -> None:
        """Nothing to sync: the rows are written whole at close."""

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._write_rows(sorted(set(self._indices)))

    def _write_rows(self, indices: list[int]) -> None:
        """Write the source's rows at `indices` (sorted) to the file, atomically."""
        pa, pq = _pyarrow()
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            writer = pq.ParquetWriter(tmp, self._schema)
            try:
                if indices:
                    for batch in _selected(pq, self._source, indices):
                        writer.write_batch(batch)
            finally:
                writer.close()
            os.replace(tmp, self.path)
        except (OSError, pa.ArrowException) as exc:
            tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise
            raise OSError(f"cannot write Parquet: {exc}") from exc


def _selected(pq: Any, source: str, indices: list[int]) -> Iterator[Any]:
    """The batches of rows of `source` at `indices` (sorted), read batch by batch."""
    import pyarrow as pa

    start = 0
    for batch in pq.ParquetFile(source).iter_batches(batch_size=_COPY_ROWS):
        end = start + batch.num_rows
        lo, hi = bisect.bisect_left(indices, start), bisect.bisect_left(indices, end)
        if hi > lo:
            yield batch.take(pa.array([i - start for i in indices[lo:hi]], pa.int64()))
        start = end
        if hi >= len(indices):
            return
