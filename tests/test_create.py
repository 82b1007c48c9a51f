"""Creation and the guardrails end to end: `--on-missing create|skip`, `batchpatch undo` and
`batchpatch delete` of what a run created, `--max-changes` (and `--resume` past it), `--fields`
and `--notify`, with the real `batchpatch` command against the sandbox and, for `--notify`, a
small HTTP receiver on loopback. Each test checks what a user would notice: the profiles on
the server, the requests it received, the records, the exit status, the stderr line and what
the receiver got."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest import by_row, make_profiles, read_results, run_cli, target_args, write_csv
from test_reliability import start_cli, wait_for_records
from webhook import Receiver, serve

from batchpatch.sandbox.process import SandboxProcess

MISSING = ["@gone1", "@gone2", "@gone3"]  # PKeys the sandbox does not hold


def run_file(tmp_path: Path, sandbox: SandboxProcess, header: list[str],
             rows: list[list[Any]], *flags: str | Path, name: str = "fixes",
             env: dict[str, str] | None = None,
             ) -> tuple[subprocess.CompletedProcess[str], dict[int, dict[str, Any]]]:
    """Run a CSV against the sandbox's Adobe route; the process and its records by row."""
    fixes = write_csv(tmp_path / f"{name}.csv", header, rows)
    proc = run_cli("run", fixes, *target_args(sandbox), *flags, env=env)
    results = tmp_path / f"{name}.results.jsonl"
    return proc, by_row(read_results(results)) if results.exists() else {}


def aborted_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one `batchpatch: aborted: ...` line of an exit-3 run."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("batchpatch: aborted")]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def writes(sandbox: SandboxProcess) -> int:
    stats = sandbox.stats()
    return sum(stats["patches"].values()) + len(stats["created"])


# -- --on-missing create, then undo and delete -------------------------------------------------
def test_create_makes_exactly_the_missing_profiles_and_delete_removes_exactly_those(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    header = ["PKey", "firstName", "cusLoyaltyPoints", "blackListEmail", "cusScore",
              "location.city", "location.zipCode", "mobilePhone"]
    proc, rows = run_file(tmp_path, sandbox, header, [
        ["@p00001", "Zoé", "", "", "", "Lyon", "", ""],           # exists: patched
        [MISSING[0], "Anna", "12", "yes", "0.25", "Nantes", "44000", "0033612"],
        ["@p00002", "Name2", "", "", "", "", "", ""],           # exists, already right
        [MISSING[1], "Ben", "0", "no", "", "", "", ""],
    ], "--on-missing", "create")
    assert proc.returncode == 0, proc.stderr
    assert {n: r["status"] for n, r in rows.items()} == {2: "updated", 3: "created",
                                                          4: "unchanged", 5: "created"}
    stats = sandbox.stats()
    assert len(stats["created"]) == 2 and stats["counts"]["POST 201"] == 2
    assert stats["deleted"] == []
    state = sandbox.profiles_now()
    assert len(state) == 52 and not set(MISSING) & set(state)
    anna, ben = state[rows[3]["pkey"]], state[rows[5]["pkey"]]
    assert {rows[3]["pkey"], rows[5]["pkey"]} == set(stats["created"])
    # typed as the API's schema says (integers, booleans, floats), nested, strings kept
    assert anna == {"PKey": rows[3]["pkey"], "firstName": "Anna", "cusLoyaltyPoints": 12,
                    "blackListEmail": True, "cusScore": 0.25,
                    "location": {"city": "Nantes", "zipCode": "44000"},
                    "mobilePhone": "0033612"}
    assert ben == {"PKey": rows[5]["pkey"], "firstName": "Ben", "cusLoyaltyPoints": 0,
                   "blackListEmail": False}
    assert rows[3]["changed"]["cusLoyaltyPoints"] == [None, 12]
    assert rows[3]["href"].endswith("/" + rows[3]["pkey"])
    assert state["@p00001"]["location"] == {"city": "Lyon", "zipCode": "75011",
                                            "countryCode": "FR"}

    undo = tmp_path / "undo.csv"
    proc = run_cli("undo", tmp_path / "fixes.results.jsonl", "-o", undo)
    assert proc.returncode == 0, proc.stderr
    listed = tmp_path / "undo.delete.csv"
    assert f"the run created 2 profiles, listed in {listed}" in proc.stderr
    assert listed.read_text().splitlines() == [
        "PKey,href", f"{rows[3]['pkey']},{rows[3]['href']}",
        f"{rows[5]['pkey']},{rows[5]['href']}"]

    proc = run_cli("delete", listed, *target_args(sandbox))
    assert proc.returncode == 0, proc.stderr
    deleted = by_row(read_results(tmp_path / "undo.delete.results.jsonl"))
    assert {n: r["status"] for n, r in deleted.items()} == {2: "deleted", 3: "deleted"}
    stats = sandbox.stats()
    assert sorted(stats["deleted"]) == sorted(stats["created"])  # those two, nothing else
    after = sandbox.profiles_now()
    assert set(after) == {p["PKey"] for p in make_profiles(50)}
    assert after["@p00001"]["firstName"] == "Zoé"  # delete undoes creations only

    # the undo file puts back what was patched, and nothing about the created profiles
    proc = run_cli("run", undo, *target_args(sandbox), "--null-token", "#NULL")
    assert proc.returncode == 0, proc.stderr
    assert sandbox.profiles_now() == {p["PKey"]: p for p in make_profiles(50)}


def test_delete_twice_is_not_found_and_deletes_nothing_more(sandbox: SandboxProcess,
                                                            tmp_path: Path) -> None:
    proc, rows = run_file(tmp_path, sandbox, ["PKey", "firstName"], [[MISSING[0], "Anna"]],
                          "--on-missing", "create")
    assert proc.returncode == 0 and rows[2]["status"] == "created", proc.stderr
    assert run_cli("undo", tmp_path / "fixes.results.jsonl", "-o",
                   tmp_path / "undo.jsonl").returncode == 0
    listed = tmp_path / "undo.delete.csv"
    assert run_cli("delete", listed, *target_args(sandbox)).returncode == 0
    again = run_cli("delete", listed, *target_args(sandbox), "--results",
                    tmp_path / "again.jsonl")
    assert again.returncode == 1, again.stderr
    (record,) = read_results(tmp_path / "again.jsonl")
    assert record["status"] == "not_found"
    assert sandbox.stats()["deleted"] == [rows[2]["pkey"]]
    assert len(sandbox.profiles_now()) == 50


def test_every_profile_the_run_created_is_listed_for_delete(sandbox_process: SandboxProcess,
                                                            tmp_path: Path) -> None:
    """Also one created from a row with nothing to set, and one whose read-back differs (the
    API's smartCase policy, with --schema none): both exist on the server."""
    sandbox_process.reset(make_profiles(3), schema={
        "PKey": {"type": "string"}, "firstName": {"dataPolicy": "smartCase"},
        "phone": {"type": "string"}})
    proc, rows = run_file(tmp_path, sandbox_process, ["PKey", "firstName", "phone"], [
        [MISSING[0], "", ""], [MISSING[1], "anna", "1"], [MISSING[2], "Ben", "2"]],
        "--on-missing", "create", "--schema", "none")
    assert proc.returncode == 1, proc.stderr
    assert {n: r["status"] for n, r in rows.items()} == {2: "created", 3: "verify_mismatch",
                                                          4: "created"}
    created = sandbox_process.stats()["created"]
    assert len(created) == 3 and {rows[n]["pkey"] for n in (2, 3, 4)} == set(created)
    proc = run_cli("undo", tmp_path / "fixes.results.jsonl", "-o", tmp_path / "undo.jsonl")
    assert proc.returncode == 0, proc.stderr
    listed = (tmp_path / "undo.delete.csv").read_text().splitlines()[1:]
    assert sorted(line.split(",")[0] for line in listed) == sorted(created)
    proc = run_cli("delete", tmp_path / "undo.delete.csv", *target_args(sandbox_process))
    assert proc.returncode == 0, proc.stderr
    assert sorted(sandbox_process.stats()["deleted"]) == sorted(created)
    assert set(sandbox_process.profiles_now()) == {"@p00000", "@p00001", "@p00002"}


def test_a_created_row_that_fails_its_read_back_is_never_created_again(
        sandbox_process: SandboxProcess, tmp_path: Path) -> None:
    """The create landed, the read-back differs (smartCase, --schema none): the row is a
    failure, but neither the failures file fed back nor --resume sends the create again."""
    sandbox_process.reset(make_profiles(3), schema={
        "PKey": {"type": "string"}, "firstName": {"dataPolicy": "smartCase"}})
    proc, rows = run_file(tmp_path, sandbox_process, ["PKey", "firstName"], [
        [MISSING[0], "zoe"], [MISSING[1], "Ben"], ["@nope", ""]],
        "--on-missing", "create", "--schema", "none")
    assert proc.returncode == 1, proc.stderr
    assert [rows[n]["status"] for n in (2, 3)] == ["verify_mismatch", "created"]
    assert "not in the failures file" in rows[2]["error"]
    assert len(sandbox_process.stats()["created"]) == 3
    failures = tmp_path / "fixes.failures.csv"
    assert failures.read_text().splitlines() == ["PKey,firstName"]
    proc = run_cli("run", failures, *target_args(sandbox_process), "--on-missing", "create",
                   "--schema", "none")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("run", tmp_path / "fixes.csv", *target_args(sandbox_process),
                   "--on-missing", "create", "--schema", "none", "--resume")
    assert len(sandbox_process.stats()["created"]) == 3  # nothing created twice
    assert failures.read_text().splitlines() == ["PKey,firstName"]


def test_a_create_that_may_have_landed_is_not_in_the_failures_file(
        sandbox_process: SandboxProcess, tmp_path: Path) -> None:
    """The POST landed but its answer was not a profile (an HTML page): the row fails, is not
    retryable, and stays out of the failures file, so feeding that file back creates nothing."""
    sandbox_process.reset(make_profiles(3), chaos=1.0, chaos_kinds=["html"],
                          chaos_methods=["POST"], seed=1)
    proc, rows = run_file(tmp_path, sandbox_process, ["PKey", "phone"],
                          [[MISSING[0], "1"], [MISSING[1], "2"]], "--on-missing", "create",
                          "--schema", "none")
    assert proc.returncode == 1, proc.stderr
    assert all(rows[n]["status"] == "failed" and rows[n]["retryable"] is False
               and rows[n].get("resend") is False for n in (2, 3)), rows
    assert len(sandbox_process.stats()["created"]) == 2
    failures = tmp_path / "fixes.failures.csv"
    assert failures.read_text().splitlines() == ["PKey,phone"]
    sandbox_process.configure(chaos=0.0)
    again = run_cli("run", tmp_path / "fixes.csv", *target_args(sandbox_process),
                    "--on-missing", "create", "--schema", "none", "--resume")
    assert len(sandbox_process.stats()["created"]) == 2  # nothing created twice
    assert failures.read_text().splitlines() == ["PKey,phone"], again.stderr


def test_create_by_email_puts_the_email_in_the_profile(sandbox: SandboxProcess,
                                                       tmp_path: Path) -> None:
    header = ["email", "firstName", "cusLoyaltyPoints"]
    lookup = ["--key-column", "email", "--lookup", "byEmail", "--on-missing", "create"]
    proc, rows = run_file(tmp_path, sandbox, header, [
        ["user3@example.com", "Trois", ""], ["new.person@example.com", "Neu", "5"]], *lookup)
    assert proc.returncode == 0, proc.stderr
    assert rows[2]["status"] == "updated" and rows[2]["pkey"] == "@p00003"
    assert rows[3]["status"] == "created"
    (pkey,) = sandbox.stats()["created"]
    assert rows[3]["pkey"] == pkey
    assert rows[3]["changed"]["email"] == [None, "new.person@example.com"]
    assert sandbox.profiles_now()[pkey] == {"PKey": pkey, "email": "new.person@example.com",
                                            "firstName": "Neu", "cusLoyaltyPoints": 5}
    # the same file again: the lookup now finds it; nothing created twice
    proc, rows = run_file(tmp_path, sandbox, header, [
        ["user3@example.com", "Trois", ""], ["new.person@example.com", "Neu", "5"]], *lookup,
        name="again")
    assert proc.returncode == 0, proc.stderr
    assert rows[2]["status"] == rows[3]["status"] == "unchanged"
    assert sandbox.stats()["created"] == [pkey]


def test_a_guard_on_a_missing_profile_is_a_conflict_not_a_create(sandbox: SandboxProcess,
                                                                 tmp_path: Path) -> None:
    proc, rows = run_file(tmp_path, sandbox, ["PKey", "phone", "email@expected"], [
        [MISSING[0], "0611", "old@example.com"], [MISSING[1], "0622", ""]],
        "--on-missing", "create")
    assert proc.returncode == 1, proc.stderr
    assert rows[2]["status"] == "conflict"
    assert "does not exist" in rows[2]["error"] and "nothing created" in rows[2]["error"]
    assert rows[3]["status"] == "created"
    stats = sandbox.stats()
    assert stats["counts"]["POST 201"] == 1 and len(stats["created"]) == 1
    assert sum(1 for p in sandbox.profiles_now().values() if p.get("phone") == "0611") == 0


def test_two_rows_with_the_same_missing_key_create_once_then_patch(sandbox: SandboxProcess,
                                                                   tmp_path: Path) -> None:
    proc, rows = run_file(tmp_path, sandbox, ["PKey", "firstName", "phone"], [
        [MISSING[0], "Anna", ""], ["@p00001", "", "0611"], [MISSING[0], "", "0699"],
        [MISSING[0], "Anna", ""]], "--on-missing", "create")
    assert proc.returncode == 0, proc.stderr
    stats = sandbox.stats()
    (pkey,) = stats["created"]  # one POST
    assert stats["counts"]["POST 201"] == 1
    assert {n: r["status"] for n, r in rows.items()} == {2: "created", 3: "updated",
                                                          4: "updated", 5: "unchanged"}
    assert rows[2]["pkey"] == pkey
    assert rows[4]["changed"] == {"phone": [None, "0699"]}
    assert stats["patches"] == {"@p00001": 1, pkey: 1}
    assert sandbox.profiles_now()[pkey] == {"PKey": pkey, "firstName": "Anna", "phone": "0699"}


def test_rows_after_a_create_are_recorded_under_the_created_pkey(sandbox: SandboxProcess,
                                                                 tmp_path: Path) -> None:
    proc, rows = run_file(tmp_path, sandbox, ["PKey", "firstName", "phone"], [
        [MISSING[0], "Anna", ""], [MISSING[0], "", "0699"]], "--on-missing", "create")
    assert proc.returncode == 0, proc.stderr
    (pkey,) = sandbox.stats()["created"]
    assert rows[3]["status"] == "updated"
    assert rows[3]["pkey"] == pkey
    proc = run_cli("undo", tmp_path / "fixes.results.jsonl", "-o", tmp_path / "undo.jsonl")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "undo.jsonl").read_text() == ""  # deleting the profile undoes it all
    assert run_cli("delete", tmp_path / "undo.delete.csv", *target_args(sandbox)).returncode == 0
    assert sandbox.stats()["deleted"] == [pkey]


def test_create_on_a_plain_rest_api_and_delete_it_there(sandbox: SandboxProcess,
                                                       tmp_path: Path) -> None:
    rest = ["--url-template", sandbox.url + "/rest/profiles/{pkey}", "--rate", "0"]
    schema = tmp_path / "profile.schema.json"  # no metadata there: a JSON Schema types cells
    schema.write_text(json.dumps({"properties": {
        "PKey": {"type": "string", "readOnly": True}, "firstName": {"type": "string"},
        "cusLoyaltyPoints": {"type": ["integer", "null"]}}}))
    fixes = write_csv(tmp_path / "r.csv", ["PKey", "firstName", "cusLoyaltyPoints"],
                      [["@p00001", "Zoé", ""], ["gone", "Anna", "7"]])
    proc = run_cli("run", fixes, *rest, "--on-missing", "create", "--create-url",
                   sandbox.url + "/rest/profiles", "--schema", schema)
    assert proc.returncode == 0, proc.stderr
    rows = by_row(read_results(tmp_path / "r.results.jsonl"))
    assert rows[2]["status"] == "updated" and rows[3]["status"] == "created"
    (pkey,) = sandbox.stats()["created"]
    assert rows[3]["pkey"] == pkey
    assert rows[3]["href"] == f"{sandbox.url}/rest/profiles/{pkey}"
    assert sandbox.profiles_now()[pkey] == {"PKey": pkey, "firstName": "Anna",
                                            "cusLoyaltyPoints": 7}
    assert run_cli("undo", tmp_path / "r.results.jsonl", "-o",
                   tmp_path / "undo.jsonl").returncode == 0
    proc = run_cli("delete", tmp_path / "undo.delete.csv", *rest)
    assert proc.returncode == 0, proc.stderr
    assert sandbox.stats()["deleted"] == [pkey]
    assert set(sandbox.profiles_now()) == {p["PKey"] for p in make_profiles(50)}


def test_create_with_a_url_template_needs_a_create_url(sandbox: SandboxProcess,
                                                       tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "r.csv", ["PKey", "phone"], [["gone", "1"]])
    proc = run_cli("run", fixes, "--url-template", sandbox.url + "/rest/profiles/{pkey}",
                   "--on-missing", "create")
    assert proc.returncode == 2 and "needs --create-url" in proc.stderr, proc.stderr
    assert sandbox.stats()["total"] == 0


def test_dry_run_create_sends_only_gets(sandbox: SandboxProcess, tmp_path: Path) -> None:
    proc, rows = run_file(tmp_path, sandbox, ["PKey", "firstName"], [[MISSING[0], "Anna"]],
                          "--on-missing", "create", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert rows[2]["status"] == "dry_run" and rows[2]["action"] == "create"
    assert rows[2]["changed"] == {"firstName": [None, "Anna"]}
    assert set(sandbox.stats()["counts"]) == {"GET 200", "GET 404"}
    assert sandbox.stats()["created"] == []


def test_on_missing_skip_records_skipped_and_sends_no_post(sandbox: SandboxProcess,
                                                           tmp_path: Path) -> None:
    proc, rows = run_file(tmp_path, sandbox, ["PKey", "phone"], [
        [MISSING[0], "1"], ["@p00001", "0611"], [MISSING[1], "2"]], "--on-missing", "skip")
    assert proc.returncode == 0, proc.stderr
    assert {n: r["status"] for n, r in rows.items()} == {2: "skipped", 3: "updated",
                                                          4: "skipped"}
    assert "--on-missing skip" in rows[2]["error"]
    counts = sandbox.stats()["counts"]
    # the metadata, a GET per row, a PATCH and its read-back: no POST
    assert counts == {"GET 404": 2, "GET 200": 1 + 1 + 1, "PATCH 200": 1}
    assert sandbox.stats()["created"] == [] and len(sandbox.profiles_now()) == 50
    summary = json.loads((tmp_path / "fixes.summary.json").read_text())
    assert summary["counts"]["skipped"] == 2 and summary["failed"] == 0
    assert (tmp_path / "fixes.failures.csv").read_text().strip() == "PKey,phone"


def test_on_missing_fail_is_the_default(sandbox: SandboxProcess, tmp_path: Path) -> None:
    proc, rows = run_file(tmp_path, sandbox, ["PKey", "phone"], [[MISSING[0], "1"]])
    assert proc.returncode == 1, proc.stderr
    assert rows[2]["status"] == "not_found"
    assert "POST 201" not in sandbox.stats()["counts"]


# -- --max-changes -----------------------------------------------------------------------------
def fifty_changes(tmp_path: Path) -> Path:
    return write_csv(tmp_path / "fixes.csv", ["PKey", "phone"],
                     [[f"@p{i:05d}", f"+33{i:07d}"] for i in range(50)])


def test_max_changes_stops_after_exactly_n_writes_and_resume_finishes(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    fixes = fifty_changes(tmp_path)
    proc = run_cli("run", fixes, *target_args(sandbox), "--max-changes", "10")
    assert proc.returncode == 3, proc.stderr
    line = aborted_line(proc)
    assert line.startswith("batchpatch: aborted: max-changes 10 reached after 10 of ~50 rows")
    assert "--resume" in line and "--max-changes" in line
    assert writes(sandbox) == 10
    assert all(n == 1 for n in sandbox.stats()["patches"].values())
    first = read_results(tmp_path / "fixes.results.jsonl")
    assert {r["status"] for r in first} <= {"updated"} and len(first) <= 10
    summary = json.loads((tmp_path / "fixes.summary.json").read_text())
    assert summary["exit_code"] == 3 and summary["max_changes"]["writes"] == 10

    again = run_cli("run", fixes, *target_args(sandbox), "--resume", "--max-changes", "100")
    assert again.returncode == 0, again.stderr
    records = read_results(tmp_path / "fixes.results.jsonl")
    assert sorted(by_row(records)) == list(range(2, 52))  # one record per row
    assert {r["status"] for r in records} == {"updated"}  # the 10 first writes included
    patches = sandbox.stats()["patches"]
    assert len(patches) == 50 and set(patches.values()) == {1}  # 40 more, none twice
    state = sandbox.profiles_now()
    assert all(state[f"@p{i:05d}"]["phone"] == f"+33{i:07d}" for i in range(50))
    summary = json.loads((tmp_path / "fixes.summary.json").read_text())
    assert summary["max_changes"]["writes"] == 40 and summary["rows"] == 50


@pytest.mark.parametrize("on_missing", ["fail", "create"])
def test_max_changes_records_every_write_it_let_through(sandbox_process: SandboxProcess,
                                                        tmp_path: Path,
                                                        on_missing: str) -> None:
    # two rows read at once; the one that writes first is still waiting for its write's
    # answer (300 ms) when the other finds the limit reached
    sandbox_process.reset(make_profiles(2), latency_ms=300)
    keys = ["@p00000", "@p00001"] if on_missing == "fail" else MISSING[:2]
    fixes = write_csv(tmp_path / "fixes.csv", ["PKey", "phone"], [[keys[0], "1"],
                                                                  [keys[1], "2"]])
    proc = run_cli("run", fixes, *target_args(sandbox_process), "--concurrency", "2",
                   "--max-changes", "1", "--on-missing", on_missing)
    assert proc.returncode == 3, proc.stderr
    summary = json.loads((tmp_path / "fixes.summary.json").read_text())
    assert summary["max_changes"]["writes"] == 1
    records = read_results(tmp_path / "fixes.results.jsonl")
    assert [r["status"] for r in records] == ["updated" if on_missing == "fail" else "created"]


def test_max_changes_counts_creations_too(sandbox: SandboxProcess, tmp_path: Path) -> None:
    proc, _ = run_file(tmp_path, sandbox, ["PKey", "phone"],
                       [[MISSING[0], "1"], [MISSING[1], "2"], [MISSING[2], "3"]],
                       "--on-missing", "create", "--max-changes", "2", "--concurrency", "1")
    assert proc.returncode == 3, proc.stderr
    assert "max-changes 2 reached" in aborted_line(proc)
    assert len(sandbox.stats()["created"]) == 2


def test_unchanged_rows_do_not_count_against_max_changes(sandbox: SandboxProcess,
                                                         tmp_path: Path) -> None:
    rows = [[f"@p{i:05d}", f"0{i:09d}"] for i in range(20)]  # already right
    rows += [[f"@p{i:05d}", "1"] for i in range(20, 25)]
    proc, records = run_file(tmp_path, sandbox, ["PKey", "phone"], rows, "--max-changes", "5")
    assert proc.returncode == 0, proc.stderr
    assert len(records) == 25 and writes(sandbox) == 5


@pytest.mark.parametrize(("limit", "verdict"), [
    ("10", "--max-changes 10 would be reached: 50 rows would change"),
    ("50", "--max-changes 50 would not be reached: 50 rows would change"),
])
def test_dry_run_says_whether_max_changes_would_be_reached(sandbox: SandboxProcess,
                                                           tmp_path: Path, limit: str,
                                                           verdict: str) -> None:
    fixes = fifty_changes(tmp_path)
    proc = run_cli("run", fixes, *target_args(sandbox), "--dry-run", "--max-changes", limit)
    assert proc.returncode == 0, proc.stderr
    assert verdict in proc.stderr.splitlines(), proc.stderr
    assert set(sandbox.stats()["counts"]) == {"GET 200"}
    assert len(read_results(tmp_path / "fixes.results.jsonl")) == 50
    summary = json.loads((tmp_path / "fixes.summary.json").read_text())
    assert summary["max_changes"] == {"limit": int(limit), "writes": 50, "dry_run": True,
                                      "reached": limit == "10"}


def test_a_limit_equal_to_the_changes_lets_the_run_finish(sandbox: SandboxProcess,
                                                          tmp_path: Path) -> None:
    rows = [[f"@p{i:05d}", "1"] for i in range(10)]
    proc, records = run_file(tmp_path, sandbox, ["PKey", "phone"], rows, "--max-changes", "10")
    assert proc.returncode == 0, proc.stderr
    assert len(records) == 10 and writes(sandbox) == 10


# -- --fields ----------------------------------------------------------------------------------
def test_fields_refuses_a_file_with_another_column_before_any_request(
        sandbox: SandboxProcess, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone", "email", "location.city",
                                           "firstName@expected"],
                      [["@p00001", "1", "x@example.com", "Lyon", "Name1"]])
    proc = run_cli("run", fixes, *target_args(sandbox), "--fields", "phone,location.zipCode")
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert lines[0] == (f"batchpatch: error: {fixes}: columns outside --fields "
                        "(location.zipCode, phone): email, location.city; nothing sent")
    assert sandbox.stats()["total"] == 0
    assert not (tmp_path / "f.results.jsonl").exists()

    proc = run_cli("validate", fixes, "--fields", "phone", "--base-url", sandbox.url, "--org",
                   "demo")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == (f"batchpatch: error: {fixes}: columns outside --fields "
                                   "(phone): email, location.city; nothing sent")
    assert sandbox.stats()["total"] == 0


def test_validate_fields_works_offline(tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone", "email"],
                      [["@p00001", "1", "x@example.com"]])
    proc = run_cli("validate", fixes, "--fields", "phone")
    assert proc.returncode == 2
    assert "outside --fields (phone): email" in proc.stderr, proc.stderr
    ok = run_cli("validate", fixes, "--fields", "phone,email")
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_fields_lets_a_file_within_the_list_run(sandbox: SandboxProcess,
                                                tmp_path: Path) -> None:
    proc, rows = run_file(tmp_path, sandbox, ["PKey", "phone", "location.city",
                                              "email@expected"],
                          [["@p00001", "1", "Lyon", "user1@example.com"]],
                          "--fields", "phone,location")
    assert proc.returncode == 0, proc.stderr
    assert rows[2]["status"] == "updated"
    assert sandbox.profiles_now()["@p00001"]["location"]["city"] == "Lyon"


# -- --notify ----------------------------------------------------------------------------------
@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with serve("/hook") as state:
        yield state


TOKEN = "tok-S3cret-7f3a9c"
API_KEY = "key-S3cret-41d2"
CREDENTIALS = {"BATCHPATCH_TOKEN": TOKEN, "BATCHPATCH_API_KEY": API_KEY}


def assert_no_secret(receiver: Receiver) -> None:
    for request in receiver.received:
        seen = json.dumps(request)
        assert TOKEN not in seen and API_KEY not in seen
        assert "authorization" not in {k.lower() for k in request["headers"]}
        assert "x-api-key" not in {k.lower() for k in request["headers"]}


def one_summary(receiver: Receiver) -> dict[str, Any]:
    assert len(receiver.received) == 1, receiver.received
    (request,) = receiver.received
    assert request["path"] == "/hook"
    assert request["headers"]["Content-Type"] == "application/json"
    (body,) = receiver.bodies()
    assert isinstance(body["text"], str) and "\n" not in body["text"] and body["text"]
    return body


def test_notify_delivers_one_summary_of_a_finished_run(sandbox: SandboxProcess,
                                                       receiver: Receiver,
                                                       tmp_path: Path) -> None:
    sandbox.configure(token=TOKEN, api_key=API_KEY)
    proc, _ = run_file(tmp_path, sandbox, ["PKey", "phone"], [["@p00001", "1"],
                                                              [MISSING[0], "2"]],
                       "--notify", receiver.url, env=CREDENTIALS)
    assert proc.returncode == 1, proc.stderr
    body = one_summary(receiver)
    assert body["exit_code"] == 1 and body["rows"] == 2 and body["failed"] == 1
    assert body["counts"]["updated"] == 1 and body["counts"]["not_found"] == 1
    assert body == {**json.loads((tmp_path / "fixes.summary.json").read_text()),
                    "text": body["text"]}
    assert "finished, 1 of 2 rows failed (exit 1)" in body["text"]
    assert_no_secret(receiver)


def test_notify_delivers_one_summary_of_an_aborted_run(sandbox: SandboxProcess,
                                                       receiver: Receiver,
                                                       tmp_path: Path) -> None:
    fixes = fifty_changes(tmp_path)
    proc = run_cli("run", fixes, *target_args(sandbox), "--max-changes", "3", "--notify",
                   receiver.url, env=CREDENTIALS)
    assert proc.returncode == 3, proc.stderr
    body = one_summary(receiver)
    assert body["exit_code"] == 3 and "max-changes 3 reached" in body["aborted"]
    assert body["text"].startswith(f"batchpatch {fixes}: aborted (exit 3): max-changes 3")
    assert_no_secret(receiver)


def test_notify_of_a_run_refused_for_its_credentials_holds_no_secret(
        sandbox: SandboxProcess, receiver: Receiver, tmp_path: Path) -> None:
    sandbox.configure(token="the-right-one", api_key=API_KEY)
    proc, _ = run_file(tmp_path, sandbox, ["PKey", "phone"], [["@p00001", "1"]],
                       "--notify", receiver.url, env=CREDENTIALS)
    assert proc.returncode == 3, proc.stderr
    body = one_summary(receiver)
    assert body["exit_code"] == 3 and "401" in body["aborted"]
    assert_no_secret(receiver)


def test_notify_delivers_one_summary_of_an_interrupted_run(sandbox_process: SandboxProcess,
                                                           receiver: Receiver,
                                                           tmp_path: Path) -> None:
    sandbox_process.reset(make_profiles(200), latency_ms=20)
    fixes = write_csv(tmp_path / "fixes.csv", ["PKey", "phone"],
                      [[f"@p{i:05d}", "1"] for i in range(200)])
    proc = start_cli("run", fixes, *target_args(sandbox_process), "--concurrency", "2",
                     "--notify", receiver.url, env=CREDENTIALS)
    wait_for_records(tmp_path / "fixes.results.jsonl", 3, proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    body = one_summary(receiver)
    assert body["exit_code"] == 130 and body["interrupted"] == "SIGINT"
    assert "interrupted by SIGINT (exit 130); --resume finishes it" in body["text"]
    assert body["rows"] < 200
    assert_no_secret(receiver)


@pytest.mark.parametrize("answer", [500, 404, None])
def test_a_failing_receiver_never_changes_the_exit_code(sandbox: SandboxProcess,
                                                        receiver: Receiver, tmp_path: Path,
                                                        answer: int | None) -> None:
    url = receiver.url
    if answer is None:  # nothing listening there
        with ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler) as probe:
            url = f"http://127.0.0.1:{probe.server_address[1]}/hook"
    else:
        receiver.status = answer
    proc, rows = run_file(tmp_path, sandbox, ["PKey", "phone"], [["@p00001", "1"]],
                          "--notify", url)
    assert proc.returncode == 0, proc.stderr
    assert rows[2]["status"] == "updated"
    warning = [line for line in proc.stderr.splitlines() if "--notify" in line]
    assert len(warning) == 1 and "was not delivered" in warning[0], proc.stderr
    assert "the run's result stands" in warning[0]
    if answer == 500:
        assert len(receiver.received) == 3  # a few attempts, then it gives up
    elif answer == 404:
        assert len(receiver.received) == 1  # refused: not sent again
    assert json.loads((tmp_path / "fixes.summary.json").read_text())["exit_code"] == 0


def test_a_failing_receiver_keeps_exit_1(sandbox: SandboxProcess, receiver: Receiver,
                                         tmp_path: Path) -> None:
    receiver.status = 404
    proc, _ = run_file(tmp_path, sandbox, ["PKey", "phone"], [[MISSING[0], "1"]],
                       "--notify", receiver.url)
    assert proc.returncode == 1, proc.stderr
    assert len(receiver.received) == 1
