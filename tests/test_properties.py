"""Properties of the pure parts, with Hypothesis: the reader and the failures file round-trip
any row; coercion never yields NaN, infinity, null or an inexact number; plan, apply, undo,
apply restores any profile exactly."""

from __future__ import annotations

import copy
import csv
import gzip
import io
import math
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchpatch.coerce import INT64_MAX, INT64_MIN, to_float, to_int
from batchpatch.errors import CellError
from batchpatch.plan import flatten, get_path, plan_patch
from batchpatch.rows import open_input
from batchpatch.undo import Changes, write_undo

SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])
# text any file can hold: no lone surrogates; NUL is refused by the csv module
TEXT = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=20)
NAMES = st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,8}", fullmatch=True)


def read_all(path: Path, **kw: Any) -> list[Any]:
    source = open_input(str(path), **kw)
    try:
        return [(r.key, r.values, r.problem) for r in source]
    finally:
        source.close()


def refail(path: Path, out: Path, **kw: Any) -> None:
    """Write every row of `path` to a failures file, as a run where all rows failed would."""
    source = open_input(str(path), **kw)
    failures = source.failures_file(out)
    try:
        for row in source:
            failures.write(row.raw)
    finally:
        failures.close()
        source.close()


@SETTINGS
@given(columns=st.lists(NAMES, min_size=1, max_size=4, unique=True),
       cells=st.lists(st.lists(TEXT, min_size=4, max_size=4), min_size=1, max_size=8),
       delimiter=st.sampled_from([",", ";", "\t", "|"]), bom=st.booleans(),
       crlf=st.booleans(), zipped=st.booleans(), quote_all=st.booleans())
def test_csv_rows_survive_the_failures_file(tmp_path_factory: pytest.TempPathFactory,
                                            columns: list[str], cells: list[list[str]],
                                            delimiter: str, bom: bool, crlf: bool,
                                            zipped: bool, quote_all: bool) -> None:
    tmp = tmp_path_factory.mktemp("csv")
    header = ["PKey", *columns]
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n" if crlf else "\n",
                        quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL)
    writer.writerow(header)
    for i, row in enumerate(cells):
        writer.writerow([f"@k{i}", *row[: len(columns)]])
    data = ("\ufeff" if bom else "") + buffer.getvalue()
    raw = data.encode("utf-8")
    name = "in.csv.gz" if zipped else "in.csv"
    (tmp / name).write_bytes(gzip.compress(raw) if zipped else raw)
    first = read_all(tmp / name, delimiter=delimiter)
    refail(tmp / name, tmp / "failures.csv", delimiter=delimiter)
    assert read_all(tmp / "failures.csv", delimiter=delimiter) == first  # the same rows
    if quote_all:  # well-formed CSV: every cell read exactly as written
        expected = [(f"@k{i}", dict(zip(columns, row, strict=False)), None)
                    for i, row in enumerate(cells)]
        assert first == expected


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(INT64_MIN, INT64_MAX) | TEXT
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(NAMES, inner, max_size=3),
    max_leaves=8)


@SETTINGS
@given(records=st.lists(st.dictionaries(NAMES, JSON_VALUES, max_size=4), min_size=1,
                        max_size=6), bom=st.booleans())
def test_jsonl_rows_survive_the_failures_file(tmp_path_factory: pytest.TempPathFactory,
                                              records: list[dict[str, Any]], bom: bool) -> None:
    tmp = tmp_path_factory.mktemp("jsonl")
    lines = [orjson.dumps({"PKey": f"@k{i}", **r}) for i, r in enumerate(records)]
    (tmp / "in.jsonl").write_bytes((b"\xef\xbb\xbf" if bom else b"") + b"\n".join(lines) + b"\n")
    first = read_all(tmp / "in.jsonl")
    refail(tmp / "in.jsonl", tmp / "failures.jsonl")
    assert read_all(tmp / "failures.jsonl") == first


@SETTINGS
@given(cell=st.one_of(
    TEXT, st.integers().map(str), st.decimals(allow_nan=True, allow_infinity=True).map(str),
    st.floats().map(repr), st.from_regex(r"[+-]?[0-9_]{1,25}(\.[0-9]{0,20})?([eE][+-]?[0-9]{1,4})?",
                                         fullmatch=True)))
def test_coercion_is_exact_or_refused(cell: str) -> None:
    try:
        number = to_int(cell, "f")
    except CellError:
        pass
    else:
        assert isinstance(number, int) and INT64_MIN <= number <= INT64_MAX
        assert Decimal(cell.strip()) == number  # never rounded
    try:
        value = to_float(cell, "f")
    except CellError:
        pass
    else:
        assert isinstance(value, float) and math.isfinite(value)
        assert cell.strip().isascii() and "_" not in cell


def _paths(profile: dict[str, Any]) -> list[str]:
    """Every field of the profile: leaves, and the objects that hold them."""
    paths = set()
    for leaf in flatten(profile):
        parts = leaf.split(".")
        paths.update(".".join(parts[:i]) for i in range(1, len(parts) + 1))
    return sorted(p for p in paths if p != "PKey")


def _apply(profile: dict[str, Any], body: dict[str, Any]) -> None:
    """The server: a PATCH replaces each top-level field it names (nested objects whole)."""
    for name, value in body.items():
        profile[name] = copy.deepcopy(value)


PROFILE = st.dictionaries(NAMES.filter(lambda n: n != "PKey"), JSON_VALUES, min_size=1,
                          max_size=5)


@SETTINGS
@given(data=st.data(), profile=PROFILE)
def test_plan_apply_undo_apply_restores_the_profile(tmp_path_factory: pytest.TempPathFactory,
                                                    data: st.DataObject,
                                                    profile: dict[str, Any]) -> None:
    original = {"PKey": "@k", **profile}
    paths = _paths(original)
    chosen = data.draw(st.lists(st.sampled_from(paths), unique=True, max_size=3)) if paths else []
    row = {path: data.draw(JSON_VALUES) for path in chosen}
    # a row may not set a field and a field inside it: keep the outermost
    row = {p: v for p, v in row.items() if not any(p.startswith(q + ".") for q in row)}
    current = copy.deepcopy(original)
    plan = plan_patch(current, _nest(row), typed=True)
    _apply(current, plan.body)
    changes = Changes()
    if plan.changed:
        changes.fields["@k"] = plan.changed
    out = tmp_path_factory.mktemp("undo") / "undo.jsonl"
    write_undo(changes, out)
    source = open_input(str(out))
    try:
        for undo_row in source:
            undo = plan_patch(current, undo_row.values, typed=True)
            _apply(current, undo.body)
    finally:
        source.close()
    assert current == original
    for path in plan.changed:
        assert get_path(current, path) == get_path(original, path)


def _nest(flat: dict[str, Any]) -> dict[str, Any]:
    """Dotted keys are read as paths by the plan already; an object value is set whole
    (`field@replace`), as a CSV JSON cell would set it."""
    return {(f"{path}@replace" if isinstance(value, dict) else path): value
            for path, value in flat.items()}
