"""In-memory inputs for the Python API: a pandas DataFrame, a pyarrow Table, RecordBatch or
RecordBatchReader, or an iterable of dicts, spooled to a file so that a run reads them as it
reads any input (streaming, resumable, one failures file).

- Arrow data and DataFrames go to `<results>.input.parquet`, batch by batch (a DataFrame
  through `pyarrow.Table.from_pandas(preserve_index=False)`, in chunks of rows). A DataFrame's
  None, NaT and pd.NA are nulls (they set the field to null), but NaN in a float column stays
  NaN, which makes the row invalid as it does in a Parquet file: NaN is how pandas marks a
  value missing by accident, and sent as null it would wipe the field. Dicts go to
  `<results>.input.jsonl`, one orjson line each. A dict's value with no exact JSON form
  (NaN, which would be sent as null and wipe the field; a decimal a float would round; a value
  orjson cannot write) is a UsageError naming the item, before anything is sent. Datetimes are
  written as the Parquet reader shows them (aware: UTC with `Z`; naive: as they are).
- The spool is written to a temp file and hashed as it goes; it replaces the one already there
  only when the content differs, so `resume=True` with the same data finds the same file (the
  manifest holds its sha256). With other data the manifest check refuses the resume before the
  temp file replaces the spool (`Spool.write(check=...)`): a refused resume changes nothing on
  disk.
- `<spool>.lock` is held from the spool's writing to the end of the run: a second run on the
  same results cannot rewrite the spool under the first.

What the API returns (`RunResult`): the summary dict, exactly as before (`summary["failures"]`
is still the failures file's path), with one attribute more, `failed_rows`: the failed rows
read back from the failures file, as a pandas DataFrame (DataFrame or Arrow input; a fresh
index, the key column names the rows) or a list of dicts (iterable input), and None for a path.
It is an attribute, not a key, so that the dict stays JSON-serialisable (Airflow's XCom).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import math
import numbers
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, BinaryIO

import orjson

from .arrowvalues import Unsendable, exact_number, iso_datetime
from .errors import UsageError
from .result import RunResult
from .resume import file_identity

__all__ = ["RunResult", "Spool", "is_path", "spool_for"]

#: DataFrame rows converted to Arrow at a time, and Arrow rows written at a time
_CHUNK_ROWS = 65536
_JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_PASSTHROUGH_DATETIME


def is_path(data: Any) -> bool:
    return isinstance(data, str | os.PathLike)


def _kind(data: Any) -> str:
    """"frame", "table", "batch", "reader" or "records"; UsageError for anything else."""
    pd, pa = sys.modules.get("pandas"), sys.modules.get("pyarrow")
    if pd is not None and isinstance(data, pd.DataFrame):
        return "frame"
    if pa is not None:
        if isinstance(data, pa.Table):
            return "table"
        if isinstance(data, pa.RecordBatch):
            return "batch"
        if isinstance(data, pa.RecordBatchReader):
            return "reader"
    if isinstance(data, Iterable) and not isinstance(data, str | bytes | Mapping):
        return "records"
    raise UsageError(f"cannot run on a {type(data).__name__}: give a file path, a pandas "
                     "DataFrame, a pyarrow Table or RecordBatchReader, or an iterable of dicts")


@dataclass
class Spool:
    """Where in-memory data is written for the run, and how its failed rows are read back."""

    data: Any
    kind: str
    path: Path

    @property
    def format(self) -> str:
        return "jsonl" if self.kind == "records" else "parquet"

    def write(self, key_column: str, check: Callable[[Path], None] | None = None) -> str:
        """Write the data (UsageError if it cannot be); returns its sha256. Before new content
        replaces the spool, `check(temp file)` may refuse it (UsageError): the spool stays as
        it was."""
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(tmp, "wb") as fh:
                sink = _Hashing(fh)
                if self.kind == "records":
                    _write_records(sink, self.data)
                else:
                    _write_arrow(sink, self.data, self.kind, key_column)
            digest = sink.digest.hexdigest()
            if self.path.exists() and file_identity(str(self.path))["sha256"] == digest:
                tmp.unlink()  # the same data as last time: the manifest's file stays
            else:
                if check is not None:
                    check(tmp)
                os.replace(tmp, self.path)
        except OSError as exc:
            raise UsageError(f"{self.path}: cannot write the input: {exc.strerror or exc}") \
                from None
        finally:
            tmp.unlink(missing_ok=True)
        return digest

    def failed_rows(self, failures: Path) -> Any:
        """The failures file read back: a DataFrame, or a list of dicts for records."""
        if self.kind == "records":
            if not failures.exists():
                return []
            with open(failures, "rb") as fh:
                return [orjson.loads(line) for line in fh if line.strip()]
        import pyarrow.parquet as pq

        if not failures.exists():  # the run stopped before it was made
            return pq.read_schema(self.path).empty_table().to_pandas()
        return pq.read_table(failures).to_pandas()


def spool_for(data: Any, results: str | os.PathLike[str] | None) -> Spool:
    """The spool of in-memory `data`, beside `results`; nothing is written yet."""
    kind = _kind(data)
    if results is None:
        raise UsageError("results= is required when the input is not a file path: the "
                         "results file names where the input is spooled and the outputs go")
    results = Path(results)
    suffix = ".input.jsonl" if kind == "records" else ".input.parquet"
    return Spool(data, kind, results.with_name(results.name + suffix))


class _Hashing(io.RawIOBase):
    """A write-only file that hashes what goes through it."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._size = 0
        self.digest = hashlib.sha256()

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        data = bytes(data)
        self.digest.update(data)
        self._size += len(data)
        return self._fh.write(data)

    def tell(self) -> int:
        return self._size


def _write_arrow(sink: _Hashing, data: Any, kind: str, key_column: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if kind == "frame" and key_column not in data.columns and key_column in data.index.names:
        raise UsageError(f"the key column {key_column!r} is the DataFrame's index; pass "
                         "df.reset_index()")
    try:
        if kind == "frame":
            schema = pa.Schema.from_pandas(data, preserve_index=False)
        else:
            schema = data.schema
        writer = pq.ParquetWriter(sink, schema)
        try:
            if kind == "frame":
                for start in range(0, len(data), _CHUNK_ROWS):
                    writer.write_table(_frame_chunk(pa, data.iloc[start:start + _CHUNK_ROWS],
                                                    schema))
            elif kind == "table":
                for batch in data.to_batches(max_chunksize=_CHUNK_ROWS):
                    writer.write_batch(batch)
            elif kind == "batch":
                writer.write_batch(data)
            else:
                for batch in data:
                    writer.write_batch(batch)
        finally:
            writer.close()
    except (pa.ArrowException, TypeError, ValueError) as exc:
        raise UsageError(f"the data cannot be written as Parquet: {exc}") from None


def _frame_chunk(pa: Any, frame: Any, schema: Any) -> Any:
    """Rows of a DataFrame as Arrow. NaN in a float column stays NaN (the reader makes the row
    invalid) instead of becoming null, which would set the field to null: in a float column
    NaN is what a missing value becomes by accident (a merge, a reindex); pandas' None, NaT
    and pd.NA (nullable dtypes) are nulls, and set null."""
    import numpy as np

    table = pa.Table.from_pandas(frame, schema=schema, preserve_index=False)
    for j, dtype in enumerate(frame.dtypes):
        if isinstance(dtype, np.dtype) and dtype.kind == "f":
            field = schema.field(j)
            table = table.set_column(j, field, pa.array(frame.iloc[:, j].to_numpy(),
                                                        type=field.type, from_pandas=False))
    return table


def _write_records(sink: _Hashing, records: Iterable[Any]) -> None:
    for number, item in enumerate(records, 1):
        if not isinstance(item, Mapping):
            raise UsageError(f"item {number}: a {type(item).__name__}, not a dict")
        where = f"item {number}"
        try:
            _check_values(item, where)
            line = orjson.dumps(dict(item), default=_json_value, option=_JSON_OPTIONS)
        except Unsendable as exc:
            raise UsageError(str(exc)) from None
        except orjson.JSONEncodeError as exc:
            raise UsageError(f"{where}: cannot be written as JSON: {exc}") from None
        sink.write(line + b"\n")


def _check_values(value: Any, where: str, path: str = "") -> None:
    """Unsendable for a value that orjson would write as null (NaN, ±inf, NaT: that would set
    the field to null) or a decimal with no exact JSON number, naming the field."""
    if isinstance(value, Mapping):
        for name, inner in value.items():
            _check_values(inner, where, f"{path}.{name}" if path else str(name))
    elif isinstance(value, list | tuple):
        for inner in value:
            _check_values(inner, where, path)
    elif isinstance(value, Decimal):
        exact_number(value, f"{where}: field {path!r}")
    elif ((isinstance(value, numbers.Real) and not isinstance(value, numbers.Integral)
           and not math.isfinite(value))
          or (isinstance(value, dt.datetime) and value != value)):  # NaT
        raise Unsendable(f"{where}: field {path!r} is {value}, which would be sent as null "
                         "and wipe the field; leave the key out to leave the field as is, "
                         "or give None to set null")


def _json_value(value: Any) -> Any:
    """orjson's fallback: datetimes as the Parquet reader shows them, decimals exactly."""
    if isinstance(value, dt.datetime):
        return iso_datetime(value)
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return exact_number(value, "decimal")  # checked by _check_values: exact
    raise TypeError(f"type {type(value).__name__} is not JSON")
