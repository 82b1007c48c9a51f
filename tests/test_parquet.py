"""Parquet input: the reader's values and problems, the failures file written back with the
input's schema, `validate`, resume, and end to end against the sandbox the same server state as
the equivalent JSON Lines file."""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import by_row, make_profiles, read_results, run_cli, target_args
from hypothesis import given, settings
from hypothesis import strategies as st

from batchpatch.errors import UsageError
from batchpatch.plan import plan_patch
from batchpatch.progress import count_rows
from batchpatch.rows import open_input
from batchpatch.validate import validate

PARIS = dt.timezone(dt.timedelta(hours=2))
SCHEMA = pa.schema([
    ("PKey", pa.string()),
    ("cusLoyaltyPoints", pa.int64()),
    ("blackListEmail", pa.bool_()),
    ("cusScore", pa.float64()),
    ("phone", pa.string()),
    ("location", pa.struct([("city", pa.string()), ("zipCode", pa.string())])),
    ("lastContact", pa.timestamp("us", tz="Europe/Paris")),
])


def fix_records() -> list[dict[str, Any]]:
    """Rows 1-8 update, 9 is not found, 10 has a NaN score (invalid)."""
    records: list[dict[str, Any]] = [
        {"PKey": f"@p{i:05d}", "cusLoyaltyPoints": 1000 + i, "blackListEmail": i % 2 == 0,
         "cusScore": 0.25 * i, "phone": None if i % 3 == 0 else f"+33{i:09d}",
         "location": {"city": "Lyon", "zipCode": f"6900{i}"},
         "lastContact": dt.datetime(2024, 5, 1, 10, 30, i, tzinfo=PARIS)}
        for i in range(1, 9)
    ]
    records.append({**records[0], "PKey": "@nobody"})
    records.append({**records[1], "PKey": "@p00010", "cusScore": float("nan")})
    return records


def profiles() -> list[dict[str, Any]]:
    return [{**p, "lastContact": None} for p in make_profiles(50)]


def write_parquet(path: Path, records: list[dict[str, Any]], schema: pa.Schema = SCHEMA,
                  row_group_size: int | None = None) -> Path:
    pq.write_table(pa.Table.from_pylist(records, schema=schema), path,
                   row_group_size=row_group_size)
    return path


def jsonl_equivalent(records: list[dict[str, Any]]) -> list[str]:
    """The same fixes as JSON Lines, the timestamps written as a user would (UTC, `Z`)."""
    lines = []
    for r in records:
        ts = r["lastContact"].astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(json.dumps({**r, "lastContact": ts}))  # json writes NaN as NaN: invalid
    return lines


def rows_of(path: Path, **kw: Any) -> list:
    source = open_input(str(path), **kw)
    try:
        return list(source)
    finally:
        source.close()


# -- end to end ---------------------------------------------------------------------------------

def test_parquet_run_leaves_the_server_as_the_jsonl_run_does(sandbox, tmp_path: Path) -> None:
    records = fix_records()
    jsonl = tmp_path / "fixes.jsonl"
    jsonl.write_text("\n".join(jsonl_equivalent(records)) + "\n")
    sandbox.reset(profiles())
    by_jsonl = run_cli("run", jsonl, *target_args(sandbox))
    state_jsonl = sandbox.profiles_now()
    jsonl_rows = by_row(read_results(tmp_path / "fixes.results.jsonl"))

    sandbox.reset(profiles())
    parquet = write_parquet(tmp_path / "fixes.parquet", records)
    proc = run_cli("run", parquet, *target_args(sandbox))
    assert proc.returncode == by_jsonl.returncode == 1, proc.stderr
    assert sandbox.profiles_now() == state_jsonl
    rows = by_row(read_results(tmp_path / "fixes.results.jsonl"))
    statuses = {n: r["status"] for n, r in rows.items()}
    assert statuses == {n: r["status"] for n, r in jsonl_rows.items()}
    assert statuses == {**dict.fromkeys(range(1, 9), "updated"), 9: "not_found", 10: "invalid"}
    assert "column 'cusScore'" in rows[10]["error"] and "NaN" in rows[10]["error"]
    p3 = state_jsonl["@p00003"]
    assert p3["phone"] is None  # a null cell sets null, as JSON's null does
    assert p3["location"] == {"city": "Lyon", "zipCode": "69003", "countryCode": "FR"}
    assert p3["lastContact"] == "2024-05-01T08:30:03Z"
    assert p3["cusLoyaltyPoints"] == 1003 and p3["blackListEmail"] is False
    assert state_jsonl["@p00004"]["cusScore"] == 1.0


def test_failures_file_is_parquet_with_the_input_schema_and_feeds_back(
        sandbox, tmp_path: Path) -> None:
    sandbox.reset(profiles())
    schema = SCHEMA.with_metadata({"origin": "crm export 2024-05"})
    parquet = write_parquet(tmp_path / "fixes.parquet", fix_records(), schema)
    assert run_cli("run", parquet, *target_args(sandbox)).returncode == 1
    failures = tmp_path / "fixes.failures.parquet"
    assert pq.read_schema(failures).equals(schema, check_metadata=True)
    failed = pq.read_table(failures).to_pylist()
    assert [r["PKey"] for r in failed] == ["@nobody", "@p00010"]
    assert failed[0]["lastContact"] == fix_records()[8]["lastContact"]
    # fed back as is: the same two rows, nothing else
    again = run_cli("run", failures, "--results", tmp_path / "again.results.jsonl",
                    *target_args(sandbox))
    assert again.returncode == 1, again.stderr
    rows = by_row(read_results(tmp_path / "again.results.jsonl"))
    assert {n: (r["pkey"], r["status"]) for n, r in rows.items()} == {
        1: ("@nobody", "not_found"), 2: ("@p00010", "invalid")}


def test_a_run_with_no_failure_writes_an_empty_parquet_failures_file(
        sandbox, tmp_path: Path) -> None:
    sandbox.reset(profiles())
    parquet = write_parquet(tmp_path / "ok.parquet", fix_records()[:8])
    assert run_cli("run", parquet, *target_args(sandbox)).returncode == 0
    failures = pq.read_table(tmp_path / "ok.failures.parquet")
    assert failures.num_rows == 0 and failures.schema.equals(SCHEMA)


def test_resume_after_limit_completes_the_file_once(sandbox, tmp_path: Path) -> None:
    sandbox.reset(profiles())
    parquet = write_parquet(tmp_path / "fixes.parquet", fix_records(), row_group_size=3)
    first = run_cli("run", parquet, "--limit", "4", *target_args(sandbox))
    assert first.returncode == 0, first.stderr
    assert len(read_results(tmp_path / "fixes.results.jsonl")) == 4
    second = run_cli("run", parquet, "--resume", *target_args(sandbox))
    assert second.returncode == 1, second.stderr
    rows = by_row(read_results(tmp_path / "fixes.results.jsonl"))
    assert sorted(rows) == list(range(1, 11))
    assert sandbox.stats()["patches"] == {f"@p{i:05d}": 1 for i in range(1, 9)}
    failed = pq.read_table(tmp_path / "fixes.failures.parquet").column("PKey").to_pylist()
    assert failed == ["@nobody", "@p00010"]


def test_resume_refuses_a_changed_parquet_file(sandbox, tmp_path: Path) -> None:
    sandbox.reset(profiles())
    parquet = write_parquet(tmp_path / "fixes.parquet", fix_records())
    assert run_cli("run", parquet, "--limit", "2", *target_args(sandbox)).returncode == 0
    write_parquet(parquet, fix_records()[::-1])
    proc = run_cli("run", parquet, "--resume", *target_args(sandbox))
    assert proc.returncode == 2 and "resume" in proc.stderr.lower()


def test_validate_reports_parquet_rows_columns_and_nulls(tmp_path: Path) -> None:
    parquet = write_parquet(tmp_path / "fixes.parquet", fix_records())
    result = validate(str(parquet))
    out = result.text(None)
    assert not result.ok and result.rows == 10
    assert out.startswith(f"{parquet}: parquet, key column 'PKey', 10 rows")
    assert "line 10: column 'cusScore': nan cannot be sent" in out
    assert result.columns["phone"].null == 2  # rows 3 and 6
    assert result.columns["location.city"].filled == 9
    assert "a null cell sets the field to null" in out
    assert validate(str(write_parquet(tmp_path / "ok.parquet", fix_records()[:8]))).ok


# -- the reader ---------------------------------------------------------------------------------

def test_no_key_column_is_a_usage_error_naming_the_file_and_columns(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "f.parquet", [{"id": "@a", "phone": "1"}],
                         pa.schema([("id", pa.string()), ("phone", pa.string())]))
    with pytest.raises(UsageError, match=r"f\.parquet: no key column 'PKey' \(columns: id, "
                                         r"phone\)"):
        open_input(str(path))
    assert rows_of(path, key_column="id")[0].key == "@a"


def test_bad_keys_and_unsendable_values_are_invalid_rows(tmp_path: Path) -> None:
    schema = pa.schema([("PKey", pa.string()), ("blob", pa.binary()),
                        ("price", pa.decimal128(10, 2))])
    path = write_parquet(tmp_path / "f.parquet", [
        {"PKey": "@a", "blob": None, "price": Decimal("12.00")},
        {"PKey": None, "blob": None, "price": None},
        {"PKey": "  ", "blob": None, "price": None},
        {"PKey": "@d", "blob": b"\x00", "price": None},
        {"PKey": "@e", "blob": None, "price": Decimal("0.10")},
        {"PKey": "@f", "blob": None, "price": Decimal("2.50")},
    ], schema)
    rows = rows_of(path)
    assert [r.line for r in rows] == [1, 2, 3, 4, 5, 6]
    assert rows[0].values == {"blob": None, "price": 12} and rows[0].typed
    assert isinstance(rows[0].values["price"], int)
    assert rows[1].problem == rows[2].problem == "empty key column 'PKey'"
    assert rows[3].key == "@d" and "column 'blob': binary" in (rows[3].problem or "")
    assert "column 'price': the decimal 0.10 has no exact JSON number" in (rows[4].problem or "")
    assert rows[5].values["price"] == 2.5 and rows[5].problem is None


def test_timestamps_dates_and_integer_keys(tmp_path: Path) -> None:
    schema = pa.schema([("PKey", pa.int64()), ("naive", pa.timestamp("ns")),
                        ("aware", pa.timestamp("ms", tz="UTC")), ("day", pa.date32()),
                        ("tags", pa.list_(pa.string()))])
    table = pa.table({
        "PKey": [42],
        "naive": pa.array([1_714_559_400_000_000_123], pa.timestamp("ns")),
        "aware": pa.array([1_714_559_400_500], pa.timestamp("ms", tz="UTC")),
        "day": [dt.date(2024, 5, 1)],
        "tags": [["a", "b"]],
    }, schema=schema)
    pq.write_table(table, tmp_path / "t.parquet")
    (row,) = rows_of(tmp_path / "t.parquet")
    assert row.key == "42"
    assert row.values == {"naive": "2024-05-01T10:30:00.000000123",
                          "aware": "2024-05-01T10:30:00.500Z", "day": "2024-05-01",
                          "tags": ["a", "b"]}


def test_rows_are_numbered_across_batches_and_counted_from_the_footer(tmp_path: Path) -> None:
    n = 2500
    path = write_parquet(tmp_path / "big.parquet",
                         [{"PKey": f"@k{i}", "phone": str(i)} for i in range(n)],
                         pa.schema([("PKey", pa.string()), ("phone", pa.string())]),
                         row_group_size=700)
    rows = rows_of(path)
    assert [r.line for r in rows] == list(range(1, n + 1))
    assert rows[-1].key == f"@k{n - 1}" and rows[-1].values == {"phone": str(n - 1)}
    assert count_rows(str(path), "parquet") == n


def test_files_that_cannot_be_read_are_usage_errors(tmp_path: Path) -> None:
    not_parquet = tmp_path / "x.parquet"
    not_parquet.write_text("PKey,phone\n")
    with pytest.raises(UsageError, match="cannot read as Parquet"):
        open_input(str(not_parquet))
    with pytest.raises(UsageError, match="standard input"):
        open_input("-", "parquet")
    with pytest.raises(UsageError, match="no such file"):
        open_input(str(tmp_path / "missing.parquet"))


def test_columns_that_set_the_same_field_are_refused(tmp_path: Path) -> None:
    schema = pa.schema([("PKey", pa.string()), ("location", pa.struct([("city", pa.string())])),
                        ("location.city", pa.string())])
    path = write_parquet(tmp_path / "f.parquet", [], schema)
    with pytest.raises(UsageError, match=r"two columns set the field 'location\.city'"):
        open_input(str(path))


# -- the property: Arrow values reach the API exactly ---------------------------------------------

INT64 = st.integers(-(2**63), 2**63 - 1)
TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
EXACT_DECIMAL = st.integers(-(10**12), 10**12).map(lambda n: Decimal(n) / 4)  # .25 steps
NESTED = pa.struct([("n", pa.int64()), ("inner", pa.struct([("s", pa.string()),
                                                            ("b", pa.bool_())]))])
PROPERTY_SCHEMA = pa.schema([("PKey", pa.string()), ("i", pa.int64()), ("b", pa.bool_()),
                             ("s", pa.string()), ("f", pa.float64()),
                             ("d", pa.decimal128(16, 2)),
                             ("w", pa.decimal128(38, 0)), ("nested", NESTED)])
RECORD = st.fixed_dictionaries({
    "i": st.none() | INT64, "b": st.none() | st.booleans(), "s": st.none() | TEXT,
    "f": st.none() | st.floats(allow_nan=False, allow_infinity=False),
    "d": st.none() | EXACT_DECIMAL, "w": st.none() | INT64.map(Decimal),
    "nested": st.none() | st.fixed_dictionaries({
        "n": st.none() | INT64,
        "inner": st.none() | st.fixed_dictionaries({"s": st.none() | TEXT,
                                                    "b": st.none() | st.booleans()})}),
})


def as_json(value: Any) -> Any:
    """What a user means the API to get: decimals as the number they hold, exactly."""
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, Decimal):
        return int(value) if value == int(value) else float(value)
    return value


def before(value: Any) -> Any:
    """A profile where every leaf differs from any value the strategies make (a list)."""
    if isinstance(value, dict):
        return {k: before(v) for k, v in value.items()}
    return ["before"]


def strict(value: Any) -> bytes:
    """Equality that tells 1 from 1.0 from True: the JSON text, keys sorted."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.lists(RECORD, min_size=1, max_size=5))
def test_arrow_values_reach_the_api_exactly(records: list[dict[str, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = write_parquet(Path(tmp) / "p.parquet",
                             [{"PKey": f"@k{i}", **r} for i, r in enumerate(records)],
                             PROPERTY_SCHEMA)
        rows = rows_of(path)
    assert [row.key for row in rows] == [f"@k{i}" for i in range(len(records))]
    for row, record in zip(rows, records, strict=True):
        assert row.problem is None
        plan = plan_patch(before(record), row.values, typed=True)
        sent = orjson.loads(orjson.dumps(plan.body))  # the PATCH body, as the server reads it
        assert strict(sent) == strict(as_json(record))
