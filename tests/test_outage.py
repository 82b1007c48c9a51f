"""Outages and next-run retries, end to end: the sandbox behind a TCP forwarder the test
controls (it resets every connection while "down"), and runs that fail for reasons not the
rows' own, then `--resume`."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit

from conftest import by_row, make_profiles, read_results, run_cli, write_csv
from forwarder import Forwarder
from test_reliability import start_cli, wait_for_records


def phone_rows(n: int) -> list[list[str]]:
    return [[f"@p{i:05d}", f"+6{i:07d}"] for i in range(n)]


def assert_phones(sandbox, n: int) -> None:
    state = sandbox.profiles_now()
    assert [i for i in range(n) if state[f"@p{i:05d}"]["phone"] != f"+6{i:07d}"] == []


def behind_a_forwarder(sandbox, tmp_path: Path, n: int) -> tuple[Path, Path, int]:
    """n profiles on a sandbox answering in 5 ms, a file changing each of them, its results
    path, and the sandbox's port (for the Forwarder the test controls)."""
    sandbox.reset(make_profiles(n), latency_ms=5)
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], phone_rows(n))
    port = urlsplit(sandbox.url).port
    assert port is not None
    return fixes, tmp_path / "f.results.jsonl", port


def test_a_30_second_outage_is_ridden_out_without_a_failed_row(sandbox_process,
                                                               tmp_path: Path) -> None:
    n = 600
    fixes, results, port = behind_a_forwarder(sandbox_process, tmp_path, n)
    with Forwarder("127.0.0.1", port) as fwd:
        proc = start_cli("run", fixes, "--base-url", fwd.url, "--org", "demo", "--rate", "200",
                         "--concurrency", "8", "--schema", "none")
        wait_for_records(results, 150, proc)
        fwd.down(seconds=30)
        _, stderr = proc.communicate(timeout=180)
        during = fwd.attempt_times(during_outage=True)
    assert proc.returncode == 0, stderr
    records = by_row(read_results(results))
    assert sorted(records) == list(range(2, n + 2))
    assert {r["status"] for r in records.values()} == {"updated"}
    assert_phones(sandbox_process, n)
    # the pool paused as a whole: one probe at a time, not every row retrying
    assert len(during) <= 1.5 * 30 + 8 + 8, len(during)
    summary = json.loads((tmp_path / "f.summary.json").read_text())
    (outage,) = summary["outages"]
    assert 25 <= outage["seconds"] <= 40 and outage["probes"] >= 3
    assert "stopped answering" in stderr and "answers again" in stderr


def test_an_outage_longer_than_max_outage_aborts_then_resume_finishes(sandbox_process,
                                                                      tmp_path: Path) -> None:
    n = 300
    fixes, results, port = behind_a_forwarder(sandbox_process, tmp_path, n)
    with Forwarder("127.0.0.1", port) as fwd:
        args = ["--base-url", fwd.url, "--org", "demo", "--rate", "200", "--concurrency", "8",
                "--schema", "none"]
        proc = start_cli("run", fixes, *args, "--max-outage", "5")
        wait_for_records(results, 60, proc)
        fwd.down()
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 3, stderr
        assert "--max-outage 5" in stderr and "Traceback" not in stderr
        records = read_results(results)
        assert "failed" not in {r["status"] for r in records}  # undecided rows: no record
        assert len(records) < n
        fwd.up()
        again = run_cli("run", fixes, *args, "--resume")
    assert again.returncode == 0, again.stderr
    assert sorted(by_row(read_results(results))) == list(range(2, n + 2))
    assert_phones(sandbox_process, n)


def test_resume_retries_what_failed_for_reasons_not_its_own(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], [*phone_rows(20), ["@nobody", "1"]])
    with open(fixes, "a") as fh:
        fh.write("@p00030,ragged,row\n")  # invalid: the row's own
    args = ["--base-url", sandbox.url, "--org", "demo", "--rate", "0", "--schema", "none",
            "--retries", "1", "--max-error-rate", "1"]
    # every PATCH is cut off before the server applies it: not the rows' fault
    sandbox.configure(chaos=1.0, chaos_kinds=["reset"], chaos_methods=["PATCH"])
    first = run_cli("run", fixes, *args)
    assert first.returncode == 1, first.stderr
    records = by_row(read_results(tmp_path / "f.results.jsonl"))
    assert [records[n]["status"] for n in range(2, 22)] == ["failed"] * 20
    assert all(records[n]["retryable"] for n in range(2, 22))
    assert (records[22]["status"], records[22]["retryable"]) == ("not_found", False)
    assert (records[23]["status"], records[23]["retryable"]) == ("invalid", False)
    sandbox.reset(make_profiles(50))  # fixed; the server's counts start again
    again = run_cli("run", fixes, *args, "--resume")
    assert again.returncode == 1, again.stderr  # the row's own failures stand
    records = by_row(read_results(tmp_path / "f.results.jsonl"))
    assert len(records) == 22  # one record per row, each the row's final outcome
    assert [records[n]["status"] for n in range(2, 22)] == ["updated"] * 20
    assert (records[22]["status"], records[23]["status"]) == ("not_found", "invalid")
    assert_phones_upto(sandbox, 20)
    counts = sandbox.stats()["counts"]
    assert "GET 404" not in counts  # the unknown key was not sent again
    assert counts == {"GET 200": 40, "PATCH 200": 20}
    summary = json.loads((tmp_path / "f.summary.json").read_text())
    assert summary["retried_from_earlier"] == 20 and summary["failed"] == 2
    assert "retried: 20 rows" in again.stderr
    listed = (tmp_path / "f.failures.csv").read_text().splitlines()
    assert listed[1:] == ["@nobody,1", "@p00030,ragged,row"]


def assert_phones_upto(sandbox, n: int) -> None:
    state = sandbox.profiles_now()
    assert all(state[f"@p{i:05d}"]["phone"] == f"+6{i:07d}" for i in range(n))
