"""End to end: the real `batchpatch run` command against the sandbox on loopback. Every status
and exit code; the server's state is checked after each run."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

from conftest import by_row, read_results, run_cli, target_args, write_csv, write_jsonl


def test_every_status_in_one_run(sandbox, tmp_path: Path) -> None:
    sandbox.configure(ignore_fields=["firstName"])
    fixes = write_csv(tmp_path / "fixes.csv", ["PKey", "phone", "cusLoyaltyPoints", "age",
                                               "firstName", "email@expected"], [
        ["@p00001", "0600000001", "", "", "", ""],            # 2 updated
        ["@p00002", "0000000002", "20", "", "", ""],          # 3 unchanged
        ["@nobody", "1", "", "", "", ""],                     # 4 not_found
        ["@p00003", "", "many", "", "", ""],                  # 5 invalid (not an integer)
        ["@p00004", "", "", "31", "", ""],                    # 6 failed (age is read-only)
        ["@p00005", "", "", "", "Zed", ""],                   # 7 verify_mismatch
        ["@p00006", "0700000000", "", "", "", "old@example.com"],  # 8 conflict
    ])
    with open(fixes, "a") as fh:
        fh.write("@p00007,ragged\n")                           # 9 invalid (ragged)
    proc = run_cli("run", fixes, *target_args(sandbox))
    assert proc.returncode == 1, proc.stderr
    rows = by_row(read_results(tmp_path / "fixes.results.jsonl"))
    statuses = {n: r["status"] for n, r in rows.items()}
    assert statuses == {2: "updated", 3: "unchanged", 4: "not_found", 5: "invalid", 6: "failed",
                        7: "verify_mismatch", 8: "conflict", 9: "invalid"}
    assert rows[2]["changed"] == {"phone": ["0000000001", "0600000001"]}
    assert rows[2]["attempts"] == 3 and rows[3]["attempts"] == 1
    assert "read-only" in rows[6]["error"] and rows[6]["attempts"] == 2  # no retry of the 500
    assert rows[7]["mismatch"] == {"firstName": ["Zed", "Name5"]}
    assert rows[8]["mismatch"] == {"email": ["old@example.com", "user6@example.com"]}
    assert rows[9]["error"] == "expected 6 cells, found 2"
    profiles = sandbox.profiles_now()
    assert profiles["@p00001"]["phone"] == "0600000001"
    assert profiles["@p00006"]["phone"] == "0000000006"  # the conflict row was not patched
    assert profiles["@p00004"]["age"] == 30
    assert sandbox.stats()["patches"] == {"@p00001": 1, "@p00005": 1}
    # the failures file holds the failed rows exactly as they were, header first
    failures = (tmp_path / "fixes.failures.csv").read_text().splitlines()
    assert failures[0] == "PKey,phone,cusLoyaltyPoints,age,firstName,email@expected"
    assert sorted(failures[1:]) == sorted([
        "@nobody,1,,,,", "@p00003,,many,,,", "@p00004,,,31,,", "@p00005,,,,Zed,",
        "@p00006,0700000000,,,,old@example.com", "@p00007,ragged"])
    summary = json.loads((tmp_path / "fixes.summary.json").read_text())
    assert summary["counts"]["updated"] == 1 and summary["failed"] == 6
    assert summary["requests"]["PATCH"] == {"200": 2, "500": 1}
    assert proc.stderr.startswith("batchpatch: 8 rows in ")


def test_all_rows_succeed_exit_0_and_values_are_typed(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "ok.csv", ["PKey", "cusLoyaltyPoints", "blackListEmail",
                                            "cusScore", "location.city", "cusCustomerId"], [
        [f"@p{i:05d}", str(i * 10 + 1), "yes", "0.75", "Lyon", "0000042"] for i in range(20)
    ])
    proc = run_cli("run", fixes, *target_args(sandbox))
    assert proc.returncode == 0, proc.stderr
    assert {r["status"] for r in read_results(tmp_path / "ok.results.jsonl")} == {"updated"}
    for i in range(20):
        p = sandbox.profiles_now()[f"@p{i:05d}"]
        assert p["cusLoyaltyPoints"] == i * 10 + 1 and p["blackListEmail"] is True
        assert p["cusScore"] == 0.75 and p["cusCustomerId"] == "0000042"
        assert p["location"] == {"city": "Lyon", "zipCode": "75011", "countryCode": "FR"}
    assert (tmp_path / "ok.failures.csv").read_text().strip() == (
        "PKey,cusLoyaltyPoints,blackListEmail,cusScore,location.city,cusCustomerId")


def test_failures_file_feeds_straight_back(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], [["@p00001", "1"], ["@p00099", "2"]])
    assert run_cli("run", fixes, *target_args(sandbox)).returncode == 1
    failures = tmp_path / "f.failures.csv"
    assert failures.read_bytes() == b"PKey,phone\r\n@p00099,2\r\n"
    sandbox.reset([{"PKey": "@p00099", "phone": "x"}])  # the missing profile now exists
    again = run_cli("run", failures, *target_args(sandbox))
    assert again.returncode == 0, again.stderr
    assert sandbox.profiles_now()["@p00099"]["phone"] == "2"
    (record,) = read_results(tmp_path / "f.failures.results.jsonl")
    assert (record["row"], record["status"]) == (2, "updated")


def test_dry_run_sends_only_gets(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "d.csv", ["PKey", "phone"], [["@p00001", "9"], ["@p00002", "9"]])
    proc = run_cli("run", fixes, *target_args(sandbox), "--dry-run")
    assert proc.returncode == 0, proc.stderr
    records = read_results(tmp_path / "d.results.jsonl")
    assert {r["status"] for r in records} == {"dry_run"}
    assert records[0]["changed"]["phone"][1] == "9"
    assert set(sandbox.stats()["counts"]) == {"GET 200"}
    assert sandbox.profiles_now()["@p00001"]["phone"] == "0000000001"


def test_no_verify_skips_the_read_back(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "n.csv", ["PKey", "phone"], [["@p00001", "9"]])
    assert run_cli("run", fixes, *target_args(sandbox), "--no-verify",
                   "--schema", "none").returncode == 0
    assert sandbox.stats()["counts"] == {"GET 200": 1, "PATCH 200": 1}


def test_jsonl_gzip_and_bare_get_shape(sandbox, tmp_path: Path) -> None:
    sandbox.configure(get_shape="bare", href_alias=True)
    plain = write_jsonl(tmp_path / "j.jsonl", [
        {"PKey": "@p00001", "cusLoyaltyPoints": 5, "location": {"city": "Nantes"}},
        {"PKey": "@p00002", "mobilePhone": "0611"},
        {"PKey": "@p00003", "phone": None},
    ])
    gz = tmp_path / "j.jsonl.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    proc = run_cli("run", gz, *target_args(sandbox))
    assert proc.returncode == 0, proc.stderr
    state = sandbox.profiles_now()
    assert state["@p00001"]["cusLoyaltyPoints"] == 5
    assert state["@p00001"]["location"]["zipCode"] == "75011"
    assert state["@p00002"]["mobilePhone"] == "0611"
    assert state["@p00003"]["phone"] is None
    assert (tmp_path / "j.failures.jsonl").exists()


def test_url_template_for_another_rest_api(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "t.csv", ["PKey", "phone"], [["@p00001", "42"], ["nobody", "1"]])
    proc = run_cli("run", fixes, "--url-template", sandbox.url + "/rest/profiles/{pkey}",
                   "--rate", "0")
    assert proc.returncode == 1, proc.stderr
    rows = by_row(read_results(tmp_path / "t.results.jsonl"))
    assert rows[2]["status"] == "updated" and rows[3]["status"] == "not_found"
    assert sandbox.profiles_now()["@p00001"]["phone"] == "42"


def test_stdin_with_format(sandbox, tmp_path: Path) -> None:
    proc = run_cli("run", "-", "--format", "csv", *target_args(sandbox),
                   "--results", tmp_path / "r.jsonl", "--failures", tmp_path / "f.csv",
                   "--summary", tmp_path / "s.json", stdin="PKey,phone\n@p00001,77\n")
    assert proc.returncode == 0, proc.stderr
    assert sandbox.profiles_now()["@p00001"]["phone"] == "77"


def test_semicolon_file_end_to_end_keeps_its_form_in_failures(sandbox, tmp_path: Path) -> None:
    fixes = tmp_path / "eu.csv"
    fixes.write_text("PKey;phone\n@p00001;+33 6 00\n@nobody;1\n", encoding="utf-8")
    proc = run_cli("run", fixes, *target_args(sandbox), "--delimiter", ";")
    assert proc.returncode == 1, proc.stderr
    assert sandbox.profiles_now()["@p00001"]["phone"] == "+33 6 00"
    assert (tmp_path / "eu.failures.csv").read_text() == "PKey;phone\n@nobody;1\n"


def test_same_key_rows_apply_in_input_order(sandbox, tmp_path: Path) -> None:
    rows = [["@p00001", str(n)] for n in range(30)] + [["@p00002", "1"], ["@p00002", "2"]]
    fixes = write_csv(tmp_path / "dup.csv", ["PKey", "cusLoyaltyPoints"], rows)
    proc = run_cli("run", fixes, *target_args(sandbox), "--concurrency", "16")
    assert proc.returncode == 0, proc.stderr
    assert sandbox.profiles_now()["@p00001"]["cusLoyaltyPoints"] == 29
    assert sandbox.profiles_now()["@p00002"]["cusLoyaltyPoints"] == 2


def test_transient_faults_one_percent_thousand_rows(sandbox_process, tmp_path: Path) -> None:
    from conftest import make_profiles

    sandbox_process.reset(make_profiles(1000), fault_5xx=0.005, fault_drop=0.005, seed=3)
    fixes = write_csv(tmp_path / "k.csv", ["PKey", "phone", "cusLoyaltyPoints"], [
        [f"@p{i:05d}", f"+1{i:09d}" if i % 3 else f"0{i:09d}", str(i * 10)] for i in range(1000)
    ])
    proc = run_cli("run", fixes, *target_args(sandbox_process), "--concurrency", "16",
                   timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = read_results(tmp_path / "k.results.jsonl")
    assert len(records) == 1000
    assert {r["status"] for r in records} <= {"updated", "unchanged"}
    state = sandbox_process.profiles_now()
    for i in range(1000):
        want = f"+1{i:09d}" if i % 3 else f"0{i:09d}"
        assert state[f"@p{i:05d}"]["phone"] == want
    counts = sandbox_process.stats()["counts"]
    assert any(k.endswith(("502", "503", "504", "drop")) for k in counts)  # faults happened


def test_gzip_cut_short_stops_with_the_file_named(sandbox, tmp_path: Path) -> None:
    body = "PKey,phone\n" + "".join(f"@p{i % 50:05d},{i}\n" for i in range(3000))
    cut = tmp_path / "cut.csv.gz"
    cut.write_bytes(gzip.compress(body.encode())[:4000])
    proc = run_cli("run", cut, *target_args(sandbox))
    assert proc.returncode == 3, proc.stderr
    found = re.search(r"cut\.csv\.gz: line (\d+): cannot read further", proc.stderr)
    assert found, proc.stderr
    assert "Traceback" not in proc.stderr
    records = read_results(tmp_path / "cut.results.jsonl")
    assert {r["status"] for r in records} <= {"updated", "unchanged"}
    # every row before the break has its record; none after it
    assert sorted(by_row(records)) == list(range(2, int(found.group(1))))


def test_usage_errors_exit_2_with_one_line_and_send_nothing(sandbox, tmp_path: Path) -> None:
    bad = write_csv(tmp_path / "nokey.csv", ["id", "phone"], [["1", "2"]])
    cases = [
        (["run", tmp_path / "missing.csv", *target_args(sandbox)], "missing.csv: no such file"),
        (["run", bad, *target_args(sandbox)], "nokey.csv: line 1: no key column 'PKey'"),
        (["run", bad, "--key-column", "id"], "no target"),
        (["run", bad, "--url-template", "http://x/{key}"], "must contain {pkey}"),
        (["run", bad, *target_args(sandbox), "--concurrency", "0"], "--concurrency"),
        (["run", bad, *target_args(sandbox), "--bogus"], "unrecognized arguments"),
    ]
    for args, message in cases:
        proc = run_cli(*args)
        assert proc.returncode == 2, (args, proc.stderr)
        assert message in proc.stderr, (message, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert sandbox.stats()["total"] == 0


def test_rejected_token_exits_3_and_stops(sandbox, tmp_path: Path) -> None:
    sandbox.configure(token="right", api_key="key")
    fixes = write_csv(tmp_path / "a.csv", ["PKey", "phone"],
                      [[f"@p{i:05d}", "1"] for i in range(40)])
    proc = run_cli("run", fixes, *target_args(sandbox), env={
        "BATCHPATCH_TOKEN": "wrong-token-value", "BATCHPATCH_API_KEY": "key"})
    assert proc.returncode == 3, proc.stderr
    assert "aborted" in proc.stderr and "401" in proc.stderr
    assert "wrong-token-value" not in proc.stderr + (tmp_path / "a.summary.json").read_text()
    assert sandbox.stats()["counts"].get("PATCH 200") is None
    assert sandbox.stats()["total"] <= 8  # only the requests already in flight
    results = tmp_path / "a.results.jsonl"  # no row's own outcome was known
    assert not results.exists() or read_results(results) == []
