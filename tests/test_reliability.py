"""Unattended safety, end to end with real processes and signals: kill -9 then --resume,
SIGTERM, the run lock, the breaker, 429 storms and a fault mix."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import by_row, make_profiles, read_results, run_cli, target_args, write_csv

from batchpatch.resume import RunLock


def start_cli(*args: str | Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("BATCHPATCH_")},
           **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "batchpatch", *map(str, args)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_records(path: Path, at_least: int, proc: subprocess.Popen[str],
                     timeout: float = 60) -> None:
    """Block until the results file holds `at_least` complete lines (the run is mid-way)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the run ended early ({proc.returncode}): "
                                 f"{proc.stderr.read() if proc.stderr else ''}")
        if path.exists() and path.read_bytes().count(b"\n") >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never reached {at_least} records")


def phone_fixes(tmp_path: Path, n: int, name: str = "fixes.csv") -> Path:
    return write_csv(tmp_path / name, ["PKey", "phone"],
                     [[f"@p{i:05d}", f"+33{i:07d}"] for i in range(n)])


def assert_all_phones(sandbox, n: int) -> None:
    state = sandbox.profiles_now()
    wrong = [i for i in range(n) if state[f"@p{i:05d}"]["phone"] != f"+33{i:07d}"]
    assert wrong == []


def test_kill_9_then_resume_completes_exactly_once(sandbox_process, tmp_path: Path) -> None:
    n, concurrency = 400, 8
    sandbox_process.reset(make_profiles(n), latency_ms=15)
    fixes = phone_fixes(tmp_path, n)
    results = tmp_path / "fixes.results.jsonl"
    proc = start_cli("run", fixes, *target_args(sandbox_process), "--concurrency", concurrency)
    wait_for_records(results, 100, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with open(results, "ab") as fh:  # a record torn by the crash
        fh.write(b'{"row": 9999, "pkey": "@p0')
    sandbox_process.configure(latency_ms=0)
    again = run_cli("run", fixes, *target_args(sandbox_process), "--concurrency", concurrency,
                    "--resume")
    assert again.returncode == 0, again.stderr
    records = read_results(results)
    assert sorted(by_row(records)) == list(range(2, n + 2))  # one record per input row
    assert {r["status"] for r in records} <= {"updated", "unchanged"}
    assert_all_phones(sandbox_process, n)
    patches = sum(sandbox_process.stats()["patches"].values())
    assert n <= patches <= n + concurrency
    summary = json.loads((tmp_path / "fixes.summary.json").read_text())
    assert summary["resumed_rows"] >= 100 and summary["rows"] == n


def test_sigterm_drains_and_exits_143_then_resume_finishes(sandbox_process,
                                                          tmp_path: Path) -> None:
    n = 300
    sandbox_process.reset(make_profiles(n), latency_ms=20)
    fixes = phone_fixes(tmp_path, n)
    results = tmp_path / "fixes.results.jsonl"
    proc = start_cli("run", fixes, *target_args(sandbox_process), "--grace", "10")
    wait_for_records(results, 40, proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 143, stderr
    assert time.monotonic() - sent < 10
    records = read_results(results)  # parses line by line
    assert 40 <= len(records) < n
    summary = json.loads((tmp_path / "fixes.summary.json").read_text())
    assert summary["interrupted"] == "SIGTERM" and summary["exit_code"] == 143
    assert summary["rows_without_record"] == n - len(records)
    assert "--resume" in stderr
    again = run_cli("run", fixes, *target_args(sandbox_process), "--resume")
    assert again.returncode == 0, again.stderr
    assert len(by_row(read_results(results))) == n
    assert_all_phones(sandbox_process, n)


def test_second_run_on_the_same_results_exits_2_naming_the_lock(sandbox, tmp_path: Path) -> None:
    fixes = phone_fixes(tmp_path, 5)
    with RunLock(tmp_path / "fixes.results.jsonl"):
        proc = run_cli("run", fixes, *target_args(sandbox))
    assert proc.returncode == 2
    assert "fixes.results.jsonl.lock" in proc.stderr
    assert sandbox.stats()["total"] == 0


def test_resume_refuses_a_changed_input(sandbox, tmp_path: Path) -> None:
    fixes = phone_fixes(tmp_path, 5)
    assert run_cli("run", fixes, *target_args(sandbox)).returncode == 0
    phone_fixes(tmp_path, 6)
    proc = run_cli("run", fixes, *target_args(sandbox), "--resume")
    assert proc.returncode == 2 and "changed" in proc.stderr
    proc = run_cli("run", fixes, "--url-template", sandbox.url + "/rest/profiles/{pkey}",
                   "--resume")
    assert proc.returncode == 2


def test_breaker_opens_on_an_error_storm(sandbox, tmp_path: Path) -> None:
    sandbox.configure(fault_500=1.0)  # the server answers, with 500s: not an outage
    fixes = phone_fixes(tmp_path, 50)
    proc = run_cli("run", fixes, *target_args(sandbox), "--retries", "1", "--concurrency", "4",
                   "--schema", "none")
    assert proc.returncode == 3, proc.stderr
    assert "breaker open" in proc.stderr
    assert len(proc.stderr.splitlines()[0]) < 400
    total = sandbox.stats()["total"]
    assert total <= (10 + 4) * 2  # no request after the breaker opened
    summary = json.loads((tmp_path / "fixes.summary.json").read_text())
    assert summary["exit_code"] == 3 and summary["rows"] + summary["unfinished"] <= 50
    # fixed, the same command with --resume completes the file, and tries again the rows that
    # failed for reasons not their own: one record per row, each row's final outcome
    sandbox.configure(fault_500=0.0)
    again = run_cli("run", fixes, *target_args(sandbox), "--resume", "--schema", "none")
    assert again.returncode == 0, again.stderr
    records = by_row(read_results(tmp_path / "fixes.results.jsonl"))
    assert len(records) == 50 and {r["status"] for r in records.values()} == {"updated"}
    assert_all_phones(sandbox, 50)


def test_server_limit_below_rate_settles_under_it(sandbox_process, tmp_path: Path) -> None:
    n = 130
    sandbox_process.reset(make_profiles(n), rate_limit=20)
    fixes = phone_fixes(tmp_path, n)
    proc = run_cli("run", fixes, "--base-url", sandbox_process.url, "--org", "demo",
                   "--rate", "100", "--concurrency", "8")
    assert proc.returncode == 0, proc.stderr
    assert_all_phones(sandbox_process, n)
    times = sandbox_process.stats(times=True)["times"]
    late = [label for t, label in times if t >= 3.0]
    share = sum(label == "429" for label in late) / len(late)
    assert share < 0.05, share
    summary = json.loads((tmp_path / "fixes.summary.json").read_text())
    assert summary["rate_limited"] > 0 and summary["rate_lowest_adapted"] < 25


@pytest.mark.parametrize("seed", [11])
def test_fault_mix_every_row_updated_without_a_retry_storm(sandbox_process, tmp_path: Path,
                                                           seed: int) -> None:
    n = 1000
    sandbox_process.reset(make_profiles(n), fault_429=0.05, fault_5xx=0.05, fault_drop=0.02,
                          fault_slow=0.01, fault_badjson=0.01, slow_seconds=1.5, seed=seed,
                          retry_after="1")
    fixes = phone_fixes(tmp_path, n)
    proc = run_cli("run", fixes, "--base-url", sandbox_process.url, "--org", "demo",
                   "--rate", "0", "--concurrency", "32", "--timeout", "0.75", timeout=300)
    assert proc.returncode == 0, proc.stderr
    records = read_results(tmp_path / "fixes.results.jsonl")
    assert len(records) == n and {r["status"] for r in records} == {"updated"}
    assert_all_phones(sandbox_process, n)
    counts = sandbox_process.stats()["counts"]
    total = sum(counts.values())
    faults = sum(v for k, v in counts.items() if not k.endswith(" 200")) + round(
        total * 0.02)  # slow and broken answers are 200s: count them at their injected share
    assert total <= 3 * n + 3 * faults, (total, counts)


def test_second_sigint_stops_at_once_with_a_readable_file(sandbox_process,
                                                         tmp_path: Path) -> None:
    n = 60
    sandbox_process.reset(make_profiles(n), latency_ms=20)
    fixes = phone_fixes(tmp_path, n)
    results = tmp_path / "fixes.results.jsonl"
    proc = start_cli("run", fixes, *target_args(sandbox_process), "--grace", "60",
                     "--concurrency", "4")
    wait_for_records(results, 8, proc)
    # from now on every answer takes 8 s: draining the rows in flight would take that long
    sandbox_process.configure(latency_ms=8000)
    proc.send_signal(signal.SIGINT)
    wait_for_line(proc, "SIGINT: finishing the rows in flight")
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    assert proc.returncode == 130, stderr
    assert time.monotonic() - sent < 4  # far less than the 8 s a drain takes
    records = read_results(results)
    assert 8 <= len(records) < n
    summary = json.loads((tmp_path / "fixes.summary.json").read_text())
    assert summary["interrupted"] == "SIGINT" and summary["exit_code"] == 130
    sandbox_process.configure(latency_ms=0)


def wait_for_line(proc: subprocess.Popen[str], text: str, timeout: float = 30) -> str:
    """Read the process's stderr until a line holding `text` (the earlier lines are kept in
    `proc.early_stderr`)."""
    assert proc.stderr is not None
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            break
        seen.append(line)
        if text in line:
            return line
    raise AssertionError(f"never saw {text!r}: {''.join(seen)}")
