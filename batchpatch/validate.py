"""`batchpatch validate`: check an input file offline (nothing is sent) and say how each column
will be read. Problems (exit 1): rows the run would record as `invalid`, bad field names.
Warnings (exit 0): duplicate keys (applied in input order, the last wins), all-empty columns."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from .model import Row
from .plan import GUARD_SUFFIX, CellError, check_path, flatten, wanted_values
from .rows import open_input
from .schema import Schema

__all__ = ["Validation", "validate"]

_SHOWN = 50  # problems listed one by one; the rest are counted


@dataclass
class ColumnUse:
    filled: int = 0
    empty: int = 0
    null: int = 0
    types: Counter[str] = field(default_factory=Counter)


@dataclass
class Validation:
    path: str
    format: str
    key_column: str
    rows: int = 0
    problems: list[str] = field(default_factory=list)
    problem_count: int = 0
    duplicates: dict[str, list[int]] = field(default_factory=dict)
    columns: dict[str, ColumnUse] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    def problem(self, text: str) -> None:
        self.problem_count += 1
        if len(self.problems) < _SHOWN:
            self.problems.append(text)

    def text(self, null_token: str | None) -> str:
        lines = [f"{self.path}: {self.format}, key column {self.key_column!r}, {self.rows} rows"]
        lines.append("columns:")
        for name, use in self.columns.items():
            lines.append(f"  {name:<28} {_meaning(name)}; {use.filled} set, {use.empty} "
                         f"empty (left as is)" + (f", {use.null} null" if use.null else "")
                         + (f"; JSON types: {dict(use.types)}" if use.types else ""))
        if null_token is None and self.format == "csv":
            lines.append("  (no --null-token: no CSV cell sets null)")
        if self.format == "parquet":
            lines.append("  (Parquet: a null cell sets the field to null; leave a column out "
                         "to leave its field as is)")
        dupes = {k: v for k, v in self.duplicates.items() if len(v) > 1}
        if dupes:
            lines.append(f"warning: {len(dupes)} keys appear more than once (applied in input "
                         "order, the last wins):")
            for key, where in list(dupes.items())[:10]:
                lines.append(f"  {key}: lines {', '.join(map(str, where[:10]))}")
        if self.problem_count:
            lines.append(f"problems: {self.problem_count}")
            lines.extend(f"  {p}" for p in self.problems)
            if self.problem_count > len(self.problems):
                lines.append(f"  ... and {self.problem_count - len(self.problems)} more")
        lines.append("ok: no problems" if self.ok else "not ok: fix the lines above")
        return "\n".join(lines)


def _meaning(name: str) -> str:
    if name.endswith(GUARD_SUFFIX):
        return f"guard: the profile must hold this in {name[: -len(GUARD_SUFFIX)]!r}"
    if "." in name:
        return "nested field (parent object sent whole, merged)"
    return "field"


def validate(path: str, fmt: str | None = None, key_column: str = "PKey",
             null_token: str | None = None, delimiter: str = ",",
             schema: Schema | None = None) -> Validation:
    """Read the whole file as a run would, without a network; raises UsageError if unusable.
    With the API's schema (`--online`), every cell is typed as a run would type it for a
    profile that holds nothing in that field: a value the run would find `invalid` is a
    problem."""
    source = open_input(path, fmt, key_column, delimiter)
    result = Validation(path, source.format, key_column)
    seen: dict[str, list[int]] = {}
    try:
        if source.columns:
            for name in source.columns:
                if name != key_column:
                    result.columns[name] = ColumnUse()
                    _check_name(result, name, 1)
        for row in source:
            result.rows += 1
            if row.problem is not None:
                result.problem(f"line {row.line}: {row.problem}")
                continue
            assert row.key is not None
            seen.setdefault(row.key, []).append(row.line)
            _count_cells(result, row, null_token)
            if schema is not None:
                try:
                    wanted_values({}, row.values, row.typed, null_token, schema)
                except CellError as exc:
                    result.problem(f"line {row.line}: {exc}")
    finally:
        source.close()
    result.duplicates = {k: v for k, v in seen.items() if len(v) > 1}
    return result


def _check_name(result: Validation, name: str, line: int) -> bool:
    bare = name[: -len(GUARD_SUFFIX)] if name.endswith(GUARD_SUFFIX) else name
    try:
        check_path(bare)
    except CellError as exc:
        result.problem(f"line {line}: {exc}")
        return False
    return True


def _count_cells(result: Validation, row: Row, null_token: str | None) -> None:
    values: dict[str, Any] = flatten(row.values) if row.typed else row.values
    for name, value in values.items():
        use = result.columns.get(name)
        if use is None:
            if not _check_name(result, name, row.line):
                continue
            use = result.columns[name] = ColumnUse()
        if row.typed:
            use.types[type(value).__name__.replace("NoneType", "null")] += 1
            use.null += value is None
            use.filled += value is not None
        elif value == "":
            use.empty += 1
        elif null_token is not None and value == null_token:
            use.null += 1
        else:
            use.filled += 1
