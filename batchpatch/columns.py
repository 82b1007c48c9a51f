"""Which columns a file may write (pure): the fields they set, the `--fields` allow-list and the
schema's refusals. Checked once for a CSV header (and a JSON Lines or Parquet file's first
records) before anything is sent, and row by row for JSON records past those."""

from __future__ import annotations

from collections.abc import Iterable

from .errors import CellError, UsageError
from .plan import GUARD_SUFFIX, REPLACE_SUFFIX, check_path
from .schema import Schema

__all__ = ["check_names", "outside_fields", "refusals", "writable"]


def check_names(columns: Iterable[str], where: str) -> None:
    """UsageError (exit 2) for a column naming no field (`@expected`, `a..b`, `.phone`): every
    row would be `invalid`; `validate` lists it as a problem of line 1."""
    for column in columns:
        bare = column.removesuffix(GUARD_SUFFIX).removesuffix(REPLACE_SUFFIX)
        try:
            check_path(bare)
            once = column.removesuffix(GUARD_SUFFIX)
            if (once != column and once.endswith((GUARD_SUFFIX, REPLACE_SUFFIX))) \
                    or bare.endswith((GUARD_SUFFIX, REPLACE_SUFFIX)):  # `a@expected@expected`
                raise CellError(f"bad field name {bare!r}")
        except CellError:
            raise UsageError(f"{where}: line 1: column {column!r} names no field (bad field "
                             f"name {bare!r}); nothing sent") from None


def writable(columns: Iterable[str]) -> list[str]:
    """Columns as the fields they write: guards left out, `@replace` dropped."""
    out = []
    for column in columns:
        if column.endswith(GUARD_SUFFIX):
            continue
        out.append(column[: -len(REPLACE_SUFFIX)] if column.endswith(REPLACE_SUFFIX) else column)
    return out


def outside_fields(allowed: Iterable[str], columns: Iterable[str]) -> list[str]:
    """The columns outside the `--fields` allow-list (guards aside; `location.city` is allowed
    by `location` or `location.city`)."""
    names = set(allowed)
    return [column for column in writable(columns)
            if not any(column == name or column.startswith(name + ".") for name in names)]


def refusals(columns: Iterable[str], schema: Schema | None,
             allowed: Iterable[str] | None) -> list[str]:
    """Why the API (or --fields) would refuse these columns; empty if it would not."""
    out: list[str] = []
    if allowed is not None:
        names = sorted(set(allowed))
        out += [f"`{c}`: outside --fields ({', '.join(names)})"
                for c in outside_fields(names, columns)]
    if schema is not None:
        out += schema.problems(writable(columns))
    return out
