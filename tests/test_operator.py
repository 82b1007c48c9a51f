"""Operator experience: progress on a terminal and off it, JSON logs, validate, canary and
limit, the report, and the Python API."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import struct
import subprocess
import sys
import termios
from pathlib import Path

from conftest import make_profiles, read_results, run_cli, target_args, write_csv

import batchpatch


def phone_rows(n: int, start: int = 0) -> list[list[str]]:
    return [[f"@p{i:05d}", f"+44{i:07d}"] for i in range(start, start + n)]


def test_terminal_run_shows_a_bar(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], phone_rows(40))
    main, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 120, 0, 0))  # 120x30
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCHPATCH_")}
    proc = subprocess.Popen([sys.executable, "-m", "batchpatch", "run", fixes,
                             *target_args(sandbox), "--rate", "60"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=secondary, env=env)
    os.close(secondary)
    screen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the pty closes when the process ends
            break
        if not chunk:
            break
        screen += chunk
    assert proc.wait(timeout=60) == 0
    os.close(main)
    text = screen.decode("utf-8", "replace")
    assert "40/40" in text and "row/s" in text and "updated=" in text
    assert "progress:" not in text


def test_piped_run_logs_progress_lines_and_no_bar(sandbox, tmp_path: Path) -> None:
    sandbox.configure(latency_ms=20)
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], phone_rows(50))
    proc = run_cli("run", fixes, *target_args(sandbox), "--progress-every", "0.2")
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if "progress:" in line]
    assert lines and "of ~50 rows" in lines[0]
    assert "\r" not in proc.stderr and "row/s]" not in proc.stderr


def test_json_logs_parse_line_by_line(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], [*phone_rows(5), ["@zz", "1"]])
    proc = run_cli("run", fixes, *target_args(sandbox), "--log-format", "json", "-v")
    assert proc.returncode == 1, proc.stderr
    entries = [json.loads(line) for line in proc.stderr.splitlines()]
    rows = [e for e in entries if e.get("event") == "row"]
    assert len(rows) == 6 and len({e["run_id"] for e in entries}) == 1
    failed = next(e for e in rows if e["pkey"] == "@zz")
    assert failed["status"] == "not_found" and failed["http_status"] == 404
    assert failed["row"] == 7 and failed["attempt"] == 1
    assert entries[-1]["event"] == "summary"


def test_no_per_row_lines_without_v(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], phone_rows(5))
    proc = run_cli("run", fixes, *target_args(sandbox), "--log-format", "json")
    assert [json.loads(line)["event"] for line in proc.stderr.splitlines()] == ["summary"]


def test_validate_reports_every_problem_offline(sandbox, tmp_path: Path) -> None:
    broken = tmp_path / "broken.csv"
    broken.write_text("PKey,phone,location..city,phone@expected\n"
                      "@a,1,,\n"
                      "@b,2\n"
                      ",3,,\n"
                      "@a,4,,\n"
                      '"@c,5,,\n')
    proc = run_cli("validate", broken, "--null-token", "#N/A")
    assert proc.returncode == 1
    out = proc.stdout
    assert "line 1: bad field name 'location..city'" in out
    assert "line 3: expected 4 cells, found 2" in out
    assert "line 4: empty key column 'PKey'" in out
    assert "line 6: unreadable CSV" in out
    assert "@a: lines 2, 5" in out
    assert "guard: the profile must hold this in 'phone'" in out
    assert sandbox.stats()["total"] == 0
    good = write_csv(tmp_path / "good.csv", ["PKey", "phone"], phone_rows(3))
    assert run_cli("validate", good).returncode == 0
    assert run_cli("validate", tmp_path / "nope.csv").returncode == 2


def test_canary_stops_before_the_rest_of_the_file(sandbox, tmp_path: Path) -> None:
    rows = [[f"@missing{i}", "1"] for i in range(20)] + phone_rows(30)
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], rows)
    proc = run_cli("run", fixes, *target_args(sandbox), "--canary", "20", "--schema", "none")
    assert proc.returncode == 3, proc.stderr
    assert "canary: 20 of the first 20 rows failed" in proc.stderr
    assert len(read_results(tmp_path / "f.results.jsonl")) == 20
    assert sandbox.stats()["total"] == 20  # one GET per canary row, nothing for the rest
    good = write_csv(tmp_path / "g.csv", ["PKey", "phone"], phone_rows(30))
    assert run_cli("run", good, *target_args(sandbox), "--canary", "10").returncode == 0
    assert len(read_results(tmp_path / "g.results.jsonl")) == 30


def test_limit_processes_only_n_rows(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone"], phone_rows(30))
    proc = run_cli("run", fixes, *target_args(sandbox), "--limit", "7")
    assert proc.returncode == 0, proc.stderr
    assert sorted(r["row"] for r in read_results(tmp_path / "f.results.jsonl")) == list(
        range(2, 9))
    summary = json.loads((tmp_path / "f.summary.json").read_text())
    assert summary["limited"] is True
    again = run_cli("run", fixes, *target_args(sandbox), "--resume")  # the rest, later
    assert again.returncode == 0
    assert len(read_results(tmp_path / "f.results.jsonl")) == 30


def test_report_numbers_match_the_summary(sandbox, tmp_path: Path) -> None:
    sandbox.configure(fault_429=0.05, fault_5xx=0.05, retry_after="0", seed=4)
    fixes = write_csv(tmp_path / "f.csv", ["PKey", "phone", "location.city"],
                      [[*r, "Nice"] for r in phone_rows(45)] + [["@none", "1", ""]])
    proc = run_cli("run", fixes, *target_args(sandbox), "--schema", "none")
    assert proc.returncode == 1, proc.stderr
    summary = json.loads((tmp_path / "f.summary.json").read_text())
    for name in ("report.md", "report.html"):
        made = run_cli("report", tmp_path / "f.results.jsonl", "-o", tmp_path / name)
        assert made.returncode == 0, made.stderr
    md = (tmp_path / "report.md").read_text()
    assert f"| updated | {summary['counts']['updated']} |" in md
    assert f"| not_found | {summary['counts']['not_found']} |" in md
    assert f"{summary['retries']} retries, {summary['rate_limited']} answers 429" in md
    assert "| location.city | 45 |" in md
    html = (tmp_path / "report.html").read_text()
    assert "<svg" in html and f"<td>{summary['counts']['updated']}</td>" in html


def test_python_api_runs_the_same_job_as_the_cli(sandbox, sandbox_process,
                                                tmp_path: Path) -> None:
    rows = [*phone_rows(20), ["@gone", "1"]]
    cli_fixes = write_csv(tmp_path / "cli.csv", ["PKey", "phone"], rows)
    cli = run_cli("run", cli_fixes, *target_args(sandbox))
    cli_summary = json.loads((tmp_path / "cli.summary.json").read_text())
    sandbox.reset(make_profiles(50))
    api_fixes = write_csv(tmp_path / "api.csv", ["PKey", "phone"], rows)
    summary = batchpatch.run(str(api_fixes), base_url=sandbox.url, org="demo", rate=0,
                             concurrency=8, progress="off")
    assert summary["counts"] == cli_summary["counts"]
    assert summary["exit_code"] == cli.returncode == 1
    assert sandbox.profiles_now()["@p00003"]["phone"] == "+440000003"


async def test_python_api_async(sandbox, tmp_path: Path) -> None:
    fixes = write_csv(tmp_path / "a.csv", ["PKey", "phone"], phone_rows(5))
    summary = await batchpatch.run_async(fixes, url_template=sandbox.url +
                                         "/rest/profiles/{pkey}", rate=0, progress="off")
    assert summary["counts"]["updated"] == 5 and summary["exit_code"] == 0
