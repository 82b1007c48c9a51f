"""The API's schema end to end (`--schema auto|none|FILE`, preflight, `validate --online`, Campaign
v8): the real `batchpatch` command against the sandbox serving a given `schema` (enumerations,
data policies, types, read-only fields) as Adobe's resourceType metadata. Each test checks what
a user would notice: the profiles on the server, the requests it received, the records, the
exit status and the one line on stderr."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import by_row, make_profiles, read_results, run_cli, target_args, write_csv

from batchpatch.sandbox.process import SandboxProcess

#: the sandbox's resourceType content (batchpatch/sandbox/schema.py)
SCHEMA: dict[str, Any] = {
    "PKey": {"type": "string"},
    "firstName": {"type": "string", "dataPolicy": "smartCase"},
    "email": {"type": "string", "dataPolicy": "email"},
    "phone": {"type": "string", "dataPolicy": "phone"},
    "cusPoints": {"type": "number", "resType": "int64"},
    "cusVip": {"type": "boolean", "resType": "boolean"},
    "gender": {"type": "enumeration", "values": {
        "male": {"value": "male", "label": "Male"},
        "female": {"value": "female", "label": "Female"},
        "unknown": {"value": "unknown", "label": "Not specified"}}},
    "cusLastSeen": {"type": "datetime"},
    "birthDate": {"type": "date"},
    "location": {"type": "item", "content": {"city": {"dataPolicy": "smartCase"},
                                             "zipCode": {"type": "string"}}},
    "cusSecret": {"type": "string", "readOnly": True},
    "created": {"type": "datetime"},
}

#: the same resource as a JSON Schema file, for `--schema FILE` on the plain REST route
JSON_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "PKey": {"type": "string", "readOnly": True},
        "firstName": {"type": "string", "x-dataPolicy": "smartCase"},
        "email": {"type": "string"},
        "phone": {"type": "string"},
        "cusPoints": {"type": ["integer", "null"]},
        "cusVip": {"type": ["boolean", "null"]},
        "gender": {"type": "string", "enum": ["male", "female", "unknown"]},
        "cusLastSeen": {"type": "string", "format": "date-time"},
        "birthDate": {"type": "string", "format": "date"},
        "location": {"type": "object", "properties": {"city": {"type": "string"},
                                                      "zipCode": {"type": "string"}}},
        "cusSecret": {"type": "string", "readOnly": True},
        "created": {"type": "string", "format": "date-time", "readOnly": True},
    },
}

METADATA_GET = "GET 200"  # the sandbox answers the resourceType request 200


def profile(i: int) -> dict[str, Any]:
    return {
        "PKey": f"@s{i:04d}",
        "firstName": "Ada",
        "email": f"ada{i}@example.com",
        "phone": f"0{i:09d}",
        "cusPoints": None,
        "cusVip": None,
        "gender": "female",
        "cusLastSeen": "2024-05-01 10:00:00.000Z",
        "birthDate": "1980-10-24",
        "location": {"city": "Paris", "zipCode": "75011"},
        "cusSecret": "s3cr3t",
        "created": "2020-01-01 00:00:00.000Z",
    }


def key(i: int) -> str:
    return f"@s{i:04d}"


@pytest.fixture
def schema_sandbox(sandbox_process: SandboxProcess) -> SandboxProcess:
    """The sandbox with 10 profiles @s0000..@s0009 and SCHEMA as its metadata."""
    sandbox_process.reset([profile(i) for i in range(10)], schema=SCHEMA)
    return sandbox_process


def rest_args(sandbox: SandboxProcess) -> list[str]:
    return ["--url-template", sandbox.url + "/rest/profiles/{pkey}", "--rate", "0"]


def one_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a refused run (no traceback)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


def run_rows(tmp_path: Path, sandbox: SandboxProcess, header: list[str], rows: list[list[Any]],
             *flags: str, name: str = "fixes") -> tuple[subprocess.CompletedProcess[str],
                                                         dict[int, dict[str, Any]]]:
    """Run a CSV against the sandbox's Adobe route; the process and its records by row."""
    fixes = write_csv(tmp_path / f"{name}.csv", header, rows)
    proc = run_cli("run", fixes, *target_args(sandbox), *flags)
    results = tmp_path / f"{name}.results.jsonl"
    return proc, by_row(read_results(results)) if results.exists() else {}


# -- typing and comparing by the schema --------------------------------------------------------
def test_null_integer_and_boolean_are_typed_from_the_schema(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    proc, rows = run_rows(tmp_path, schema_sandbox, ["PKey", "cusPoints", "cusVip"],
                          [[key(1), "42", "yes"], [key(2), "0", "no"]])
    assert proc.returncode == 0, proc.stderr
    assert rows[2]["status"] == rows[3]["status"] == "updated"
    assert rows[2]["changed"] == {"cusPoints": [None, 42], "cusVip": [None, True]}
    state = schema_sandbox.profiles_now()
    assert state[key(1)]["cusPoints"] == 42 and type(state[key(1)]["cusPoints"]) is int
    assert state[key(1)]["cusVip"] is True
    assert state[key(2)]["cusPoints"] == 0 and state[key(2)]["cusVip"] is False
    # one metadata GET, then GET + PATCH + GET per row
    assert schema_sandbox.stats()["counts"] == {"GET 200": 1 + 2 * 2, "PATCH 200": 2}


def test_without_the_schema_a_null_field_gets_the_text(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    """The contrast that shows the schema is what typed the cells above."""
    proc, rows = run_rows(tmp_path, schema_sandbox, ["PKey", "cusPoints"], [[key(1), "42"]],
                          "--schema", "none")
    assert proc.returncode == 0, proc.stderr
    assert rows[2]["changed"] == {"cusPoints": [None, "42"]}
    assert schema_sandbox.profiles_now()[key(1)]["cusPoints"] == "42"
    assert schema_sandbox.stats()["counts"] == {"GET 200": 2, "PATCH 200": 1}  # no metadata


def test_a_cell_that_is_not_the_schemas_type_is_invalid_and_not_sent(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    proc, rows = run_rows(tmp_path, schema_sandbox, ["PKey", "cusPoints", "cusVip"],
                          [[key(1), "many", ""], [key(2), "", "perhaps"], [key(3), "7", ""]])
    assert proc.returncode == 1, proc.stderr
    assert rows[2]["status"] == rows[3]["status"] == "invalid"
    assert "cusPoints" in rows[2]["error"] and "cusVip" in rows[3]["error"]
    assert rows[4]["status"] == "updated"
    assert schema_sandbox.stats()["patches"] == {key(3): 1}


def test_enumeration_in_another_case_is_sent_by_its_name(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    proc, rows = run_rows(tmp_path, schema_sandbox, ["PKey", "gender"],
                          [[key(1), "MALE"], [key(2), " Male "], [key(3), "Not specified"],
                           [key(4), "FEMALE"]])
    assert proc.returncode == 0, proc.stderr
    assert rows[2]["status"] == "updated" and rows[2]["changed"] == {"gender": ["female", "male"]}
    assert rows[3]["status"] == "updated"
    assert rows[4]["changed"] == {"gender": ["female", "unknown"]}  # by its label
    assert rows[5]["status"] == "unchanged"  # the profile already holds it
    state = schema_sandbox.profiles_now()
    assert [state[key(i)]["gender"] for i in (1, 2, 3, 4)] == ["male", "male", "unknown",
                                                               "female"]
    assert schema_sandbox.stats()["patches"] == {key(1): 1, key(2): 1, key(3): 1}


def test_a_value_not_in_the_enumeration_is_invalid_with_no_patch(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    proc, rows = run_rows(tmp_path, schema_sandbox, ["PKey", "gender"],
                          [[key(1), "robot"], [key(2), "male"]])
    assert proc.returncode == 1, proc.stderr
    assert rows[2]["status"] == "invalid"
    assert "'robot' is not one of its values (male, female, unknown)" in rows[2]["error"]
    assert rows[2]["attempts"] == 1  # the GET; no PATCH
    assert rows[3]["status"] == "updated"
    counts = schema_sandbox.stats()["counts"]
    assert counts == {"GET 200": 1 + 1 + 2, "PATCH 200": 1}  # no PATCH 500 for `robot`
    assert schema_sandbox.profiles_now()[key(1)]["gender"] == "female"


def test_datetimes_and_dates_are_compared_as_instants(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    proc, rows = run_rows(tmp_path, schema_sandbox, ["PKey", "cusLastSeen", "birthDate"], [
        [key(1), "2024-05-01T10:00:00Z", ""],             # the stored instant, ISO 8601
        [key(2), "2024-05-01T12:00:00+02:00", "1980-10-24"],  # the same, another zone
        [key(3), "2024-05-01 10:00:00", ""],                # no zone: UTC
        [key(4), "2024-05-02T08:30:00.250+02:00", ""],      # another instant
        [key(5), "", "1980-10-25"],
        [key(6), "the first of May", ""],
    ])
    assert proc.returncode == 1, proc.stderr
    assert [rows[n]["status"] for n in (2, 3, 4)] == ["unchanged"] * 3
    assert rows[5]["status"] == "updated"  # not verify_mismatch: sent in Adobe's notation
    assert rows[5]["changed"] == {"cusLastSeen": ["2024-05-01 10:00:00.000Z",
                                                  "2024-05-02 06:30:00.250Z"]}
    assert rows[6]["status"] == "updated"
    assert rows[7]["status"] == "invalid" and "cusLastSeen" in rows[7]["error"]
    state = schema_sandbox.profiles_now()
    assert state[key(4)]["cusLastSeen"] == "2024-05-02 06:30:00.250Z"
    assert state[key(5)]["birthDate"] == "1980-10-25"
    assert schema_sandbox.stats()["patches"] == {key(4): 1, key(5): 1}


def test_smart_case_field_equal_modulo_case_is_unchanged_and_normalised_is_updated(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    proc, rows = run_rows(tmp_path, schema_sandbox, ["PKey", "firstName", "location.city"], [
        [key(1), "ADA", ""],                 # equal modulo case
        [key(2), "jean-PIERRE o'neil", ""],  # the API writes Jean-Pierre O'Neil
        [key(3), "", "saint-ÉTIENNE"],       # a nested smartCase field
        [key(4), "", "PARIS"],
        [key(5), "mc.DONALD", ""],           # the API's smartCase makes it Mc.donald
    ])
    assert proc.returncode == 0, proc.stderr
    statuses = {n: r["status"] for n, r in rows.items()}
    assert statuses == {2: "unchanged", 3: "updated", 4: "updated", 5: "unchanged",
                        6: "updated"}
    state = schema_sandbox.profiles_now()
    assert state[key(1)]["firstName"] == "Ada"
    assert state[key(2)]["firstName"] == "Jean-Pierre O'Neil"
    assert state[key(3)]["location"] == {"city": "Saint-Étienne", "zipCode": "75011"}
    assert state[key(5)]["firstName"] == "Mc.donald"
    assert schema_sandbox.stats()["patches"] == {key(2): 1, key(3): 1, key(5): 1}


def test_a_value_stored_in_another_notation_or_case_compares_by_the_schema(
        sandbox_process: SandboxProcess, tmp_path: Path) -> None:
    """Profiles written before the policy (or by another tool) hold `ADA LOVELACE` and an ISO
    datetime: the file's canonical values for them are already there."""
    stored = {**profile(1), "firstName": "ADA LOVELACE",
              "cusLastSeen": "2024-05-01T12:00:00+02:00"}
    sandbox_process.reset([stored], schema=SCHEMA)
    proc, rows = run_rows(tmp_path, sandbox_process, ["PKey", "firstName", "cusLastSeen"],
                          [[key(1), "Ada Lovelace", "2024-05-01 10:00:00.000Z"]])
    assert proc.returncode == 0, proc.stderr
    assert rows[2]["status"] == "unchanged"
    assert sandbox_process.stats()["counts"] == {"GET 200": 2}


def test_an_email_policy_field_is_compared_as_the_api_stores_it(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    """`email` lower-cases on write (sandbox/schema.py, as `lowerCase`): the same address in
    capitals is already right, and a new one in capitals is not a verify_mismatch."""
    proc, rows = run_rows(tmp_path, schema_sandbox, ["PKey", "email"],
                          [[key(1), "ADA1@Example.com"], [key(2), "New.Address@Example.com"]])
    assert proc.returncode == 0, proc.stderr
    assert rows[2]["status"] == "unchanged"
    assert rows[3]["status"] == "updated", rows[3]
    assert schema_sandbox.profiles_now()[key(2)]["email"] == "new.address@example.com"
    assert schema_sandbox.stats()["patches"] == {key(2): 1}


# -- preflight: the file refused before any profile request ------------------------------------
def test_unknown_column_exits_2_with_a_suggestion_and_no_profile_request(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    proc, rows = run_rows(tmp_path, schema_sandbox, ["PKey", "firstname", "cusPoint"],
                          [[key(1), "Bob", "1"]])
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc)
    assert line.startswith("batchpatch: error: ") and "fixes.csv" in line
    assert "`firstname`: no such field; did you mean `firstName`?" in line
    assert "`cusPoint`: no such field; did you mean `cusPoints`?" in line
    assert "the API would refuse 2 columns" in line
    assert schema_sandbox.stats()["counts"] == {METADATA_GET: 1}  # the metadata, nothing else
    assert rows == {}


def test_unknown_nested_field_suggests_the_sibling(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    proc, _ = run_rows(tmp_path, schema_sandbox, ["PKey", "location.zipcode"],
                       [[key(1), "69001"]])
    assert proc.returncode == 2, proc.stderr
    assert "did you mean `location.zipCode`?" in one_line(proc)
    assert schema_sandbox.stats()["counts"] == {METADATA_GET: 1}


@pytest.mark.parametrize("column", ["cusSecret", "created", "PKey@replace"])
def test_read_only_column_exits_2_with_no_profile_request(
        schema_sandbox: SandboxProcess, tmp_path: Path, column: str) -> None:
    field = column.split("@")[0]
    header = ["PKey", "phone", column] if column != "PKey@replace" else ["PKey", column]
    cells = ["1", "x"] if column != "PKey@replace" else ['"@x"']
    proc, rows = run_rows(tmp_path, schema_sandbox, header, [[key(1), *cells]])
    assert proc.returncode == 2, proc.stderr
    assert rows == {}  # no record: nothing was tried
    line = one_line(proc)
    assert f"`{field}`: read-only" in line, line
    assert schema_sandbox.stats()["counts"] == {METADATA_GET: 1}
    assert schema_sandbox.profiles_now()[key(1)] == profile(1)


def test_guards_and_the_key_column_are_not_refused(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    proc, rows = run_rows(tmp_path, schema_sandbox, ["PKey", "phone", "cusSecret@expected"],
                          [[key(1), "0611", "s3cr3t"]])
    assert proc.returncode == 0, proc.stderr
    assert rows[2]["status"] == "updated"


def test_validate_online_refuses_and_passes_with_no_profile_request(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    online = ["--online", "--base-url", schema_sandbox.url, "--org", "demo", "--rate", "0"]
    bad = write_csv(tmp_path / "bad.csv", ["PKey", "firstname", "cusSecret"],
                    [[key(1), "Bob", "x"]])
    proc = run_cli("validate", bad, *online)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = one_line(proc)
    assert "did you mean `firstName`?" in line and "`cusSecret`: read-only" in line
    assert schema_sandbox.stats()["counts"] == {METADATA_GET: 1}

    good = write_csv(tmp_path / "good.csv", ["PKey", "firstName", "location.city",
                                             "gender@expected"], [[key(1), "Bob", "Lyon",
                                                                   "female"]])
    proc = run_cli("validate", good, *online)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "online: every column is a writable field" in proc.stdout
    assert schema_sandbox.stats()["counts"] == {METADATA_GET: 2}  # one more metadata GET only
    assert schema_sandbox.profiles_now()[key(1)] == profile(1)


def test_validate_online_with_no_metadata_says_so_and_passes(
        schema_sandbox: SandboxProcess, tmp_path: Path) -> None:
    schema_sandbox.configure(metadata="off")
    good = write_csv(tmp_path / "good.csv", ["PKey", "firstName"], [[key(1), "Bob"]])
    proc = run_cli("validate", good, "--online", "--base-url", schema_sandbox.url, "--org",
                   "demo", "--rate", "0")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "could not be checked" in proc.stdout
    assert schema_sandbox.stats()["counts"] == {"GET 404": 1}


# -- a JSON Schema file against the plain REST route -------------------------------------------
@pytest.fixture
def schema_file(tmp_path: Path) -> Path:
    path = tmp_path / "profile.schema.json"
    path.write_text(json.dumps(JSON_SCHEMA))
    return path


def test_json_schema_file_types_and_compares_on_the_rest_route(
        schema_sandbox: SandboxProcess, schema_file: Path, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "r.csv", ["PKey", "cusPoints", "cusVip", "gender",
                                           "cusLastSeen", "firstName"], [
        [key(1), "42", "yes", "", "", ""],
        [key(2), "", "", "MALE", "2024-05-01T10:00:00Z", "ADA"],
        [key(3), "", "", "robot", "", ""],
        [key(4), "", "", "", "2024-06-01T00:00:00+02:00", "marie CURIE"],
    ])
    proc = run_cli("run", fixes, *rest_args(schema_sandbox), "--schema", schema_file)
    assert proc.returncode == 1, proc.stderr
    rows = by_row(read_results(tmp_path / "r.results.jsonl"))
    assert rows[2]["status"] == "updated"
    assert rows[2]["changed"] == {"cusPoints": [None, 42], "cusVip": [None, True]}
    assert rows[3]["status"] == "updated"
    assert rows[3]["changed"] == {"gender": ["female", "male"]}  # date and name already right
    assert rows[4]["status"] == "invalid" and "robot" in rows[4]["error"]
    assert rows[5]["status"] == "updated"
    state = schema_sandbox.profiles_now()
    assert state[key(1)]["cusPoints"] == 42 and state[key(1)]["cusVip"] is True
    assert state[key(2)]["gender"] == "male"
    assert state[key(4)]["cusLastSeen"] == "2024-05-31 22:00:00.000Z"
    assert state[key(4)]["firstName"] == "Marie Curie"
    stats = schema_sandbox.stats()
    assert stats["patches"] == {key(1): 1, key(2): 1, key(4): 1}
    # no metadata request for a file: GET per row, PATCH + GET per changed row
    assert stats["counts"] == {"GET 200": 4 + 3, "PATCH 200": 3}


@pytest.mark.parametrize(("column", "says"), [
    ("cusPoint", "`cusPoint`: no such field; did you mean `cusPoints`?"),
    ("cusSecret", "`cusSecret`: read-only"),
    ("location.town", "`location.town`: no such field"),
])
def test_json_schema_file_refuses_a_column_with_no_request(
        schema_sandbox: SandboxProcess, schema_file: Path, tmp_path: Path, column: str,
        says: str) -> None:
    fixes = write_csv(tmp_path / "r.csv", ["PKey", column], [[key(1), "1"]])
    proc = run_cli("run", fixes, *rest_args(schema_sandbox), "--schema", schema_file)
    assert proc.returncode == 2, proc.stderr
    line = one_line(proc)
    assert says in line and str(schema_file) in line, line
    assert schema_sandbox.stats()["total"] == 0

    proc = run_cli("validate", fixes, "--online", *rest_args(schema_sandbox), "--schema",
                   schema_file)
    assert proc.returncode == 2 and says in one_line(proc)
    assert schema_sandbox.stats()["total"] == 0


def test_validate_online_passes_with_a_json_schema_file_and_no_request(
        schema_sandbox: SandboxProcess, schema_file: Path, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "r.csv", ["PKey", "cusPoints", "location.city"],
                      [[key(1), "1", "Lyon"]])
    proc = run_cli("validate", fixes, "--online", *rest_args(schema_sandbox), "--schema",
                   schema_file)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"every column is a writable field of {schema_file}" in proc.stdout
    assert schema_sandbox.stats()["total"] == 0


@pytest.mark.parametrize(("content", "says"), [
    (None, "no such file"), ("{not json", "not JSON"), ('{"type": "object"}', "properties"),
])
def test_an_unusable_schema_file_exits_2_before_any_request(
        schema_sandbox: SandboxProcess, tmp_path: Path, content: str | None, says: str) -> None:
    path = tmp_path / "s.json"
    if content is not None:
        path.write_text(content)
    fixes = write_csv(tmp_path / "r.csv", ["PKey", "phone"], [[key(1), "1"]])
    proc = run_cli("run", fixes, *rest_args(schema_sandbox), "--schema", path)
    assert proc.returncode == 2, proc.stderr
    assert says in one_line(proc) and "--schema" in one_line(proc)
    assert schema_sandbox.stats()["total"] == 0


# -- no metadata: a warning and today's behaviour ----------------------------------------------
@pytest.mark.parametrize(("knob", "metadata_counts", "says"), [
    ("off", {"GET 404": 1}, "HTTP 404"),
    ("broken", {"GET 200": 2}, "not JSON"),  # one retry (--retries 1): a 2xx that is not JSON
])
def test_missing_or_unreadable_metadata_warns_and_runs_as_before(
        sandbox: SandboxProcess, tmp_path: Path, knob: str, metadata_counts: dict[str, int],
        says: str) -> None:
    sandbox.configure(metadata=knob)
    proc, rows = run_rows(tmp_path, sandbox, ["PKey", "cusLoyaltyPoints", "mobilePhone"],
                          [["@p00001", "11", "0612"], ["@p00002", "20", ""]],
                          "--retries", "1")
    assert proc.returncode == 0, proc.stderr
    warning = proc.stderr.splitlines()[0]
    assert warning.startswith("batchpatch: no schema from ") and says in warning, proc.stderr
    assert "typed from the profiles only" in warning
    assert rows[2]["status"] == "updated" and rows[3]["status"] == "unchanged"
    state = sandbox.profiles_now()
    assert state["@p00001"]["cusLoyaltyPoints"] == 11  # typed from the profile's integer
    assert state["@p00001"]["mobilePhone"] == "0612"
    counts = sandbox.stats()["counts"]
    profile_gets = 2 + 1  # a GET per row, and the read-back of the changed one
    expected = {"GET 200": profile_gets, "PATCH 200": 1}
    for label, n in metadata_counts.items():
        expected[label] = expected.get(label, 0) + n
    assert counts == expected


def test_schema_none_sends_no_metadata_request(sandbox: SandboxProcess, tmp_path: Path) -> None:
    proc, rows = run_rows(tmp_path, sandbox, ["PKey", "phone"], [["@p00001", "1"]],
                          "--schema", "none")
    assert proc.returncode == 0, proc.stderr
    assert rows[2]["status"] == "updated"
    assert "no schema from" not in proc.stderr
    assert sandbox.stats()["counts"] == {"GET 200": 2, "PATCH 200": 1}


def test_inferred_metadata_types_a_null_field_from_the_other_profiles(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    """Without a `schema` knob the sandbox infers its metadata from the profiles: a field one
    profile holds as null is an integer because another holds an integer."""
    profiles = make_profiles(3)
    profiles[1]["cusLoyaltyPoints"] = None
    sandbox.reset(profiles)
    proc, rows = run_rows(tmp_path, sandbox, ["PKey", "cusLoyaltyPoints"],
                          [["@p00001", "7"]])
    assert proc.returncode == 0, proc.stderr
    assert rows[2]["changed"] == {"cusLoyaltyPoints": [None, 7]}
    assert sandbox.profiles_now()["@p00001"]["cusLoyaltyPoints"] == 7


# -- Campaign v8 -------------------------------------------------------------------------------
@pytest.fixture
def v8(sandbox: SandboxProcess) -> SandboxProcess:
    sandbox.reset(make_profiles(10), flavor="v8")
    return sandbox


def test_v8_invalid_pkey_is_not_found(v8: SandboxProcess, tmp_path: Path) -> None:
    proc, rows = run_rows(tmp_path, v8, ["PKey", "phone"],
                          [["not-a-pkey", "1"], ["@nobody", "1"], ["@p00001", "0611"]])
    assert proc.returncode == 1, proc.stderr
    for n in (2, 3):
        assert rows[n]["status"] == "not_found"
        assert "Unable to decrypt PKey" in rows[n]["error"] and rows[n]["http_status"] == 404
        assert rows[n]["attempts"] == 1  # not retried
    assert rows[4]["status"] == "updated"
    assert v8.stats()["counts"]["GET 404"] == 2


def test_v8_generic_500_is_retried_a_bounded_number_of_times_then_failed_with_a_hint(
        v8: SandboxProcess, tmp_path: Path) -> None:
    v8.reset(make_profiles(10), flavor="v8", schema={
        "PKey": {"type": "string"}, "phone": {"type": "string"},
        "gender": {"type": "enumeration", "values": ["male", "female"]}})
    proc, rows = run_rows(tmp_path, v8, ["PKey", "gender"], [["@p00001", "robot"]],
                          "--schema", "none")
    assert proc.returncode == 1, proc.stderr
    record = rows[2]
    assert record["status"] == "failed" and record["http_status"] == 500
    assert "An error has occurred - please contact your administrator" in record["error"]
    assert "Campaign v8 hides the cause" in record["error"]
    assert record["attempts"] == 1 + 1 + 2  # GET, PATCH, and two retries of a plain 500
    assert v8.stats()["counts"] == {"GET 200": 1, "PATCH 500": 3}
    assert v8.profiles_now()["@p00001"].get("gender") is None


def test_v8_patch_answered_204_is_accepted(v8: SandboxProcess, tmp_path: Path) -> None:
    """A PATCH answered 204 with no body is a write accepted: read back at the row's URL."""
    # the sandbox's seeded chaos: of GET, PATCH, GET (one row, no metadata) only the PATCH
    # draws the misbehaviour, which writes and then answers 204 (checked below)
    v8.reset(make_profiles(10), flavor="v8", chaos=0.5, chaos_kinds=["no_content"], seed=2)
    proc, rows = run_rows(tmp_path, v8, ["PKey", "phone"], [["@p00001", "0611"]],
                          "--schema", "none", "--concurrency", "1")
    stats = v8.stats()
    assert stats["counts"] == {"GET 200": 2, "PATCH 204": 1}, stats
    assert proc.returncode == 0, proc.stderr
    assert rows[2]["status"] == "updated" and rows[2]["http_status"] == 200
    assert rows[2]["changed"] == {"phone": ["0000000001", "0611"]} and rows[2]["attempts"] == 3
    assert v8.profiles_now()["@p00001"]["phone"] == "0611"
