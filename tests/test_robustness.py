"""No row without a record, no silent success: the robustness contract end to end, against the
real sandbox, real files, real limits (RLIMIT_FSIZE) and real signals. Each test names the
class of inputs it stands for."""

from __future__ import annotations

import gzip
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import by_row, make_profiles, read_results, run_cli, target_args, write_csv
from test_reliability import start_cli, wait_for_records

BASE_ENV = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPATCH_")}


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    """The single stderr line of a usage error (no traceback)."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    return lines[0]


@pytest.mark.parametrize(("field", "cell"), [
    ("cusLoyaltyPoints", "1e20"), ("cusLoyaltyPoints", "18446744073709551616"),
    ("cusLoyaltyPoints", "1.0000000000000001"), ("cusLoyaltyPoints", "1_000"),
    ("cusLoyaltyPoints", "١٢٣"), ("cusScore", "NaN"), ("cusScore", "inf"),
    ("cusScore", "-inf"), ("cusScore", "1e400"), ("cusScore", "0x10"),
])
def test_numbers_that_cannot_be_exact_make_the_row_invalid(sandbox, tmp_path: Path,
                                                           field: str, cell: str) -> None:
    fixes = write_csv(tmp_path / "n.csv", ["PKey", field], [["@p00001", cell],
                                                            ["@p00002", "7"]])
    proc = run_cli("run", fixes, *target_args(sandbox), "--schema", "none")
    assert proc.returncode == 1, proc.stderr
    rows = by_row(read_results(tmp_path / "n.results.jsonl"))
    assert rows[2]["status"] == "invalid" and field in rows[2]["error"]
    assert rows[3]["status"] == "updated"
    assert sandbox.stats()["patches"] == {"@p00002": 1}  # nothing sent for the bad cell
    assert sandbox.profiles_now()["@p00001"][field] == make_profiles(50)[1][field]


def test_exact_integers_are_kept_exact(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "n.csv", ["PKey", "cusLoyaltyPoints"],
                      [["@p00001", "9007199254740993.0"], ["@p00002", "+12"]])
    assert run_cli("run", fixes, *target_args(sandbox), "--schema", "none").returncode == 0
    state = sandbox.profiles_now()
    assert state["@p00001"]["cusLoyaltyPoints"] == 9007199254740993
    assert state["@p00002"]["cusLoyaltyPoints"] == 12


def test_a_jsonl_integer_beyond_64_bits_is_invalid_not_a_float(sandbox, tmp_path: Path) -> None:
    fixes = tmp_path / "big.jsonl"
    fixes.write_text('{"PKey": "@p00001", "cusLoyaltyPoints": 18446744073709551616}\n'
                     '{"PKey": "@p00002", "cusLoyaltyPoints": 9223372036854775807}\n')
    proc = run_cli("run", fixes, *target_args(sandbox), "--schema", "none")
    assert proc.returncode == 1, proc.stderr
    rows = by_row(read_results(tmp_path / "big.results.jsonl"))
    assert rows[1]["status"] == "invalid" and "64-bit" in rows[1]["error"]
    assert sandbox.profiles_now()["@p00002"]["cusLoyaltyPoints"] == 9223372036854775807


def test_a_full_disk_stops_sending_then_resume_and_undo_cover_every_row(sandbox_process,
                                                                       tmp_path: Path) -> None:
    n = 300
    sandbox_process.reset(make_profiles(n))
    before = sandbox_process.profiles_now()
    fixes = write_csv(tmp_path / "fixes.csv", ["PKey", "phone"],
                      [[f"@p{i:05d}", f"+1{i:08d}"] for i in range(n)])
    limit = 24_000  # bytes any one file may grow to: the results fill up part-way

    def small_disk() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    args = [sys.executable, "-m", "batchpatch", "run", str(fixes), *target_args(sandbox_process),
            "--concurrency", "4", "--schema", "none"]
    proc = subprocess.run(args, capture_output=True, text=True, env=BASE_ENV,
                          preexec_fn=small_disk, timeout=120)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "File too large" in proc.stderr and "fixes." in proc.stderr
    written = read_results(tmp_path / "fixes.results.jsonl")  # still parses line by line
    patches = sum(sandbox_process.stats()["patches"].values())
    assert 0 < len(written) < n
    assert patches <= len(written) + 4 + 4  # in flight, and the records the disk refused
    again = run_cli("run", fixes, *target_args(sandbox_process), "--concurrency", "4",
                    "--schema", "none", "--resume")
    assert again.returncode == 0, again.stderr
    records = by_row(read_results(tmp_path / "fixes.results.jsonl"))
    assert sorted(records) == list(range(2, n + 2))
    assert {r["status"] for r in records.values()} == {"updated"}  # none lost as `unchanged`
    undo = run_cli("undo", tmp_path / "fixes.results.jsonl", "-o", tmp_path / "undo.jsonl")
    assert undo.returncode == 0, undo.stderr
    back = run_cli("run", tmp_path / "undo.jsonl", *target_args(sandbox_process),
                   "--schema", "none")
    assert back.returncode == 0, back.stderr
    assert sandbox_process.profiles_now() == before


def test_kill_9_then_resume_records_landed_writes_as_updated(sandbox_process,
                                                             tmp_path: Path) -> None:
    n = 300
    sandbox_process.reset(make_profiles(n), latency_ms=10)
    before = sandbox_process.profiles_now()
    fixes = write_csv(tmp_path / "fixes.csv", ["PKey", "phone"],
                      [[f"@p{i:05d}", f"+2{i:08d}"] for i in range(n)])
    results = tmp_path / "fixes.results.jsonl"
    proc = start_cli("run", fixes, *target_args(sandbox_process), "--concurrency", "16",
                     "--schema", "none")
    wait_for_records(results, 60, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    sandbox_process.configure(latency_ms=0)
    again = run_cli("run", fixes, *target_args(sandbox_process), "--resume", "--schema", "none")
    assert again.returncode == 0, again.stderr
    records = by_row(read_results(results))
    assert sorted(records) == list(range(2, n + 2))
    # a row whose PATCH landed before the kill, with no record, is `updated` with its real
    # before-values (from the journal), so the undo restores it
    assert {r["status"] for r in records.values()} == {"updated"}
    assert run_cli("undo", results, "-o", tmp_path / "undo.csv").returncode == 0
    back = run_cli("run", tmp_path / "undo.csv", *target_args(sandbox_process), "--schema",
                   "none", "--null-token", "#NULL")
    assert back.returncode == 0, back.stderr
    assert sandbox_process.profiles_now() == before
    assert not (tmp_path / "fixes.results.jsonl.journal").exists()  # tidied once complete


@pytest.mark.parametrize("case", ["failures=input", "results=input", "summary-dir",
                                  "results-under-file", "results-dir", "failures-dir",
                                  "unwritable", "same-two"])
def test_outputs_that_would_destroy_or_fail_late_are_refused_up_front(sandbox, tmp_path: Path,
                                                                      case: str) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], [["@p00001", "1"]])
    original = fixes.read_bytes()
    (tmp_path / "adir").mkdir()
    (tmp_path / "afile").write_text("x")
    flags = {
        "failures=input": ["--failures", fixes],
        "results=input": ["--results", tmp_path / "." / "f.csv"],
        "summary-dir": ["--summary", tmp_path / "adir"],
        "results-under-file": ["--results", tmp_path / "afile" / "r.jsonl"],
        "results-dir": ["--results", tmp_path / "adir"],
        "failures-dir": ["--failures", tmp_path / "adir"],
        "unwritable": ["--results", Path("/proc/batchpatch-results.jsonl")],
        "same-two": ["--results", tmp_path / "x.jsonl", "--summary", tmp_path / "x.jsonl"],
    }[case]
    proc = run_cli("run", fixes, *target_args(sandbox), *flags)
    assert proc.returncode == 2, proc.stderr
    one_line_error(proc)
    assert sandbox.stats()["total"] == 0
    assert fixes.read_bytes() == original
    assert not list(tmp_path.glob("*.tmp"))


def test_a_resume_that_stops_early_keeps_every_failure_in_the_file_and_summary(
        sandbox, tmp_path: Path) -> None:
    rows = [[f"@missing{i}", "1"] for i in range(16)] + [[f"@p{i:05d}", "9"] for i in range(30)]
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], rows)
    first = run_cli("run", fixes, *target_args(sandbox), "--schema", "none")
    assert first.returncode == 1
    (tmp_path / "f.results.jsonl").write_text(
        "".join(line + "\n" for line in (tmp_path / "f.results.jsonl").read_text()
                .splitlines()[:20]))  # as if the first run had been killed after 20 rows
    again = run_cli("run", fixes, *target_args(sandbox), "--schema", "none", "--resume",
                    "--limit", "5")
    summary = json.loads((tmp_path / "f.summary.json").read_text())
    records = read_results(tmp_path / "f.results.jsonl")
    failed = [r for r in records if r["status"] == "not_found"]
    assert summary["failed"] == len(failed) == 16, again.stderr
    listed = (tmp_path / "f.failures.csv").read_text().splitlines()
    assert len(listed) == 1 + 16


def test_resume_refuses_a_run_made_with_another_lookup(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "e.csv", ["email", "phone"], [["user1@example.com", "1"]])
    assert run_cli("run", fixes, *target_args(sandbox), "--key-column", "email", "--lookup",
                   "byEmail", "--schema", "none").returncode == 0
    proc = run_cli("run", fixes, *target_args(sandbox), "--key-column", "email", "--resume",
                   "--schema", "none")
    assert proc.returncode == 2 and "lookup" in one_line_error(proc)


def test_a_jsonl_bom_does_not_reach_the_failures_file(sandbox, tmp_path: Path) -> None:
    fixes = tmp_path / "b.jsonl"
    fixes.write_bytes(b'\xef\xbb\xbf{"PKey": "@nobody", "phone": "1"}\n'
                      b'{"PKey": "@nobody2", "phone": "2"}\n')
    assert run_cli("run", fixes, *target_args(sandbox), "--schema", "none").returncode == 1
    failures = (tmp_path / "b.failures.jsonl").read_bytes()
    assert b"\xef\xbb\xbf" not in failures
    again = run_cli("run", tmp_path / "b.failures.jsonl", *target_args(sandbox), "--schema",
                    "none")
    assert len(read_results(tmp_path / "b.failures.results.jsonl")) == 2, again.stderr


def test_a_field_and_a_field_inside_it_are_refused(sandbox, tmp_path: Path) -> None:
    for header in (["PKey", "location", "location.city"], ["PKey", "location.city", "location"]):
        fixes = write_csv(tmp_path / "c.csv", header, [["@p00001", "{}", "Lyon"]])
        for command in (["run", fixes, *target_args(sandbox)], ["validate", fixes]):
            proc = run_cli(*command)
            assert proc.returncode == 2, proc.stderr
            line = one_line_error(proc)
            assert "'location'" in line and "'location.city'" in line
    jsonl = tmp_path / "c.jsonl"
    jsonl.write_text('{"PKey": "@p00001", "location": {"city": "Lyon"}, "location.city": "X"}\n'
                     '{"PKey": "@p00002", "location.city": "X", "location": {"city": "Y"}}\n')
    proc = run_cli("run", jsonl, *target_args(sandbox), "--schema", "none")
    assert proc.returncode == 1
    assert {r["status"] for r in read_results(tmp_path / "c.results.jsonl")} == {"invalid"}
    assert sandbox.stats()["patches"] == {}


@pytest.mark.parametrize("key", [".", "..", "a/..", "%2E%2E"])
def test_every_key_addresses_exactly_its_own_resource(sandbox, tmp_path: Path, key: str) -> None:
    fixes = write_csv(tmp_path / "k.csv", ["PKey", "phone"], [[key, "1"]])
    proc = run_cli("run", fixes, "--url-template", sandbox.url + "/rest/profiles/{pkey}",
                   "--rate", "0")
    assert proc.returncode == 1, proc.stderr
    (record,) = read_results(tmp_path / "k.results.jsonl")
    assert record["status"] == "not_found"
    assert sandbox.stats()["patches"] == {}


def test_a_json_array_file_is_refused_with_a_hint(sandbox, tmp_path: Path) -> None:
    fixes = tmp_path / "arr.json"
    fixes.write_text('[\n  {"PKey": "@p00001", "phone": "1"},\n  {"PKey": "@p00002"}\n]\n')
    proc = run_cli("run", fixes, *target_args(sandbox))
    assert proc.returncode == 2
    assert "JSON Lines" in one_line_error(proc)
    assert sandbox.stats()["total"] == 0


def test_an_answer_larger_than_max_body_fails_the_row(sandbox, tmp_path: Path) -> None:
    big = make_profiles(2)
    big[1]["note"] = "x" * 3_000_000
    sandbox.reset(big)
    fixes = write_csv(tmp_path / "m.csv", ["PKey", "phone"], [["@p00000", "1"], ["@p00001", "2"]])
    proc = run_cli("run", fixes, *target_args(sandbox), "--max-body", "1000000",
                   "--schema", "none")
    assert proc.returncode == 1, proc.stderr
    rows = by_row(read_results(tmp_path / "m.results.jsonl"))
    assert rows[2]["status"] == "updated"
    assert rows[3]["status"] == "failed" and "--max-body" in rows[3]["error"]


def test_a_client_secret_file_flag_wins_over_the_environment(tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], [["@p00001", "1"]])
    secret = tmp_path / "secret.txt"
    secret.write_text("From-The-File-Secret\r\n")
    proc = run_cli("run", fixes, "--base-url", "https://mc.adobe.io", "--org", "acme",
                   "--client-id", "id", "--client-secret-file", secret, "--print-config",
                   env={"BATCHPATCH_CLIENT_SECRET": "From-The-Env-Secret"})
    shown = json.loads(proc.stdout)
    assert shown["sources"]["client_secret"] == "flag"
    assert "From-The" not in proc.stdout


@pytest.mark.parametrize(("toml", "words"), [
    ("run = 5\n", "run must be a table"),
    ("[profiles]\nprod = 5\n", "profiles.prod must be a table"),
    ("profiles = [1, 2]\n", "profiles must be a table"),
    ("concurrency = 2.9\n", "not a whole number"),
    ('key_column = ["a"]\n', "is not text"),
    ("rate = nan\n", "not a finite number"),
    ("bogus = 1\n", "unknown setting 'bogus'"),
])
def test_a_config_file_that_cannot_be_used_is_one_line(tmp_path: Path, toml: str,
                                                       words: str) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], [["@p00001", "1"]])
    config = tmp_path / "bp.toml"
    config.write_text(toml)
    proc = run_cli("run", fixes, "--url-template", "http://127.0.0.1:9/{pkey}", "--config",
                   config, "--profile", "prod") if "prod" in toml or "[1, 2]" in toml else \
        run_cli("run", fixes, "--url-template", "http://127.0.0.1:9/{pkey}", "--config", config)
    assert proc.returncode == 2
    assert words in one_line_error(proc)


@pytest.mark.parametrize(("args", "words"), [
    (["--url-template", "http://[::1/{pkey}"], "not a valid URL"),
    (["--url-template", "http:///{pkey}"], "names no host"),
    (["--url-template", "http://h:99999/{pkey}"], "not a valid URL"),
    (["--url-template", "http://h/x", "--rate", "nan"], "not a finite number"),
    (["--url-template", "http://h/{pkey}", "--timeout", "inf"], "not a finite number"),
    (["--url-template", "http://h/{pkey}", "--grace", "-1"], "must be 0 or more"),
    (["--url-template", "http://h/{pkey}", "--progress-every", "0"], "must be more than 0"),
    (["--url-template", "http://h/{pkey}", "--profile", "prod"], "--profile needs --config"),
])
def test_bad_flags_are_one_line_before_anything_starts(tmp_path: Path, args: list[str],
                                                      words: str) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], [["@p00001", "1"]])
    proc = run_cli("run", fixes, *args)
    assert proc.returncode == 2
    assert words in one_line_error(proc)


def test_usage_errors_are_json_with_json_logs(tmp_path: Path) -> None:
    proc = run_cli("run", tmp_path / "missing.csv", "--log-format", "json",
                   "--url-template", "http://h/{pkey}")
    assert proc.returncode == 2
    entry = json.loads(one_line_error(proc))
    assert entry["level"] == "error" and "no such file" in entry["msg"]
    proc = run_cli("run", "--bogus", "--log-format", "json")
    assert proc.returncode == 2 and json.loads(one_line_error(proc))["exit_code"] == 2


@pytest.mark.parametrize("what", ["not-results", "directory", "missing"])
def test_report_and_undo_refuse_what_is_not_a_results_file(tmp_path: Path, what: str) -> None:
    target = {"not-results": tmp_path / "x.jsonl", "directory": tmp_path,
              "missing": tmp_path / "nope.jsonl"}[what]
    (tmp_path / "x.jsonl").write_text('{"a": 1}\n')
    for command in (["report", target], ["undo", target, "-o", tmp_path / "u.jsonl"]):
        proc = run_cli(*command)
        assert proc.returncode == 2, proc.stderr
        one_line_error(proc)
    proc = run_cli("report", tmp_path / "x.jsonl", "-o", tmp_path)
    assert proc.returncode == 2
    one_line_error(proc)


def test_undo_writes_gzip_when_asked_and_warns_about_the_null_token(sandbox,
                                                                    tmp_path: Path) -> None:
    profiles = make_profiles(3)
    profiles[1]["phone"] = "#NULL"
    sandbox.reset(profiles)
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], [["@p00001", "1"], ["@p00002", "2"]])
    assert run_cli("run", fixes, *target_args(sandbox), "--schema", "none").returncode == 0
    proc = run_cli("undo", tmp_path / "f.results.jsonl", "-o", tmp_path / "u.jsonl.gz")
    assert proc.returncode == 0, proc.stderr
    lines = gzip.decompress((tmp_path / "u.jsonl.gz").read_bytes()).splitlines()
    assert len(lines) == 2
    proc = run_cli("undo", tmp_path / "f.results.jsonl", "-o", tmp_path / "u.csv")
    assert "'#NULL'" in proc.stderr and "null token" in proc.stderr
