"""The schema and --fields for every row, not only the file's first ones: JSON records past
the preflight's sample, JSON and Parquet values of the wrong type, whole objects
(`field@replace`), metadata with entries that cannot be read, columns naming no field,
`validate --online` on cell values and a dry run of creations. The real `batchpatch` command
against the sandbox; each test checks the server's state, the records and the exit status."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import by_row, read_results, run_cli, target_args, write_csv
from test_schema import SCHEMA, key, one_line, profile

from batchpatch.metadata import PREFLIGHT_ROWS
from batchpatch.sandbox.process import SandboxProcess


@pytest.fixture
def schema_sandbox(sandbox_process: SandboxProcess) -> SandboxProcess:
    sandbox_process.reset([profile(i) for i in range(10)], schema=SCHEMA)
    return sandbox_process


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def harmless(n: int) -> list[dict[str, Any]]:
    """n records past which the preflight stops looking (all for one profile, unchanged)."""
    return [{"PKey": key(0), "phone": profile(0)["phone"]} for _ in range(n)]


def run_jsonl(tmp_path: Path, sandbox: SandboxProcess, records: list[dict[str, Any]],
              *flags: str) -> tuple[int, dict[int, dict[str, Any]]]:
    fixes = write_jsonl(tmp_path / "f.jsonl", records)
    proc = run_cli("run", fixes, *target_args(sandbox), *flags)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, by_row(read_results(tmp_path / "f.results.jsonl"))


def test_a_record_past_the_preflight_with_a_column_outside_fields_is_invalid_and_not_sent(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    late = PREFLIGHT_ROWS + 1
    code, rows = run_jsonl(tmp_path, schema_sandbox, [
        *harmless(PREFLIGHT_ROWS), {"PKey": key(1), "email": "zz@example.com"},
        {"PKey": key(2), "phone": "0700000002"}], "--fields", "phone")
    assert code == 1
    assert rows[late]["status"] == "invalid" and "outside --fields" in rows[late]["error"]
    assert rows[late + 1]["status"] == "updated"
    assert schema_sandbox.profiles_now()[key(1)]["email"] == profile(1)["email"]
    assert key(1) not in schema_sandbox.stats()["patches"]


def test_a_record_past_the_preflight_writing_a_read_only_field_is_invalid_and_not_sent(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    late = PREFLIGHT_ROWS + 1
    code, rows = run_jsonl(tmp_path, schema_sandbox, [
        *harmless(PREFLIGHT_ROWS), {"PKey": key(2), "created": "2021-01-01 00:00:00.000Z"},
        {"PKey": key(3), "cusSecret": "x"}, {"PKey": key(4), "location": {"town": "Lyon"}}])
    assert code == 1
    for n in (late, late + 1, late + 2):
        assert rows[n]["status"] == "invalid", rows[n]
    assert "read-only" in rows[late]["error"] and "read-only" in rows[late + 1]["error"]
    assert "no such field" in rows[late + 2]["error"]
    assert schema_sandbox.stats()["patches"] == {}


@pytest.mark.parametrize(("field", "value"), [
    ("cusPoints", "abc"), ("cusPoints", True), ("cusPoints", 1.5), ("cusPoints", [1]),
    ("cusVip", "maybe"), ("cusVip", 1), ("firstName", 42), ("phone", ["a", "b"]),
    ("cusLastSeen", 20240501), ("location", "Paris"), ("gender", "femme"),
])
def test_a_json_value_not_of_its_fields_type_is_invalid_and_not_sent(
        schema_sandbox: SandboxProcess, tmp_path: Path, field: str, value: Any) -> None:
    code, rows = run_jsonl(tmp_path, schema_sandbox, [{"PKey": key(1), field: value}])
    assert code == 1
    assert rows[1]["status"] == "invalid" and field in rows[1]["error"], rows[1]
    assert schema_sandbox.profiles_now()[key(1)] == profile(1)


def test_json_values_the_field_can_hold_are_sent_typed(schema_sandbox: SandboxProcess,
                                                      tmp_path: Path) -> None:
    code, rows = run_jsonl(tmp_path, schema_sandbox, [
        {"PKey": key(1), "cusPoints": 42.0, "cusVip": "yes", "gender": "FEMALE"},
        {"PKey": key(2), "cusPoints": "7", "cusVip": False, "firstName": None}])
    assert code == 0, rows
    state = schema_sandbox.profiles_now()
    assert state[key(1)]["cusPoints"] == 42 and type(state[key(1)]["cusPoints"]) is int
    assert state[key(1)]["cusVip"] is True and state[key(1)]["gender"] == "female"
    assert state[key(2)]["cusPoints"] == 7 and state[key(2)]["firstName"] is None


def test_a_parquet_decimal_with_a_fraction_for_an_integer_field_is_invalid(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    import decimal

    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"PKey": [key(1), key(2)],
                      "cusPoints": pa.array([decimal.Decimal("1.5"), decimal.Decimal("30.0")],
                                            pa.decimal128(38, 1))})
    pq.write_table(table, tmp_path / "f.parquet")
    proc = run_cli("run", tmp_path / "f.parquet", *target_args(schema_sandbox))
    assert proc.returncode == 1, proc.stderr
    rows = by_row(read_results(tmp_path / "f.results.jsonl"))
    assert rows[1]["status"] == "invalid" and "cusPoints" in rows[1]["error"]
    assert rows[2]["status"] == "updated"
    assert schema_sandbox.profiles_now()[key(2)]["cusPoints"] == 30


@pytest.mark.parametrize("cell", ["1", "[1, 2]", '{"city": "Lyon", "bogus": 1}',
                                  '{"zipCode": 69000}'])
def test_a_whole_object_is_checked_against_the_schema(schema_sandbox: SandboxProcess,
                                                      tmp_path: Path, cell: str) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "location@replace"], [[key(1), cell]])
    proc = run_cli("run", fixes, *target_args(schema_sandbox))
    assert proc.returncode == 1, proc.stderr
    rows = by_row(read_results(tmp_path / "f.results.jsonl"))
    assert rows[2]["status"] == "invalid", rows[2]
    assert schema_sandbox.profiles_now()[key(1)] == profile(1)


def test_a_whole_object_within_the_schema_replaces_the_field(schema_sandbox: SandboxProcess,
                                                            tmp_path: Path) -> None:
    fixes = write_jsonl(tmp_path / "f.jsonl", [
        {"PKey": key(1), "location@replace": {"city": "Lyon"}}])
    proc = run_cli("run", fixes, *target_args(schema_sandbox))
    assert proc.returncode == 0, proc.stderr
    assert schema_sandbox.profiles_now()[key(1)]["location"]["city"] == "Lyon"


def test_metadata_entries_that_cannot_be_read_are_fields_not_refusals(
        sandbox_process: SandboxProcess, tmp_path: Path) -> None:
    """Adobe's resourceType shape with two entries that are not field descriptions."""
    sandbox_process.reset([profile(1)])
    metadata = tmp_path / "resource.json"
    metadata.write_text(json.dumps({"content": {**SCHEMA, "firstName": 5, "phone": [1]}}))
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "firstName", "phone"],
                      [[key(1), "Bob", "0611111111"]])
    proc = run_cli("run", fixes, *target_args(sandbox_process), "--schema", str(metadata))
    assert proc.returncode == 0, proc.stderr
    assert sandbox_process.profiles_now()[key(1)]["firstName"] == "Bob"


@pytest.mark.parametrize("column", ["@expected", "a..b", ".phone", "location.@replace",
                                    "cusVip@expected@expected", "cusVip@replace@expected"])
def test_a_column_naming_no_field_is_refused_before_any_request(
        schema_sandbox: SandboxProcess, tmp_path: Path, column: str) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", column, "phone"], [[key(1), "x", "y"]])
    proc = run_cli("run", fixes, *target_args(schema_sandbox))
    assert proc.returncode == 2
    assert "names no field" in one_line(proc)
    assert schema_sandbox.stats()["counts"] == {}


def test_validate_online_lists_the_cells_a_run_would_find_invalid(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "v.csv", ["PKey", "cusPoints", "gender", "cusVip", "birthDate"],
                    [[key(1), "thirty", "", "", ""], [key(2), "", "femme", "", ""],
                     [key(3), "", "", "maybe", ""], [key(4), "", "", "", "1980-02-30"],
                     [key(5), "3", "Female", "yes", "1980-02-03"]])
    proc = run_cli("validate", bad, "--online", "--base-url", schema_sandbox.url, "--org",
                   "demo", "--rate", "0")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for line in ("line 2:", "line 3:", "line 4:", "line 5:"):
        assert line in proc.stdout
    assert "line 6:" not in proc.stdout and "problems: 4" in proc.stdout
    assert schema_sandbox.stats()["counts"] == {"GET 200": 1}  # the metadata only


def test_a_dry_run_plans_a_second_row_of_a_new_key_as_a_patch(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "firstName", "phone"],
                      [["@new1", "Ann", ""], ["@new1", "", "0611"], ["@new1", "Ann", ""]])
    proc = run_cli("run", fixes, *target_args(schema_sandbox), "--on-missing", "create",
                   "--dry-run")
    assert proc.returncode == 0, proc.stderr
    rows = by_row(read_results(tmp_path / "f.results.jsonl"))
    assert rows[2].get("action") == "create"
    assert rows[3]["status"] == "dry_run" and rows[3].get("action") != "create"
    assert rows[4]["status"] == "unchanged"
    assert "POST" not in " ".join(schema_sandbox.stats()["counts"])


def test_an_empty_schema_setting_is_refused_in_one_line(tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], [["@p1", "1"]])
    proc = run_cli("run", fixes, "--base-url", "http://127.0.0.1:9", "--org", "demo",
                   "--schema", "")
    assert proc.returncode == 2
    assert "give auto, none or the path" in one_line(proc)


def test_a_time_of_day_field_is_not_read_as_a_datetime(sandbox_process: SandboxProcess,
                                                       tmp_path: Path) -> None:
    sandbox_process.reset([{**profile(1), "cusOpenAt": "09:00:00"}])
    metadata = tmp_path / "resource.json"
    metadata.write_text(json.dumps({"content": {**SCHEMA, "cusOpenAt": {
        "type": "time", "resType": "time"}}}))
    fixes = write_jsonl(tmp_path / "f.jsonl", [{"PKey": key(1), "cusOpenAt": "10:30:00"}])
    proc = run_cli("run", fixes, *target_args(sandbox_process), "--schema", str(metadata))
    assert proc.returncode == 0, proc.stderr
    assert sandbox_process.profiles_now()[key(1)]["cusOpenAt"] == "10:30:00"
